#include <algorithm>
#include <cmath>
#include <vector>

#include "metrics.h"

namespace segvol::metrics {

std::vector<int64_t> confusionMatrix(const int64_t* pred, const int64_t* truth, int64_t n, int64_t classes) {
  std::vector<int64_t> confusion(classes * classes, 0);
  for (int64_t i = 0; i < n; ++i) ++confusion[truth[i] * classes + pred[i]];
  return confusion;
}

double pixelError(const float* probability, const float* truth, int64_t n, float threshold) {
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += (probability[i] > threshold) != (truth[i] != 0.0f);
  return n ? static_cast<double>(wrong) / static_cast<double>(n) : 0.0;
}

// Histograms of the probabilities of truth-positive and truth-negative voxels
// give the error of every candidate threshold in one pass.
std::pair<double, float> bestPixelError(const float* probability, const float* truth, int64_t n, int steps) {
  // Bin k holds p in (k / steps, (k + 1) / steps]; p <= 0 in bin -1 (stored at 0 with an offset).
  std::vector<int64_t> positive(steps + 2, 0), negative(steps + 2, 0);
  for (int64_t i = 0; i < n; ++i) {
    const float p = probability[i];
    int64_t bin = p <= 0.0f ? 0 : std::min<int64_t>(steps + 1, static_cast<int64_t>(std::ceil(p * steps)));
    // A threshold t = k / steps calls p boundary when p > t, i.e. bin > k.
    (truth[i] != 0.0f ? positive : negative)[bin] += 1;
  }
  // error(k) = negatives with bin > k + positives with bin <= k.
  int64_t negativesAbove = 0, positivesAtOrBelow = 0;
  for (int64_t b = 0; b < steps + 2; ++b) negativesAbove += negative[b];
  double best = 2.0;
  float bestThreshold = 0.5f;
  for (int64_t k = 0; k <= steps; ++k) {
    negativesAbove -= negative[k];
    positivesAtOrBelow += positive[k];
    if (k == 0 || k == steps) continue;  // thresholds strictly inside (0, 1)
    const double error = static_cast<double>(negativesAbove + positivesAtOrBelow) / static_cast<double>(std::max<int64_t>(n, 1));
    if (error < best) {
      best = error;
      bestThreshold = static_cast<float>(k) / static_cast<float>(steps);
    }
  }
  return {best, bestThreshold};
}

}  // namespace segvol::metrics
