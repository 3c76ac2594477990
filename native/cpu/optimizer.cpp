// Optimizer updates in place: flat vectorised loops, one per update rule.
#include <cmath>

#include "cpu_backend.h"

namespace segvol {

void CpuBackend::optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad,
                                 Tensor& state1, Tensor& state2) {
  float* theta = param.data();
  const float* g = grad.data();
  float* a = state1.data();
  float* b = state2.data();
  const int64_t n = param.size();
  const float lr = static_cast<float>(h.lr), decay = static_cast<float>(h.weightDecay), eps = static_cast<float>(h.eps);
  switch (kind) {
    case OptimizerKind::RmspropMomentum: {
      const float rho = static_cast<float>(h.rho), rhoM = static_cast<float>(h.rhoM);
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] + decay * theta[i];
        a[i] = rho * a[i] + (1 - rho) * gi * gi;
        b[i] = rhoM * b[i] + (1 - rhoM) * (gi / (std::sqrt(a[i]) + eps));
        theta[i] -= lr * b[i];
      }
      break;
    }
    case OptimizerKind::SgdMomentum: {
      const float mu = static_cast<float>(h.momentum);
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) {
        a[i] = mu * a[i] + g[i] + decay * theta[i];
        theta[i] -= lr * a[i];
      }
      break;
    }
    case OptimizerKind::Adam: {
      const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
      const float c1 = static_cast<float>(1 / (1 - std::pow(h.beta1, static_cast<double>(h.step))));
      const float c2 = static_cast<float>(1 / (1 - std::pow(h.beta2, static_cast<double>(h.step))));
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i] + decay * theta[i];
        a[i] = b1 * a[i] + (1 - b1) * gi;
        b[i] = b2 * b[i] + (1 - b2) * gi * gi;
        theta[i] -= lr * (a[i] * c1) / (std::sqrt(b[i] * c2) + eps);
      }
      break;
    }
  }
}

}  // namespace segvol
