// Elementwise activations and arithmetic, in double.
#include "loops.h"

namespace segvol {

void ReferenceBackend::activation(ActivationKind kind, const Tensor& x, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) {
    double v = x.data()[i];
    switch (kind) {
      case ActivationKind::Tanh: v = std::tanh(v); break;
      case ActivationKind::Sigmoid: v = 1.0 / (1.0 + std::exp(-v)); break;
      case ActivationKind::Relu: v = v > 0 ? v : 0.0; break;
    }
    y.data()[i] = static_cast<float>(v);
  }
}

void ReferenceBackend::activationBackward(ActivationKind kind, const Tensor& x, const Tensor&, const Tensor& dy, Tensor& dx) {
  // The oracle derives f'(x) from x itself, independently of the optimized path's use of y.
  for (int64_t i = 0; i < x.size(); ++i) {
    double v = x.data()[i], grad = dy.data()[i];
    switch (kind) {
      case ActivationKind::Tanh: grad *= 1.0 - std::tanh(v) * std::tanh(v); break;
      case ActivationKind::Sigmoid: {
        double s = 1.0 / (1.0 + std::exp(-v));
        grad *= s * (1.0 - s);
        break;
      }
      case ActivationKind::Relu: grad = v > 0 ? grad : 0.0; break;
    }
    dx.data()[i] = static_cast<float>(grad);
  }
}

void ReferenceBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) {
  for (int64_t i = 0; i < a.size(); ++i) {
    double u = a.data()[i], v = b.data()[i];
    y.data()[i] = static_cast<float>(kind == BinaryKind::Add ? u + v : u * v);
  }
}

void ReferenceBackend::scale(const Tensor& x, float factor, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) y.data()[i] = static_cast<float>(static_cast<double>(x.data()[i]) * factor);
}

void ReferenceBackend::sum(const std::vector<const Tensor*>& xs, Tensor& y) {
  for (int64_t i = 0; i < y.size(); ++i) {
    double acc = 0;
    for (const Tensor* t : xs) acc += t->data()[i];
    y.data()[i] = static_cast<float>(acc);
  }
}

void ReferenceBackend::clamp(const Tensor& x, float lo, float hi, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    y.data()[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

void ReferenceBackend::clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) {
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    dx.data()[i] = v >= lo && v <= hi ? dy.data()[i] : 0.0f;
  }
}

double ReferenceBackend::sumOfSquares(const Tensor& x) {
  double acc = 0;
  for (int64_t i = 0; i < x.size(); ++i) acc += static_cast<double>(x.data()[i]) * x.data()[i];
  return acc;
}

}  // namespace segvol
