// Convolutions, plain loops: every (output voxel, kernel tap) pair that reads
// an input voxel, accumulated in double.
#include "../core/window.h"
#include "loops.h"

namespace segvol {
using namespace ref;
namespace {
// Calls f(xIndex, wIndex, yIndex) for every pair of output voxel and kernel tap
// that reads an input voxel (taps over padding are skipped). Forward, data and
// weight gradients are the same sum seen from its three operands.
template <typename F>
void forEachConvTap(const ConvGeometry& g, const Dims5& xd, const Dims5& wd, const Dims5& yd, F&& f) {
  const int64_t cPerGroup = xd[1] / g.groups, oPerGroup = yd[1] / g.groups;
  forEachVoxel(yd, [&](int64_t n, int64_t o, int64_t oz, int64_t oy, int64_t ox) {
    const int64_t group = o / oPerGroup;
    for (int64_t ci = 0; ci < cPerGroup; ++ci)
      for (int64_t kz = 0; kz < wd[2]; ++kz)
        for (int64_t ky = 0; ky < wd[3]; ++ky)
          for (int64_t kx = 0; kx < wd[4]; ++kx) {
            const int64_t iz = windowOrigin(oz, g.stride[0], g.padding[0]) + kz * g.dilation[0];
            const int64_t iy = windowOrigin(oy, g.stride[1], g.padding[1]) + ky * g.dilation[1];
            const int64_t ix = windowOrigin(ox, g.stride[2], g.padding[2]) + kx * g.dilation[2];
            if (!inside(iz, xd[2]) || !inside(iy, xd[3]) || !inside(ix, xd[4])) continue;
            f(at(xd, n, group * cPerGroup + ci, iz, iy, ix), at(wd, o, ci, kz, ky, kx), at(yd, n, o, oz, oy, ox));
          }
  });
}

}  // namespace

void ReferenceBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias,
                                   Tensor& y) {
  std::vector<double> acc(y.size(), 0.0);
  forEachConvTap(g, dims5(x), dims5(w), dims5(y), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[yi] += static_cast<double>(x.data()[xi]) * w.data()[wi];
  });
  storeRounded(acc, y);
  if (bias) addChannelBias(y, *bias);
}

void ReferenceBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  std::vector<double> acc(dx.size(), 0.0);
  forEachConvTap(g, dims5(dx), dims5(w), dims5(dy), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[xi] += static_cast<double>(dy.data()[yi]) * w.data()[wi];
  });
  storeRounded(acc, dx);
}

void ReferenceBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                                           Tensor* dbias) {
  std::vector<double> acc(dw.size(), 0.0);
  forEachConvTap(g, dims5(x), dims5(dw), dims5(dy), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[wi] += static_cast<double>(dy.data()[yi]) * x.data()[xi];
  });
  storeRounded(acc, dw);
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
