// The warping error of ISBI 2012 (Jain et al., "Boundary learning by
// optimization with topological constraints", 2010): the truth is warped toward
// the prediction by flipping only simple pixels (pixels whose flip changes no
// topology), and the error is the fraction of pixels that still disagree. 2D,
// per slice; foreground 8-connected, background 4-connected.
#include <array>
#include <deque>
#include <vector>

#include "metrics.h"

namespace segvol::metrics {
namespace {

// Ring of the 8 neighbours in order (dy, dx), clockwise from north-west.
constexpr int kRingY[8] = {-1, -1, -1, 0, 1, 1, 1, 0};
constexpr int kRingX[8] = {-1, 0, 1, 1, 1, 0, -1, -1};

// simple[mask]: bit k of mask = neighbour k is foreground. A pixel is simple when its
// foreground neighbours form one 8-connected component and its background
// neighbours touching it 4-wise form one 4-connected component (inside the 3x3).
std::array<bool, 256> simpleTable() {
  std::array<bool, 256> table{};
  for (int mask = 0; mask < 256; ++mask) {
    auto components = [&](bool foreground, bool eight, bool onlyTouching) {
      std::array<int, 8> label{};
      label.fill(-1);
      int count = 0;
      for (int start = 0; start < 8; ++start) {
        if (((mask >> start) & 1) != static_cast<int>(foreground) || label[start] >= 0) continue;
        std::vector<int> stack = {start};
        label[start] = count;
        bool touches = false;
        while (!stack.empty()) {
          const int k = stack.back();
          stack.pop_back();
          if (kRingY[k] == 0 || kRingX[k] == 0) touches = true;  // a 4-neighbour of the centre
          for (int j = 0; j < 8; ++j) {
            if (label[j] >= 0 || ((mask >> j) & 1) != static_cast<int>(foreground)) continue;
            const int dy = kRingY[j] - kRingY[k], dx = kRingX[j] - kRingX[k];
            const int manhattan = (dy < 0 ? -dy : dy) + (dx < 0 ? -dx : dx);
            const bool adjacent = eight ? (dy >= -1 && dy <= 1 && dx >= -1 && dx <= 1) : manhattan == 1;
            if (adjacent) {
              label[j] = count;
              stack.push_back(j);
            }
          }
        }
        if (!onlyTouching || touches) ++count;
      }
      return count;
    };
    table[mask] = components(true, true, false) == 1 && components(false, false, true) == 1;
  }
  return table;
}

}  // namespace

WarpingResult warpingError(const uint8_t* prediction, const uint8_t* truth, Dims dims) {
  static const std::array<bool, 256> simple = simpleTable();
  WarpingResult result{0, 0, 0};
  const int64_t h = dims.h, w = dims.w;
  for (int64_t z = 0; z < dims.d; ++z) {
    const uint8_t* pred = prediction + z * h * w;
    std::vector<uint8_t> warped(truth + z * h * w, truth + (z + 1) * h * w);
    auto neighbourMask = [&](int64_t y, int64_t x) {
      int mask = 0;
      for (int k = 0; k < 8; ++k) {
        const int64_t yy = y + kRingY[k], xx = x + kRingX[k];
        // Outside the image counts as background.
        if (yy >= 0 && yy < h && xx >= 0 && xx < w && warped[yy * w + xx]) mask |= 1 << k;
      }
      return mask;
    };
    std::deque<int64_t> queue;
    std::vector<uint8_t> queued(h * w, 0);
    for (int64_t i = 0; i < h * w; ++i) {
      if (warped[i] != pred[i]) {
        queue.push_back(i);
        queued[i] = 1;
        ++result.pixelErrors;
      }
    }
    // Flip disagreeing simple pixels one at a time; a flip can make its neighbours simple.
    while (!queue.empty()) {
      const int64_t i = queue.front();
      queue.pop_front();
      queued[i] = 0;
      if (warped[i] == pred[i]) continue;
      const int64_t y = i / w, x = i % w;
      if (!simple[neighbourMask(y, x)]) continue;
      warped[i] = pred[i];
      for (int k = 0; k < 8; ++k) {
        const int64_t yy = y + kRingY[k], xx = x + kRingX[k];
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const int64_t j = yy * w + xx;
        if (!queued[j] && warped[j] != pred[j]) {
          queue.push_back(j);
          queued[j] = 1;
        }
      }
    }
    for (int64_t i = 0; i < h * w; ++i) result.warpingErrors += warped[i] != pred[i];
  }
  result.voxels = dims.size();
  return result;
}

}  // namespace segvol::metrics
