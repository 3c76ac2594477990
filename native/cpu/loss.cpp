// Losses on class probabilities. Reductions use per-thread partial sums in a
// fixed thread order, so a run with the same thread count is bit-identical
// (training determinism relies on it).
#include <omp.h>

#include <cmath>
#include <vector>

#include "cpu_backend.h"

namespace segvol {
namespace {

// Sum of f(voxel) over voxels [0, count), deterministic for a given thread count.
template <typename F>
std::vector<double> deterministicSums(int64_t count, int width, F&& f) {
  const int threads = count > 4096 ? omp_get_max_threads() : 1;
  std::vector<std::vector<double>> partial(threads, std::vector<double>(width, 0.0));
#pragma omp parallel num_threads(threads)
  {
    std::vector<double>& mine = partial[omp_get_thread_num()];
#pragma omp for schedule(static)
    for (int64_t v = 0; v < count; ++v) f(v, mine);
  }
  std::vector<double> total(width, 0.0);
  for (const auto& p : partial)
    for (int k = 0; k < width; ++k) total[k] += p[k];
  return total;
}

}  // namespace

double CpuBackend::lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                                       const Tensor* classWeights, Tensor& grad) {
  const int64_t n = probs.dim(0), c = probs.dim(1), s = probs.size() / (n * c), voxels = n * s;
  const float* p = probs.data();
  const float* y = labels.data();
  const float* m = mask ? mask->data() : nullptr;
  const float* w = classWeights ? classWeights->data() : nullptr;
  float* g = grad.data();
  // Voxel v = (b, position): probability of class k at p[(b * c + k) * s + position].
  auto at = [s, c](int64_t v, int64_t k) { return (v / s * c + k) * s + v % s; };

  if (kind == LossKind::SquaredError || kind == LossKind::CrossEntropy) {
    const double norm = deterministicSums(voxels, 1, [&](int64_t v, std::vector<double>& acc) {
      if (!m || m[v] != 0.0f) acc[0] += w ? w[static_cast<int64_t>(y[v])] : 1.0;
    })[0];
    const double total = deterministicSums(voxels, 1, [&](int64_t v, std::vector<double>& acc) {
      const int64_t label = static_cast<int64_t>(y[v]);
      const bool usedVoxel = (!m || m[v] != 0.0f) && norm > 0;
      const double weight = w ? w[label] : 1.0;
      for (int64_t k = 0; k < c; ++k) {
        const int64_t i = at(v, k);
        float gi = 0.0f;
        if (usedVoxel) {
          if (kind == LossKind::SquaredError) {
            const double diff = static_cast<double>(p[i]) - (k == label ? 1.0 : 0.0);
            acc[0] += weight * diff * diff;
            gi = static_cast<float>(2 * weight * diff / norm);
          } else if (k == label) {
            const double q = p[i] > 1e-7f ? static_cast<double>(p[i]) : 1e-7;
            acc[0] -= weight * std::log(q);
            gi = p[i] > 1e-7f ? static_cast<float>(-weight / (q * norm)) : 0.0f;
          }
        }
        g[i] = gi;
      }
    })[0];
    return norm > 0 ? total / norm : 0.0;
  }

  // Soft Dice / IoU: per-class sums first (intersection, sum p, sum t), then the gradient.
  const std::vector<double> sums = deterministicSums(voxels, static_cast<int>(3 * c), [&](int64_t v, std::vector<double>& acc) {
    if (m && m[v] == 0.0f) return;
    const int64_t label = static_cast<int64_t>(y[v]);
    for (int64_t k = 0; k < c; ++k) {
      const double pk = p[at(v, k)];
      acc[3 * k + 1] += pk;
      if (k == label) {
        acc[3 * k] += pk;
        acc[3 * k + 2] += 1.0;
      }
    }
  });
  const double eps = 1e-6;
  double score = 0, weightSum = 0;
  std::vector<double> coefA(c), coefB(c);  // d score_k / d p = weight * (t ? coefA : coefB)
  for (int64_t k = 0; k < c; ++k) {
    const double inter = sums[3 * k], sumP = sums[3 * k + 1], sumT = sums[3 * k + 2], weight = w ? w[k] : 1.0;
    weightSum += weight;
    if (kind == LossKind::SoftDice) {
      const double den = sumP + sumT + eps, num = 2 * inter + eps;
      score += weight * num / den;
      coefA[k] = weight * (2 * den - num) / (den * den);
      coefB[k] = weight * (-num) / (den * den);
    } else {
      const double uni = sumP + sumT - inter + eps, num = inter + eps;
      score += weight * num / uni;
      coefA[k] = weight * uni / (uni * uni);
      coefB[k] = weight * (-num) / (uni * uni);
    }
  }
#pragma omp parallel for schedule(static) if (voxels > 4096)
  for (int64_t v = 0; v < voxels; ++v) {
    const bool usedVoxel = !m || m[v] != 0.0f;
    const int64_t label = static_cast<int64_t>(y[v]);
    for (int64_t k = 0; k < c; ++k) {
      g[at(v, k)] = usedVoxel ? static_cast<float>(-(k == label ? coefA[k] : coefB[k]) / weightSum) : 0.0f;
    }
  }
  return 1.0 - score / weightSum;
}

}  // namespace segvol
