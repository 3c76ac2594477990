#include <cmath>
#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {

BatchNormForward batchNormForward(Implementation impl, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  Tensor& runningMean, Tensor& runningVar, bool training, double momentum,
                                  double eps) {
  const std::string op = "batchNorm";
  checkRank(x, {2, 3, 4, 5}, op, "input", "(N, C, ...)");
  checkNotEmpty(x, op, "input");
  const int64_t c = x.dim(1);
  checkVector(gamma, c, op, "gamma", "one per channel");
  checkVector(beta, c, op, "beta", "one per channel");
  checkVector(runningMean, c, op, "runningMean", "one per channel");
  checkVector(runningVar, c, op, "runningVar", "one per channel");
  if (!(eps > 0)) fail(ErrorCode::Argument, op + ": expected eps > 0, received " + std::to_string(eps));
  if (!(momentum >= 0 && momentum <= 1)) {
    fail(ErrorCode::Argument, op + ": expected 0 <= momentum <= 1, received " + std::to_string(momentum));
  }
  Backend& backend = backendOf(impl, op, {&x, &gamma, &beta, &runningMean, &runningVar});
  checkAllFinite(backend, {{&gamma, "gamma"}, {&beta, "beta"}, {&runningMean, "runningMean"}, {&runningVar, "runningVar"}}, op);
  if (training && x.size() / c < 2) {
    fail(ErrorCode::Shape, op + ": training mode needs more than one value per channel to compute a variance, received " +
                               shapeToString(x.shape()) + "; use a larger batch or volume, or inference mode");
  }
  BatchNormForward out;
  out.y = Tensor::empty(backend, x.shape());
  out.mean = Tensor::empty(backend, {c});
  out.invStd = Tensor::empty(backend, {c});
  if (training) {
    backend.batchNormTrainForward(x, gamma, beta, eps, momentum, runningMean, runningVar, out.y, out.mean, out.invStd);
  } else {
    backend.batchNormInferenceForward(x, gamma, beta, runningMean, runningVar, eps, out.y);
    // The statistics inference used, so backward needs no separate entry point.
    backend.copy(runningMean, out.mean);
    std::vector<float> var(c), inv(c);
    backend.copyToHost(runningVar, var.data());
    for (int64_t i = 0; i < c; ++i) inv[i] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var[i]) + eps));
    backend.copyFromHost(inv.data(), out.invStd);
  }
  return out;
}

BatchNormGrads batchNormBackward(Implementation impl, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                 const Tensor& invStd, bool training, const Tensor& dy) {
  const std::string op = "batchNormBackward";
  checkRank(x, {2, 3, 4, 5}, op, "input", "(N, C, ...)");
  checkSameShape(x, dy, op, "input", "output gradient");
  const int64_t c = x.dim(1);
  checkVector(gamma, c, op, "gamma", "one per channel");
  checkVector(mean, c, op, "mean", "the forward pass's saved statistics");
  checkVector(invStd, c, op, "invStd", "the forward pass's saved statistics");
  Backend& backend = backendOf(impl, op, {&x, &gamma, &mean, &invStd, &dy});
  BatchNormGrads grads{Tensor::empty(backend, x.shape()), Tensor::empty(backend, {c}), Tensor::empty(backend, {c})};
  backend.batchNormBackward(x, gamma, mean, invStd, training, dy, grads.dx, grads.dgamma, grads.dbeta);
  return grads;
}

}  // namespace segvol::ops
