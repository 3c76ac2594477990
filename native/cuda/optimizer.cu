// Optimizer updates in place, one thread per parameter: the twin of
// native/cpu/optimizer.cpp.
#include <cmath>

#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

__global__ void optimizerKernel(int kind, OptimizerHyper h, float c1, float c2, float* theta, const float* g, float* a, float* b, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) {
    const float gi = g[i] + static_cast<float>(h.weightDecay) * theta[i];
    const float lr = static_cast<float>(h.lr), eps = static_cast<float>(h.eps);
    if (kind == 0) {  // RMSprop with momentum, the PyraMiD-LSTM paper's eqs. 15-18
      const float rho = static_cast<float>(h.rho), rhoM = static_cast<float>(h.rhoM);
      a[i] = rho * a[i] + (1 - rho) * gi * gi;
      b[i] = rhoM * b[i] + (1 - rhoM) * (gi / (sqrtf(a[i]) + eps));
      theta[i] -= lr * b[i];
    } else if (kind == 1) {
      a[i] = static_cast<float>(h.momentum) * a[i] + gi;
      theta[i] -= lr * a[i];
    } else {
      const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
      a[i] = b1 * a[i] + (1 - b1) * gi;
      b[i] = b2 * b[i] + (1 - b2) * gi * gi;
      theta[i] -= lr * (a[i] * c1) / (sqrtf(b[i] * c2) + eps);
    }
  }
}

}  // namespace

void CudaBackend::optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad, Tensor& state1,
                                  Tensor& state2) {
  if (!param.size()) return;
  const float c1 = static_cast<float>(1 / (1 - std::pow(h.beta1, static_cast<double>(h.step))));
  const float c2 = static_cast<float>(1 / (1 - std::pow(h.beta2, static_cast<double>(h.step))));
  const int k = kind == OptimizerKind::RmspropMomentum ? 0 : kind == OptimizerKind::SgdMomentum ? 1 : 2;
  SEGVOL_LAUNCH(optimizerKernel, cuda::blocksFor(param.size()), 256)(k, h, c1, c2, param.data(), grad.data(), state1.data(), state2.data(),
                                                          param.size());
  cuda::checkLaunch("optimizerUpdate");
}

}  // namespace segvol
