// Index helpers shared by the reference backend's files: contiguous (N, C, D, H, W)
// tensors walked with plain loops, sums kept in double.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "reference_backend.h"

namespace segvol::ref {

// Index of (n, c, z, y, x) in a contiguous (N, C, D, H, W) tensor.
inline int64_t at(const Dims5& d, int64_t n, int64_t c, int64_t z, int64_t y, int64_t x) {
  return (((n * d[1] + c) * d[2] + z) * d[3] + y) * d[4] + x;
}

// Calls f(n, c, z, y, x) for every voxel of a (N, C, D, H, W) volume, in memory order.
template <typename F>
void forEachVoxel(const Dims5& d, F&& f) {
  for (int64_t n = 0; n < d[0]; ++n)
    for (int64_t c = 0; c < d[1]; ++c)
      for (int64_t z = 0; z < d[2]; ++z)
        for (int64_t y = 0; y < d[3]; ++y)
          for (int64_t x = 0; x < d[4]; ++x) f(n, c, z, y, x);
}

// (N, C, S): batch, channels, and everything after the channel axis flattened.
struct NCS {
  int64_t n, c, s;
};
inline NCS ncs(const Tensor& t) {
  int64_t s = 1;
  for (int i = 2; i < t.rank(); ++i) s *= t.dim(i);
  return {t.dim(0), t.rank() > 1 ? t.dim(1) : 1, s};
}

inline bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }

// Rounds double accumulators into a float tensor of the same size.
inline void storeRounded(const std::vector<double>& acc, Tensor& out) {
  for (int64_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<float>(acc[i]);
}

inline double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

}  // namespace segvol::ref
