// Max pooling (and the stride-1 dilated max-filter), average pooling. Parallel
// over (N, C) planes, which never write to each other; window bounds are clipped
// once per output row instead of testing every tap.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/window.h"
#include "cpu_backend.h"

namespace segvol {
namespace {

// The taps k in [first, last) of one window along one axis that land inside the input.
struct TapRange {
  int64_t first, last, origin;  // input index of tap k is origin + k * dilation
};
inline TapRange tapRange(int64_t out, int64_t stride, int64_t pad, int64_t dilation, int64_t kernel, int64_t in) {
  const int64_t origin = windowOrigin(out, stride, pad);
  int64_t first = origin < 0 ? (-origin + dilation - 1) / dilation : 0;
  int64_t last = (in - origin + dilation - 1) / dilation;  // first k with origin + k*d >= in
  if (last > kernel) last = kernel;
  if (first > last) first = last;
  return {first, last, origin};
}

struct Plane {
  int64_t d, h, w;
  int64_t size() const { return d * h * w; }
};

// Calls visit(p, in, out) for every (N, C) plane p of a pooling op, in parallel when
// the work is large: in is the plane of the op's input, out of its output.
template <typename Visit>
void forEachPlane(const Tensor& input, const Tensor& output, Visit&& visit) {
  const Dims5 xd = dims5(input), yd = dims5(output);
  const Plane in{xd[2], xd[3], xd[4]}, out{yd[2], yd[3], yd[4]};
  const int64_t planes = xd[0] * xd[1];
#pragma omp parallel for if (output.size() > 4096)
  for (int64_t p = 0; p < planes; ++p) visit(p, in, out);
}

// Calls f(outIndex, inIndex-of-each-valid-tap...) via visit(outIndex, begin-callback).
template <typename Visit>
void forEachWindow(const PoolGeometry& g, const Plane& in, const Plane& out, Visit&& visit) {
  for (int64_t oz = 0; oz < out.d; ++oz) {
    const TapRange rz = tapRange(oz, g.stride[0], g.padding[0], g.dilation[0], g.kernel[0], in.d);
    for (int64_t oy = 0; oy < out.h; ++oy) {
      const TapRange ry = tapRange(oy, g.stride[1], g.padding[1], g.dilation[1], g.kernel[1], in.h);
      for (int64_t ox = 0; ox < out.w; ++ox) {
        const TapRange rx = tapRange(ox, g.stride[2], g.padding[2], g.dilation[2], g.kernel[2], in.w);
        visit((oz * out.h + oy) * out.w + ox, rz, ry, rx);
      }
    }
  }
}

// Index of the window's winner (first maximum in scan order, NaN wins), or -1 for an empty window.
inline int64_t argmaxInWindow(const PoolGeometry& g, const float* x, const Plane& in, const TapRange& rz,
                              const TapRange& ry, const TapRange& rx) {
  int64_t arg = -1;
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t kz = rz.first; kz < rz.last; ++kz) {
    const int64_t iz = rz.origin + kz * g.dilation[0];
    for (int64_t ky = ry.first; ky < ry.last; ++ky) {
      const float* row = x + (iz * in.h + ry.origin + ky * g.dilation[1]) * in.w + rx.origin;
      for (int64_t kx = rx.first; kx < rx.last; ++kx) {
        const float v = row[kx * g.dilation[2]];
        if (arg < 0 || v > best || std::isnan(v)) {
          best = v;
          arg = (iz * in.h + ry.origin + ky * g.dilation[1]) * in.w + rx.origin + kx * g.dilation[2];
          if (std::isnan(v)) return arg;
        }
      }
    }
  }
  return arg;
}

// Calls f(index in the plane) for every tap of a window that lands inside the input, in scan order.
template <typename F>
void forEachInsideTap(const PoolGeometry& g, const Plane& in, const TapRange& rz, const TapRange& ry, const TapRange& rx,
                      F&& f) {
  for (int64_t kz = rz.first; kz < rz.last; ++kz)
    for (int64_t ky = ry.first; ky < ry.last; ++ky) {
      const int64_t row = ((rz.origin + kz * g.dilation[0]) * in.h + ry.origin + ky * g.dilation[1]) * in.w + rx.origin;
      for (int64_t kx = rx.first; kx < rx.last; ++kx) f(row + kx * g.dilation[2]);
    }
}

int64_t avgDivisor(const PoolGeometry& g, const Plane& in, const TapRange& rz, const TapRange& ry,
                   const TapRange& rx) {
  if (!g.countIncludePad) return (rz.last - rz.first) * (ry.last - ry.first) * (rx.last - rx.first);
  return avgPoolAxisTaps(rz.origin, g.kernel[0], g.dilation[0], g.padding[0], in.d, true) *
         avgPoolAxisTaps(ry.origin, g.kernel[1], g.dilation[1], g.padding[1], in.h, true) *
         avgPoolAxisTaps(rx.origin, g.kernel[2], g.dilation[2], g.padding[2], in.w, true);
}

// The max-filter of the dense ConvNets: stride 1, no padding, so every window lies inside
// the input and the taps of a window row are a fixed offset apart.
bool isMaxFilter(const PoolGeometry& g) {
  for (int a = 0; a < 3; ++a) {
    if (g.stride[a] != 1 || g.padding[a] != 0) return false;
  }
  return true;
}

// SegNet's and U-Net's pooling: (1,) 2x2 windows at stride 2 that tile the plane. Each window
// is read once as two pairs of neighbours; without NaNs the winner is the first maximum in scan
// order, as in argmaxInWindow.
bool isTiledPool2x2(const PoolGeometry& g) {
  return g.kernel[0] == 1 && g.kernel[1] == 2 && g.kernel[2] == 2 && g.stride[0] == 1 && g.stride[1] == 2 && g.stride[2] == 2 &&
         g.padding[0] == 0 && g.padding[1] == 0 && g.padding[2] == 0 && g.dilation[1] == 1 && g.dilation[2] == 1;
}

// Offset (0..3: top-left, top-right, bottom-left, bottom-right) of the first maximum of a window.
inline int winner2x2(float a, float b, float c, float d) {
  int k = 0;
  float best = a;
  if (b > best) { best = b; k = 1; }
  if (c > best) { best = c; k = 2; }
  if (d > best) k = 3;
  return k;
}

bool hasNaN(const float* p, int64_t n);

void tiledPool2x2Forward(const float* src, const Plane& in, const Plane& out, float* dst) {
  for (int64_t z = 0; z < out.d; ++z)
    for (int64_t oy = 0; oy < out.h; ++oy) {
      const float* r0 = src + (z * in.h + 2 * oy) * in.w;
      const float* r1 = r0 + in.w;
      float* o = dst + (z * out.h + oy) * out.w;
#pragma omp simd
      for (int64_t ox = 0; ox < out.w; ++ox) {
        const float top = std::max(r0[2 * ox], r0[2 * ox + 1]), bottom = std::max(r1[2 * ox], r1[2 * ox + 1]);
        o[ox] = std::max(top, bottom);
      }
    }
}

// Writes every element of dst once (the winner of its window gets the gradient, the
// rest and the rows and columns no window covers get 0), with the window's winner
// found as winner2x2 does, in a form that vectorises: no zero fill before and no
// scattered store (the MRI encoder's 240x240 planes: 46 ms a call with both).
void tiledPool2x2Backward(const float* src, const float* grad, const Plane& in, const Plane& out, float* dst) {
  for (int64_t z = 0; z < in.d; ++z) {
    for (int64_t oy = 0; oy < out.h; ++oy) {
      const float* __restrict r0 = src + (z * in.h + 2 * oy) * in.w;
      const float* __restrict r1 = r0 + in.w;
      float* __restrict d0 = dst + (z * in.h + 2 * oy) * in.w;
      float* __restrict d1 = d0 + in.w;
      const float* __restrict g = grad + (z * out.h + oy) * out.w;
#pragma omp simd
      for (int64_t ox = 0; ox < out.w; ++ox) {
        const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
        const bool bWins = b > a;
        const float ab = bWins ? b : a;
        const bool cWins = c > ab;
        const bool dWins = d > (cWins ? c : ab);
        const float v = g[ox];
        d1[2 * ox + 1] = dWins ? v : 0.0f;
        d1[2 * ox] = !dWins && cWins ? v : 0.0f;
        d0[2 * ox + 1] = !dWins && !cWins && bWins ? v : 0.0f;
        d0[2 * ox] = !dWins && !cWins && !bWins ? v : 0.0f;
      }
      for (int64_t x = 2 * out.w; x < in.w; ++x) d0[x] = d1[x] = 0.0f;
    }
    float* rest = dst + (z * in.h + 2 * out.h) * in.w;
    std::fill(rest, rest + (in.h - 2 * out.h) * in.w, 0.0f);
  }
}

bool hasNaN(const float* p, int64_t n) {
  bool nan = false;
#pragma omp simd reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) nan |= p[i] != p[i];
  return nan;
}

// Forward of a NaN-free plane: the box maximum is separable, so three passes of a
// 1D maximum (x, then y, then z), each vectorised along the row.
void maxFilterPlane(const PoolGeometry& g, const float* src, const Plane& in, const Plane& out, float* dst) {
  static thread_local std::vector<float> rowsX, rowsY;
  rowsX.resize(static_cast<size_t>(in.d * in.h * out.w));
  rowsY.resize(static_cast<size_t>(in.d * out.h * out.w));
  for (int64_t r = 0; r < in.d * in.h; ++r) {
    const float* __restrict a = src + r * in.w;
    float* __restrict m = rowsX.data() + r * out.w;
    for (int64_t x = 0; x < out.w; ++x) m[x] = a[x];
    for (int64_t k = 1; k < g.kernel[2]; ++k) {
      const float* __restrict b = a + k * g.dilation[2];
#pragma omp simd
      for (int64_t x = 0; x < out.w; ++x) m[x] = b[x] > m[x] ? b[x] : m[x];
    }
  }
  for (int64_t z = 0; z < in.d; ++z)
    for (int64_t y = 0; y < out.h; ++y) {
      float* __restrict m = rowsY.data() + (z * out.h + y) * out.w;
      const float* first = rowsX.data() + (z * in.h + y) * out.w;
      for (int64_t x = 0; x < out.w; ++x) m[x] = first[x];
      for (int64_t k = 1; k < g.kernel[1]; ++k) {
        const float* __restrict b = first + k * g.dilation[1] * out.w;
#pragma omp simd
        for (int64_t x = 0; x < out.w; ++x) m[x] = b[x] > m[x] ? b[x] : m[x];
      }
    }
  const int64_t slab = out.h * out.w;
  for (int64_t z = 0; z < out.d; ++z) {
    float* __restrict m = dst + z * slab;
    const float* first = rowsY.data() + z * slab;
    for (int64_t i = 0; i < slab; ++i) m[i] = first[i];
    for (int64_t k = 1; k < g.kernel[0]; ++k) {
      const float* __restrict b = first + k * g.dilation[0] * slab;
#pragma omp simd
      for (int64_t i = 0; i < slab; ++i) m[i] = b[i] > m[i] ? b[i] : m[i];
    }
  }
}

// Backward of a NaN-free plane: each output row's winners (the first maximum in scan
// order, as the generic path) found tap by tap across the row, then scattered.
void maxFilterBackwardPlane(const PoolGeometry& g, const float* src, const float* grad, const Plane& in, const Plane& out, float* dst) {
  static thread_local std::vector<float> best;
  static thread_local std::vector<int32_t> arg;
  best.resize(static_cast<size_t>(out.w));
  arg.resize(static_cast<size_t>(out.w));
  std::fill(dst, dst + in.size(), 0.0f);
  for (int64_t oz = 0; oz < out.d; ++oz)
    for (int64_t oy = 0; oy < out.h; ++oy) {
      const int64_t base = (oz * in.h + oy) * in.w;
      float* __restrict b = best.data();
      int32_t* __restrict a = arg.data();
      for (int64_t x = 0; x < out.w; ++x) {
        b[x] = src[base + x];
        a[x] = static_cast<int32_t>(base);
      }
      for (int64_t kz = 0; kz < g.kernel[0]; ++kz)
        for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
          for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
            if (kz == 0 && ky == 0 && kx == 0) continue;
            const int64_t offset = base + (kz * g.dilation[0] * in.h + ky * g.dilation[1]) * in.w + kx * g.dilation[2];
            const float* __restrict v = src + offset;
            const int32_t tap = static_cast<int32_t>(offset);
#pragma omp simd
            for (int64_t x = 0; x < out.w; ++x) {
              const bool win = v[x] > b[x];
              b[x] = win ? v[x] : b[x];
              a[x] = win ? tap : a[x];
            }
          }
      const float* gr = grad + (oz * out.h + oy) * out.w;
      for (int64_t x = 0; x < out.w; ++x) dst[a[x] + x] += gr[x];
    }
}

