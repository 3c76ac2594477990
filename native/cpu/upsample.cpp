// Nearest and bi/trilinear upsampling with PyTorch's source-coordinate rules.
// Taps are tabulated once per axis; planes run in parallel.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_backend.h"

namespace segvol {
namespace {

struct AxisTaps {
  std::vector<int64_t> i0, i1;
  std::vector<float> lambda;  // weight of i1
};

AxisTaps axisTaps(UpsampleMode mode, bool alignCorners, int64_t in, int64_t out) {
  AxisTaps t;
  t.i0.resize(out);
  t.i1.resize(out);
  t.lambda.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    if (mode == UpsampleMode::Nearest) {
      int64_t i = static_cast<int64_t>(std::floor(o * (static_cast<double>(in) / static_cast<double>(out))));
      if (i > in - 1) i = in - 1;
      t.i0[o] = t.i1[o] = i;
      t.lambda[o] = 0.0f;
      continue;
    }
    double src = alignCorners ? (out > 1 ? o * static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0)
                              : (o + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5;
    if (src < 0) src = 0;
    int64_t i0 = static_cast<int64_t>(std::floor(src));
    if (i0 > in - 1) i0 = in - 1;
    t.i0[o] = i0;
    t.i1[o] = i0 + 1 < in ? i0 + 1 : in - 1;
    t.lambda[o] = static_cast<float>(src - static_cast<double>(i0));
  }
  return t;
}

struct UpsamplePlan {
  AxisTaps z, y, x;
  int64_t inPlane, outPlane, inH, inW, outD, outH, outW, planes;
};

UpsamplePlan plan(UpsampleMode mode, bool alignCorners, const Tensor& small, const Tensor& large) {
  const Dims5 in = dims5(small), out = dims5(large);
  return {axisTaps(mode, alignCorners, in[2], out[2]),
          axisTaps(mode, alignCorners, in[3], out[3]),
          axisTaps(mode, alignCorners, in[4], out[4]),
          in[2] * in[3] * in[4],
          out[2] * out[3] * out[4],
          in[3],
          in[4],
          out[2],
          out[3],
          out[4],
          in[0] * in[1]};
}

// The taps of one output voxel: input offsets within a plane along each axis
// (z0/z1 already times the (H, W) slab, r0/r1 times W) and the weights of the second taps.
struct Taps {
  int64_t z0, z1, r0, r1, c0, c1;
  float lz, ly, lx;
};

// Calls visit(plane, o, taps) for every output voxel o of every (N, C) plane, planes in parallel.
template <typename Visit>
void forEachOutput(const UpsamplePlan& p, int64_t outputs, Visit&& visit) {
#pragma omp parallel for if (outputs > 4096)
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    for (int64_t oz = 0; oz < p.outD; ++oz) {
      Taps t{p.z.i0[oz] * p.inH * p.inW, p.z.i1[oz] * p.inH * p.inW, 0, 0, 0, 0, p.z.lambda[oz], 0, 0};
      for (int64_t oy = 0; oy < p.outH; ++oy) {
        t.ly = p.y.lambda[oy];
        t.r0 = p.y.i0[oy] * p.inW;
        t.r1 = p.y.i1[oy] * p.inW;
        const int64_t row = (oz * p.outH + oy) * p.outW;
        for (int64_t ox = 0; ox < p.outW; ++ox) {
          t.lx = p.x.lambda[ox];
          t.c0 = p.x.i0[ox];
          t.c1 = p.x.i1[ox];
          visit(plane, row + ox, t);
        }
      }
    }
  }
}

}  // namespace

void CpuBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  const UpsamplePlan p = plan(mode, alignCorners, x, y);
  forEachOutput(p, y.size(), [&](int64_t plane, int64_t o, const Taps& t) {
    const float* s0 = x.data() + plane * p.inPlane + t.z0;
    const float* s1 = x.data() + plane * p.inPlane + t.z1;
    const float lx = t.lx, ly = t.ly, lz = t.lz;
    const float a = s0[t.r0 + t.c0] * (1 - lx) + s0[t.r0 + t.c1] * lx;
    const float b = s0[t.r1 + t.c0] * (1 - lx) + s0[t.r1 + t.c1] * lx;
    const float c = s1[t.r0 + t.c0] * (1 - lx) + s1[t.r0 + t.c1] * lx;
    const float d = s1[t.r1 + t.c0] * (1 - lx) + s1[t.r1 + t.c1] * lx;
    y.data()[plane * p.outPlane + o] = (a * (1 - ly) + b * ly) * (1 - lz) + (c * (1 - ly) + d * ly) * lz;
  });
}

void CpuBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  const UpsamplePlan p = plan(mode, alignCorners, dx, dy);
  std::fill(dx.data(), dx.data() + dx.size(), 0.0f);
  forEachOutput(p, dy.size(), [&](int64_t plane, int64_t o, const Taps& t) {
    float* s0 = dx.data() + plane * p.inPlane + t.z0;
    float* s1 = dx.data() + plane * p.inPlane + t.z1;
    const float lx = t.lx, ly = t.ly, lz = t.lz;
    const float v = dy.data()[plane * p.outPlane + o];
    // Taps may coincide at borders (i0 == i1): accumulating both halves keeps the sum right.
    s0[t.r0 + t.c0] += v * (1 - lz) * (1 - ly) * (1 - lx);
    s0[t.r0 + t.c1] += v * (1 - lz) * (1 - ly) * lx;
    s0[t.r1 + t.c0] += v * (1 - lz) * ly * (1 - lx);
    s0[t.r1 + t.c1] += v * (1 - lz) * ly * lx;
    s1[t.r0 + t.c0] += v * lz * (1 - ly) * (1 - lx);
    s1[t.r0 + t.c1] += v * lz * (1 - ly) * lx;
    s1[t.r1 + t.c0] += v * lz * ly * (1 - lx);
    s1[t.r1 + t.c1] += v * lz * ly * lx;
  });
}

}  // namespace segvol
