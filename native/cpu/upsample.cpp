// Nearest and bi/trilinear upsampling with PyTorch's source-coordinate rules.
// Taps are tabulated once per axis; planes run in parallel.
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

}  // namespace

void CpuBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  const UpsamplePlan p = plan(mode, alignCorners, x, y);
#pragma omp parallel for if (y.size() > 4096)
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    const float* src = x.data() + plane * p.inPlane;
    float* dst = y.data() + plane * p.outPlane;
    for (int64_t oz = 0; oz < p.outD; ++oz) {
      const float lz = p.z.lambda[oz];
      const float* s0 = src + p.z.i0[oz] * p.inH * p.inW;
      const float* s1 = src + p.z.i1[oz] * p.inH * p.inW;
      for (int64_t oy = 0; oy < p.outH; ++oy) {
        const float ly = p.y.lambda[oy];
        const int64_t r0 = p.y.i0[oy] * p.inW, r1 = p.y.i1[oy] * p.inW;
        float* out = dst + (oz * p.outH + oy) * p.outW;
        for (int64_t ox = 0; ox < p.outW; ++ox) {
          const float lx = p.x.lambda[ox];
          const int64_t c0 = p.x.i0[ox], c1 = p.x.i1[ox];
          const float a = s0[r0 + c0] * (1 - lx) + s0[r0 + c1] * lx;
          const float b = s0[r1 + c0] * (1 - lx) + s0[r1 + c1] * lx;
          const float c = s1[r0 + c0] * (1 - lx) + s1[r0 + c1] * lx;
          const float d = s1[r1 + c0] * (1 - lx) + s1[r1 + c1] * lx;
          out[ox] = (a * (1 - ly) + b * ly) * (1 - lz) + (c * (1 - ly) + d * ly) * lz;
        }
      }
    }
  }
}

void CpuBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  const UpsamplePlan p = plan(mode, alignCorners, dx, dy);
#pragma omp parallel for if (dy.size() > 4096)
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    const float* grad = dy.data() + plane * p.outPlane;
    float* dst = dx.data() + plane * p.inPlane;
    for (int64_t i = 0; i < p.inPlane; ++i) dst[i] = 0.0f;
    for (int64_t oz = 0; oz < p.outD; ++oz) {
      const float lz = p.z.lambda[oz];
      float* s0 = dst + p.z.i0[oz] * p.inH * p.inW;
      float* s1 = dst + p.z.i1[oz] * p.inH * p.inW;
      for (int64_t oy = 0; oy < p.outH; ++oy) {
        const float ly = p.y.lambda[oy];
        const int64_t r0 = p.y.i0[oy] * p.inW, r1 = p.y.i1[oy] * p.inW;
        const float* g = grad + (oz * p.outH + oy) * p.outW;
        for (int64_t ox = 0; ox < p.outW; ++ox) {
          const float lx = p.x.lambda[ox];
          const int64_t c0 = p.x.i0[ox], c1 = p.x.i1[ox];
          const float v = g[ox];
          // Taps may coincide at borders (i0 == i1): accumulating both halves keeps the sum right.
          s0[r0 + c0] += v * (1 - lz) * (1 - ly) * (1 - lx);
          s0[r0 + c1] += v * (1 - lz) * (1 - ly) * lx;
          s0[r1 + c0] += v * (1 - lz) * ly * (1 - lx);
          s0[r1 + c1] += v * (1 - lz) * ly * lx;
          s1[r0 + c0] += v * lz * (1 - ly) * (1 - lx);
          s1[r0 + c1] += v * lz * (1 - ly) * lx;
          s1[r1 + c0] += v * lz * ly * (1 - lx);
          s1[r1 + c1] += v * lz * ly * lx;
        }
      }
    }
  }
}

}  // namespace segvol