// Which fast path a max-pool geometry has; planes holding NaN always take the generic
// path (a NaN must win its window, which the fast paths' comparisons do not do).
enum class MaxPoolPath { Generic, Tiled2x2, Filter };

MaxPoolPath maxPoolPath(const PoolGeometry& g, const Tensor& x) {
  const Dims5 xd = dims5(x);
  if (isTiledPool2x2(g)) return MaxPoolPath::Tiled2x2;
  if (isMaxFilter(g) && xd[2] * xd[3] * xd[4] < (int64_t(1) << 31)) return MaxPoolPath::Filter;
  return MaxPoolPath::Generic;
}

}  // namespace

void CpuBackend::maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  const MaxPoolPath path = maxPoolPath(g, x);
  forEachPlane(x, y, [&](int64_t p, const Plane& in, const Plane& out) {
    const float* src = x.data() + p * in.size();
    float* dst = y.data() + p * out.size();
    if (path != MaxPoolPath::Generic && !hasNaN(src, in.size())) {
      if (path == MaxPoolPath::Tiled2x2) tiledPool2x2Forward(src, in, out, dst);
      else maxFilterPlane(g, src, in, out, dst);
      return;
    }
    forEachWindow(g, in, out, [&](int64_t o, const TapRange& rz, const TapRange& ry, const TapRange& rx) {
      const int64_t arg = argmaxInWindow(g, src, in, rz, ry, rx);
      dst[o] = arg < 0 ? -std::numeric_limits<float>::infinity() : src[arg];
    });
  });
}

