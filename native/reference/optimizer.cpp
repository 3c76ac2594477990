// Optimizer updates, written from their definitions in double.
#include "loops.h"

namespace segvol {

void ReferenceBackend::optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad,
                                       Tensor& state1, Tensor& state2) {
  for (int64_t i = 0; i < param.size(); ++i) {
    const double g = static_cast<double>(grad.data()[i]) + h.weightDecay * param.data()[i];
    double theta = param.data()[i], a = state1.data()[i], b = state2.data()[i];
    switch (kind) {
      case OptimizerKind::RmspropMomentum: {
        a = h.rho * a + (1 - h.rho) * g * g;           // eq. 15
        const double normalised = g / (std::sqrt(a) + h.eps);  // eq. 16
        b = h.rhoM * b + (1 - h.rhoM) * normalised;   // eq. 17
        theta -= h.lr * b;                            // eq. 18
        break;
      }
      case OptimizerKind::SgdMomentum:
        a = h.momentum * a + g;
        theta -= h.lr * a;
        break;
      case OptimizerKind::Adam: {
        a = h.beta1 * a + (1 - h.beta1) * g;
        b = h.beta2 * b + (1 - h.beta2) * g * g;
        const double mHat = a / (1 - std::pow(h.beta1, static_cast<double>(h.step)));
        const double vHat = b / (1 - std::pow(h.beta2, static_cast<double>(h.step)));
        theta -= h.lr * mHat / (std::sqrt(vHat) + h.eps);
        break;
      }
    }
    param.data()[i] = static_cast<float>(theta);
    state1.data()[i] = static_cast<float>(a);
    state2.data()[i] = static_cast<float>(b);
  }
}

}  // namespace segvol
