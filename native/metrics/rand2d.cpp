// The 2D Rand scores of a stack of boundary-map segmentations, slice by slice, as the
// 2D-3D ConvNet paper reports them: each slice compared on its own, the truth's
// unlabelled pixels (0) left out, and the search over segmentation thresholds done
// here so a whole sweep runs without returning every segmentation to JavaScript.
#include <algorithm>
#include <deque>
#include <string>
#include <unordered_map>

#include "../core/error.h"
#include "metrics.h"
#include "pair_hash.h"

namespace segvol::metrics {
namespace {

void checkPlanar(int connectivity, const char* op) {
  if (connectivity != 4 && connectivity != 8) {
    fail(ErrorCode::Argument, std::string(op) + ": expected connectivity 4 or 8 (in-plane), received " + std::to_string(connectivity));
  }
}

}  // namespace

std::vector<int32_t> relabelSlices(const int64_t* ids, Dims dims, int connectivity) {
  checkPlanar(connectivity, "relabelSlices");
  const int64_t n = dims.size();
  std::vector<int32_t> out(n, 0);
  std::deque<int64_t> queue;
  int64_t next = 0;
  for (int64_t start = 0; start < n; ++start) {
    if (ids[start] == 0 || out[start] != 0) continue;
    if (next == INT32_MAX) fail(ErrorCode::Argument, "relabelSlices: more than 2^31 - 1 segments in the stack");
    const int32_t label = static_cast<int32_t>(++next);
    const int64_t id = ids[start];
    const int64_t z = start / (dims.h * dims.w);
    out[start] = label;
    queue.push_back(start);
    // Breadth-first over the slice only: a 3D id seen in two slices, or twice in one, becomes several 2D segments.
    while (!queue.empty()) {
      const int64_t i = queue.front();
      queue.pop_front();
      const int64_t y = (i / dims.w) % dims.h, x = i % dims.w;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          if ((dy == 0 && dx == 0) || (connectivity == 4 && dy != 0 && dx != 0)) continue;
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= dims.h || xx < 0 || xx >= dims.w) continue;
          const int64_t j = (z * dims.h + yy) * dims.w + xx;
          if (ids[j] != id || out[j] != 0) continue;
          out[j] = label;
          queue.push_back(j);
        }
    }
  }
  return out;
}

std::vector<SliceRandCounts> sliceRandCounts(const int32_t* pred, const int64_t* truth, Dims dims, PredictedZero zero) {
  const int64_t plane = dims.h * dims.w;
  std::vector<SliceRandCounts> out(dims.d);
  std::unordered_map<uint64_t, int64_t, PairHash> joint;
  std::unordered_map<int64_t, int64_t> predSizes, truthSizes;
  for (int64_t z = 0; z < dims.d; ++z) {
    joint.clear();
    predSizes.clear();
    truthSizes.clear();
    SliceRandCounts& c = out[z];
    c = {0, 0, 0, 0, 0};
    int64_t singletons = 0;
    for (int64_t i = z * plane; i < (z + 1) * plane; ++i) {
      const int64_t t = truth[i];
      if (t == 0) continue;
      c.foreground += 1;
      const int32_t p = pred[i];
      if (p == 0 && zero == PredictedZero::Exclude) continue;
      c.counted += 1;
      ++truthSizes[t];
      // A singleton is its own segment: n_ij = a_i = 1, adding 1 to both sums.
      if (p == 0 && zero == PredictedZero::Singletons) {
        ++singletons;
        continue;
      }
      ++joint[(static_cast<uint64_t>(static_cast<uint32_t>(p)) << 32) ^ static_cast<uint32_t>(t)];
    }
    for (const auto& [key, count] : joint) {
      c.joint2 += static_cast<double>(count) * static_cast<double>(count);
      predSizes[static_cast<int32_t>(key >> 32)] += count;
    }
    for (const auto& [id, size] : predSizes) c.pred2 += static_cast<double>(size) * static_cast<double>(size);
    for (const auto& [id, size] : truthSizes) c.truth2 += static_cast<double>(size) * static_cast<double>(size);
    c.joint2 += static_cast<double>(singletons);
    c.pred2 += static_cast<double>(singletons);
  }
  return out;
}

Rand2dSweep rand2dSweep(const float* boundary, const int64_t* truth, Dims dims, const std::vector<float>& thresholds,
                        const Rand2dMethod& method) {
  checkPlanar(method.connectivity, "rand2dSweep");
  Rand2dSweep out;
  WatershedResult ws;
  if (method.watershed) {
    const std::vector<float> aff = boundaryAffinities(boundary, dims, false);
    WatershedOptions o;
    o.low = method.low;
    o.high = method.high;
    o.sizeThresholds = {{method.low, method.sizeThreshold}};
    ws = affinityWatershed(aff.data(), dims, false, o);
  }
  for (float threshold : thresholds) {
    std::vector<int32_t> segments = method.watershed ? cutTree(ws.segments, ws.tree, 1.0f - threshold)
                                                     : thresholdSegmentation(boundary, dims, threshold, method.connectivity);
    int32_t count = 0;
    for (int32_t s : segments) count = std::max(count, s);  // both number their segments 1..count
    out.segments.push_back(count);
    // Grown over every pixel (mask above any probability): no boundary pixel stays unassigned
    // unless its slice holds no segment at all.
    if (method.grow) growSegments(segments, boundary, dims, 2.0f, method.connectivity);
    out.counts.push_back(sliceRandCounts(segments.data(), truth, dims, method.zero));
  }
  return out;
}

}  // namespace segvol::metrics