void CpuBackend::maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) {
  const MaxPoolPath path = maxPoolPath(g, x);
  forEachPlane(x, dy, [&](int64_t p, const Plane& in, const Plane& out) {
    const float* src = x.data() + p * in.size();
    const float* grad = dy.data() + p * out.size();
    float* dst = dx.data() + p * in.size();
    if (path != MaxPoolPath::Generic && !hasNaN(src, in.size())) {
      if (path == MaxPoolPath::Tiled2x2) tiledPool2x2Backward(src, grad, in, out, dst);
      else maxFilterBackwardPlane(g, src, grad, in, out, dst);
      return;
    }
    std::fill(dst, dst + in.size(), 0.0f);
    forEachWindow(g, in, out, [&](int64_t o, const TapRange& rz, const TapRange& ry, const TapRange& rx) {
      const int64_t arg = argmaxInWindow(g, src, in, rz, ry, rx);
      if (arg >= 0) dst[arg] += grad[o];
    });
  });
}

void CpuBackend::avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  forEachPlane(x, y, [&](int64_t p, const Plane& in, const Plane& out) {
    const float* src = x.data() + p * in.size();
    float* dst = y.data() + p * out.size();
    forEachWindow(g, in, out, [&](int64_t o, const TapRange& rz, const TapRange& ry, const TapRange& rx) {
      float acc = 0;
      forEachInsideTap(g, in, rz, ry, rx, [&](int64_t i) { acc += src[i]; });
      const int64_t divisor = avgDivisor(g, in, rz, ry, rx);
      dst[o] = divisor ? acc / static_cast<float>(divisor) : 0.0f;
    });
  });
}

void CpuBackend::avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) {
  forEachPlane(dx, dy, [&](int64_t p, const Plane& in, const Plane& out) {
    const float* grad = dy.data() + p * out.size();
    float* dst = dx.data() + p * in.size();
    std::fill(dst, dst + in.size(), 0.0f);
    forEachWindow(g, in, out, [&](int64_t o, const TapRange& rz, const TapRange& ry, const TapRange& rx) {
      const int64_t divisor = avgDivisor(g, in, rz, ry, rx);
      if (!divisor) return;
      const float share = grad[o] / static_cast<float>(divisor);
      forEachInsideTap(g, in, rz, ry, rx, [&](int64_t i) { dst[i] += share; });
    });
  });
}

}  // namespace segvol
