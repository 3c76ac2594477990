// Nearest and bi/trilinear upsampling with PyTorch's source-coordinate rules.
#include "loops.h"

namespace segvol {
using namespace ref;
namespace {

// Source position along one axis for upsampling, as PyTorch's interpolate.
struct LinearTap {
  int64_t i0, i1;
  double lambda;  // weight of i1
};
LinearTap linearTap(int64_t dst, int64_t inSize, int64_t outSize, bool alignCorners) {
  double src;
  if (alignCorners) {
    src = outSize > 1 ? dst * static_cast<double>(inSize - 1) / static_cast<double>(outSize - 1) : 0.0;
  } else {
    src = (dst + 0.5) * static_cast<double>(inSize) / static_cast<double>(outSize) - 0.5;
    if (src < 0) src = 0;
  }
  int64_t i0 = static_cast<int64_t>(std::floor(src));
  if (i0 > inSize - 1) i0 = inSize - 1;
  int64_t i1 = i0 + 1 < inSize ? i0 + 1 : inSize - 1;
  return {i0, i1, src - static_cast<double>(i0)};
}
int64_t nearestTap(int64_t dst, int64_t inSize, int64_t outSize) {
  int64_t i = static_cast<int64_t>(std::floor(dst * static_cast<double>(inSize) / static_cast<double>(outSize)));
  return i < inSize - 1 ? i : inSize - 1;
}

// Calls f(zIn, yIn, xIn, weight) for every input tap that output voxel (z, y, x) reads.
template <typename F>
void forEachUpsampleTap(UpsampleMode mode, bool alignCorners, const Dims5& in, const Dims5& out, int64_t z,
                        int64_t y, int64_t x, F&& f) {
  if (mode == UpsampleMode::Nearest) {
    f(nearestTap(z, in[2], out[2]), nearestTap(y, in[3], out[3]), nearestTap(x, in[4], out[4]), 1.0);
    return;
  }
  LinearTap tz = linearTap(z, in[2], out[2], alignCorners);
  LinearTap ty = linearTap(y, in[3], out[3], alignCorners);
  LinearTap tx = linearTap(x, in[4], out[4], alignCorners);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 2; ++c) {
        double w = (a ? tz.lambda : 1 - tz.lambda) * (b ? ty.lambda : 1 - ty.lambda) * (c ? tx.lambda : 1 - tx.lambda);
        f(a ? tz.i1 : tz.i0, b ? ty.i1 : ty.i0, c ? tx.i1 : tx.i0, w);
      }
}

}  // namespace

void ReferenceBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t z, int64_t yy, int64_t xx) {
    double acc = 0;
    forEachUpsampleTap(mode, alignCorners, xd, yd, z, yy, xx, [&](int64_t iz, int64_t iy, int64_t ix, double w) {
      acc += w * x.data()[at(xd, n, c, iz, iy, ix)];
    });
    y.data()[at(yd, n, c, z, yy, xx)] = static_cast<float>(acc);
  });
}

void ReferenceBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(dx), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  forEachVoxel(yd, [&](int64_t n, int64_t c, int64_t z, int64_t yy, int64_t xx) {
    const double grad = dy.data()[at(yd, n, c, z, yy, xx)];
    forEachUpsampleTap(mode, alignCorners, xd, yd, z, yy, xx, [&](int64_t iz, int64_t iy, int64_t ix, double w) {
      acc[at(xd, n, c, iz, iy, ix)] += w * grad;
    });
  });
  storeRounded(acc, dx);
}

}  // namespace segvol
