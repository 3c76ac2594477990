// Softmax over channels for (N, C, ...): channels are strided by the spatial
// size, so work goes in blocks of contiguous voxels, channel loop outside, which
// keeps the inner loops unit-stride and vectorisable.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {
namespace {
constexpr int64_t kBlock = 256;
struct Layout {
  int64_t n, c, s;
};
Layout layoutOf(const Tensor& t) {
  int64_t s = 1;
  for (int i = 2; i < t.rank(); ++i) s *= t.dim(i);
  return {t.dim(0), t.dim(1), s};
}

// Calls visit(offset, len) for every block of up to kBlock contiguous voxels of
// every sample, in parallel: offset is the block's first voxel in channel 0, the
// channel c of voxel k is at offset + c * d.s + k.
template <typename Visit>
void forEachBlock(const Layout& d, Visit&& visit) {
  const int64_t blocks = (d.s + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) if (d.n * d.c * d.s > kParallelThreshold)
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t s0 = b * kBlock;
      visit(n * d.c * d.s + s0, std::min(kBlock, d.s - s0));
    }
}
}  // namespace

void CpuBackend::softmaxForward(const Tensor& x, Tensor& y) {
  const Layout d = layoutOf(x);
  forEachBlock(d, [&](int64_t base, int64_t len) {
    float mx[kBlock], total[kBlock];
    std::fill(mx, mx + len, -std::numeric_limits<float>::infinity());
    std::fill(total, total + len, 0.0f);
    const float* in = x.data() + base;
    float* out = y.data() + base;
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t k = 0; k < len; ++k) mx[k] = std::max(mx[k], in[c * d.s + k]);
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t k = 0; k < len; ++k) {
        const float e = fastmath::exp(in[c * d.s + k] - mx[k]);
        out[c * d.s + k] = e;
        total[k] += e;
      }
    for (int64_t k = 0; k < len; ++k) total[k] = 1.0f / total[k];
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t k = 0; k < len; ++k) out[c * d.s + k] *= total[k];
  });
}

void CpuBackend::softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const Layout d = layoutOf(y);
  forEachBlock(d, [&](int64_t base, int64_t len) {
    float dot[kBlock];
    std::fill(dot, dot + len, 0.0f);
    const float* p = y.data() + base;
    const float* g = dy.data() + base;
    float* out = dx.data() + base;
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t k = 0; k < len; ++k) dot[k] += p[c * d.s + k] * g[c * d.s + k];
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t k = 0; k < len; ++k) out[c * d.s + k] = p[c * d.s + k] * (g[c * d.s + k] - dot[k]);
  });
}

}  // namespace segvol
