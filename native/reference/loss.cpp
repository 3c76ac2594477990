// Losses, written from their definitions (ops/ops.h) with double sums.
#include "loops.h"

namespace segvol {

double ReferenceBackend::lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels,
                                             const Tensor* mask, const Tensor* classWeights, Tensor& grad) {
  const int64_t n = probs.dim(0), c = probs.dim(1), s = probs.size() / (n * c);
  auto p = [&](int64_t b, int64_t k, int64_t v) { return static_cast<double>(probs.data()[(b * c + k) * s + v]); };
  auto label = [&](int64_t b, int64_t v) { return static_cast<int64_t>(labels.data()[b * s + v]); };
  auto used = [&](int64_t b, int64_t v) { return !mask || mask->data()[b * s + v] != 0.0f; };
  auto weight = [&](int64_t k) { return classWeights ? static_cast<double>(classWeights->data()[k]) : 1.0; };
  for (int64_t i = 0; i < grad.size(); ++i) grad.data()[i] = 0.0f;
  if (kind == LossKind::SquaredError || kind == LossKind::CrossEntropy) {
    double total = 0, norm = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (used(b, v)) norm += weight(label(b, v));
      }
    if (norm <= 0) return 0.0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (!used(b, v)) continue;
        const int64_t y = label(b, v);
        const double w = weight(y);
        for (int64_t k = 0; k < c; ++k) {
          const double target = k == y ? 1.0 : 0.0;
          double g = 0;
          if (kind == LossKind::SquaredError) {
            total += w * (p(b, k, v) - target) * (p(b, k, v) - target);
            g = 2 * w * (p(b, k, v) - target) / norm;
          } else if (k == y) {
            const double q = std::max(p(b, k, v), 1e-7);
            total += -w * std::log(q);
            g = p(b, k, v) > 1e-7 ? -w / (q * norm) : 0.0;
          }
          grad.data()[(b * c + k) * s + v] = static_cast<float>(g);
        }
      }
    return total / norm;
  }
  // Soft Dice / soft IoU per class over all used voxels, weighted mean over classes.
  double loss = 0, weightSum = 0;
  for (int64_t k = 0; k < c; ++k) {
    double inter = 0, sumP = 0, sumT = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (!used(b, v)) continue;
        const double t = label(b, v) == k ? 1.0 : 0.0;
        inter += p(b, k, v) * t;
        sumP += p(b, k, v);
        sumT += t;
      }
    const double w = weight(k), eps = 1e-6;
    weightSum += w;
    if (kind == LossKind::SoftDice) {
      const double den = sumP + sumT + eps;
      loss += w * (2 * inter + eps) / den;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t v = 0; v < s; ++v) {
          if (!used(b, v)) continue;
          const double t = label(b, v) == k ? 1.0 : 0.0;
          grad.data()[(b * c + k) * s + v] = static_cast<float>(w * (2 * t * den - (2 * inter + eps)) / (den * den));
        }
    } else {
      const double uni = sumP + sumT - inter + eps;
      loss += w * (inter + eps) / uni;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t v = 0; v < s; ++v) {
          if (!used(b, v)) continue;
          const double t = label(b, v) == k ? 1.0 : 0.0;
          grad.data()[(b * c + k) * s + v] = static_cast<float>(w * (t * uni - (inter + eps) * (1 - t)) / (uni * uni));
        }
    }
  }
  // L = 1 - score / weightSum, so the gradient is -dscore / weightSum.
  for (int64_t i = 0; i < grad.size(); ++i) grad.data()[i] = static_cast<float>(-grad.data()[i] / weightSum);
  return 1.0 - loss / weightSum;
}

}  // namespace segvol
