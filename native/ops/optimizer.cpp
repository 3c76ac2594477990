// Optimizer updates: checks (shapes, hyper-parameters) and dispatch.
#include <cmath>
#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {

void optimizerUpdate(Implementation impl, OptimizerKind kind, const OptimizerHyper& h, Tensor& param,
                     const Tensor& grad, Tensor& state1, Tensor& state2) {
  const std::string op = "optimizerUpdate";
  checkSameShape(param, grad, op, "parameter", "gradient");
  checkSameShape(param, state1, op, "parameter", "optimizer state 1");
  checkSameShape(param, state2, op, "parameter", "optimizer state 2");
  for (double v : {h.lr, h.rho, h.rhoM, h.momentum, h.beta1, h.beta2, h.eps, h.weightDecay}) {
    if (!std::isfinite(v) || v < 0) {
      fail(ErrorCode::Argument, op + ": expected finite, non-negative hyper-parameters, received " + std::to_string(v));
    }
  }
  if (h.step < 1) fail(ErrorCode::Argument, op + ": expected step >= 1");
  Backend& backend = backendOf(impl, op, {&param, &grad, &state1, &state2});
  backend.optimizerUpdate(kind, h, param, grad, state1, state2);
}

}  // namespace segvol::ops
