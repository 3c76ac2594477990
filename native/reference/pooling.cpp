// Max and average pooling: every output voxel's window, tap by tap in scan order.
#include <limits>

#include "../core/window.h"
#include "loops.h"

namespace segvol {
using namespace ref;
namespace {
// Calls f(index into x) for every in-bounds input voxel of output voxel (oz, oy, ox)'s window,
// in scan order (z, then y, then x); returns the number of window taps including padding.
template <typename F>
void forEachWindowTap(const PoolGeometry& g, const Dims5& xd, int64_t n, int64_t c, int64_t oz, int64_t oy,
                      int64_t ox, F&& f) {
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz)
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        int64_t iz = windowOrigin(oz, g.stride[0], g.padding[0]) + kz * g.dilation[0];
        int64_t iy = windowOrigin(oy, g.stride[1], g.padding[1]) + ky * g.dilation[1];
        int64_t ix = windowOrigin(ox, g.stride[2], g.padding[2]) + kx * g.dilation[2];
        if (inside(iz, xd[2]) && inside(iy, xd[3]) && inside(ix, xd[4])) f(at(xd, n, c, iz, iy, ix));
      }
}

// Average-pooling divisor of output voxel (oz, oy, ox)'s window.
int64_t avgDivisor(const PoolGeometry& g, const Dims5& xd, int64_t oz, int64_t oy, int64_t ox) {
  int64_t count = 1;
  const int64_t o[3] = {oz, oy, ox};
  for (int a = 0; a < 3; ++a) {
    count *= avgPoolAxisTaps(windowOrigin(o[a], g.stride[a], g.padding[a]), g.kernel[a], g.dilation[a], g.padding[a],
                             xd[2 + a], g.countIncludePad);
  }
  return count;
}
}  // namespace

void ReferenceBackend::maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t oz, int64_t oy, int64_t ox) {
    float best = -std::numeric_limits<float>::infinity();
    bool seenNaN = false;
    forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) {
      float v = x.data()[i];
      if (seenNaN) return;
      if (std::isnan(v)) {
        seenNaN = true;
        best = v;
      } else if (v > best) {
        best = v;
      }
    });
    y.data()[at(yd, n, c, oz, oy, ox)] = best;
  });
}

void ReferenceBackend::maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(x), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t oz, int64_t oy, int64_t ox) {
    int64_t arg = -1;
    float best = -std::numeric_limits<float>::infinity();
    forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) {
      float v = x.data()[i];
      if (arg >= 0 && std::isnan(best)) return;
      if (arg < 0 || v > best || std::isnan(v)) {
        best = v;
        arg = i;
      }
    });
    if (arg >= 0) acc[arg] += dy.data()[at(yd, n, c, oz, oy, ox)];
  });
  storeRounded(acc, dx);
}

void ReferenceBackend::avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t oz, int64_t oy, int64_t ox) {
    double acc = 0;
    forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) { acc += x.data()[i]; });
    int64_t divisor = avgDivisor(g, xd, oz, oy, ox);
    y.data()[at(yd, n, c, oz, oy, ox)] = divisor ? static_cast<float>(acc / divisor) : 0.0f;
  });
}

void ReferenceBackend::avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(dx), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t oz, int64_t oy, int64_t ox) {
    int64_t divisor = avgDivisor(g, xd, oz, oy, ox);
    if (!divisor) return;
    double share = dy.data()[at(yd, n, c, oz, oy, ox)] / static_cast<double>(divisor);
    forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) { acc[i] += share; });
  });
  storeRounded(acc, dx);
}

}  // namespace segvol
