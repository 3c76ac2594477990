// Max pooling / max-filtering, average pooling and upsampling: one thread per
// output voxel; backward passes scatter with atomicAdd (order-dependent in the
// last bits, within the parity tolerance).
#include "../cpu/host_backend.h"
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

struct Geo {
  int64_t n, c, id, ih, iw, od, oh, ow;
  int64_t k[3], s[3], p[3], d[3];
  bool countIncludePad;
};

Geo geo(const PoolGeometry& g, const Tensor& in, const Tensor& out) {
  const Dims5 a = dims5(in), b = dims5(out);
  Geo r{a[0], a[1], a[2], a[3], a[4], b[2], b[3], b[4], {}, {}, {}, {}, g.countIncludePad};
  for (int i = 0; i < 3; ++i) {
    r.k[i] = g.kernel[i];
    r.s[i] = g.stride[i];
    r.p[i] = g.padding[i];
    r.d[i] = g.dilation[i];
  }
  return r;
}

// Index of the window's first maximum (NaN wins), or -1.
__device__ int64_t argmaxAt(const float* x, const Geo& g, int64_t plane, int64_t oz, int64_t oy, int64_t ox) {
  int64_t arg = -1;
  float best = -INFINITY;
  for (int64_t kz = 0; kz < g.k[0]; ++kz)
    for (int64_t ky = 0; ky < g.k[1]; ++ky)
      for (int64_t kx = 0; kx < g.k[2]; ++kx) {
        const int64_t iz = oz * g.s[0] - g.p[0] + kz * g.d[0], iy = oy * g.s[1] - g.p[1] + ky * g.d[1], ix = ox * g.s[2] - g.p[2] + kx * g.d[2];
        if (iz < 0 || iz >= g.id || iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
        const int64_t i = ((plane * g.id + iz) * g.ih + iy) * g.iw + ix;
        const float v = x[i];
        if (arg < 0 || v > best || isnan(v)) {
          best = v;
          arg = i;
          if (isnan(v)) return arg;
        }
      }
  return arg;
}

__global__ void maxPoolKernel(const float* x, float* y, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.n * g.c * g.od * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, oz = (o / (g.ow * g.oh)) % g.od, plane = o / (g.ow * g.oh * g.od);
    const int64_t arg = argmaxAt(x, g, plane, oz, oy, ox);
    y[o] = arg < 0 ? -INFINITY : x[arg];
  }
}

__global__ void maxPoolBackwardKernel(const float* x, const float* dy, float* dx, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.n * g.c * g.od * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, oz = (o / (g.ow * g.oh)) % g.od, plane = o / (g.ow * g.oh * g.od);
    const int64_t arg = argmaxAt(x, g, plane, oz, oy, ox);
    if (arg >= 0) atomicAdd(dx + arg, dy[o]);
  }
}

__device__ int64_t divisorAt(const Geo& g, int64_t oz, int64_t oy, int64_t ox) {
  const int64_t o[3] = {oz, oy, ox}, size[3] = {g.id, g.ih, g.iw};
  int64_t count = 1;
  for (int a = 0; a < 3; ++a) {
    const int64_t lo = g.countIncludePad ? -g.p[a] : 0, hi = g.countIncludePad ? size[a] + g.p[a] : size[a];
    int64_t taps = 0;
    for (int64_t k = 0; k < g.k[a]; ++k) {
      const int64_t i = o[a] * g.s[a] - g.p[a] + k * g.d[a];
      if (i >= lo && i < hi) ++taps;
    }
    count *= taps;
  }
  return count;
}

template <bool Backward>
__global__ void avgPoolKernel(const float* in, float* out, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.n * g.c * g.od * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, oz = (o / (g.ow * g.oh)) % g.od, plane = o / (g.ow * g.oh * g.od);
    const int64_t divisor = divisorAt(g, oz, oy, ox);
    float acc = 0;
    for (int64_t kz = 0; kz < g.k[0]; ++kz)
      for (int64_t ky = 0; ky < g.k[1]; ++ky)
        for (int64_t kx = 0; kx < g.k[2]; ++kx) {
          const int64_t iz = oz * g.s[0] - g.p[0] + kz * g.d[0], iy = oy * g.s[1] - g.p[1] + ky * g.d[1], ix = ox * g.s[2] - g.p[2] + kx * g.d[2];
          if (iz < 0 || iz >= g.id || iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) continue;
          const int64_t i = ((plane * g.id + iz) * g.ih + iy) * g.iw + ix;
          if (Backward) {
            if (divisor) atomicAdd(out + i, in[o] / static_cast<float>(divisor));
          } else {
            acc += in[i];
          }
        }
    if (!Backward) out[o] = divisor ? acc / static_cast<float>(divisor) : 0.0f;
  }
}

__device__ void tap(int64_t dst, int64_t inSize, int64_t outSize, bool linear, bool alignCorners, int64_t* i0, int64_t* i1, float* lambda) {
  if (!linear) {
    int64_t i = static_cast<int64_t>(floor(dst * (static_cast<double>(inSize) / static_cast<double>(outSize))));
    *i0 = *i1 = i < inSize - 1 ? i : inSize - 1;
    *lambda = 0;
    return;
  }
  double src = alignCorners ? (outSize > 1 ? dst * static_cast<double>(inSize - 1) / static_cast<double>(outSize - 1) : 0.0)
                            : (dst + 0.5) * static_cast<double>(inSize) / static_cast<double>(outSize) - 0.5;
  if (src < 0) src = 0;
  int64_t a = static_cast<int64_t>(floor(src));
  if (a > inSize - 1) a = inSize - 1;
  *i0 = a;
  *i1 = a + 1 < inSize ? a + 1 : inSize - 1;
  *lambda = static_cast<float>(src - static_cast<double>(a));
}

template <bool Backward>
__global__ void upsampleKernel(const float* in, float* out, Geo g, bool linear, bool alignCorners) {
  // in/out roles: forward reads the small volume (id..) and writes the large (od..); backward scatters back.
  SEGVOL_GRID_STRIDE(o, g.n * g.c * g.od * g.oh * g.ow) {
    const int64_t ox = o % g.ow, oy = (o / g.ow) % g.oh, oz = (o / (g.ow * g.oh)) % g.od, plane = o / (g.ow * g.oh * g.od);
    int64_t z0, z1, y0, y1, x0, x1;
    float lz, ly, lx;
    tap(oz, g.id, g.od, linear, alignCorners, &z0, &z1, &lz);
    tap(oy, g.ih, g.oh, linear, alignCorners, &y0, &y1, &ly);
    tap(ox, g.iw, g.ow, linear, alignCorners, &x0, &x1, &lx);
    float acc = 0;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        for (int c = 0; c < 2; ++c) {
          const float w = (a ? lz : 1 - lz) * (b ? ly : 1 - ly) * (c ? lx : 1 - lx);
          const int64_t i = ((plane * g.id + (a ? z1 : z0)) * g.ih + (b ? y1 : y0)) * g.iw + (c ? x1 : x0);
          if (Backward) {
            if (w != 0.0f) atomicAdd(out + i, w * in[o]);
          } else {
            acc += w * in[i];
          }
        }
    if (!Backward) out[o] = acc;
  }
}

void zero(Tensor& t) {
  cuda::check(cudaMemset(t.data(), 0, t.bytes()), "cudaMemset");
}

}  // namespace

void CudaBackend::maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(maxPoolKernel, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), geo(g, x, y));
  cuda::checkLaunch("maxPool");
}

void CudaBackend::maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) {
  zero(dx);
  SEGVOL_LAUNCH(maxPoolBackwardKernel, cuda::blocksFor(dy.size()), 256)(x.data(), dy.data(), dx.data(), geo(g, x, dy));
  cuda::checkLaunch("maxPoolBackward");
}

void CudaBackend::avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(avgPoolKernel<false>, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), geo(g, x, y));
  cuda::checkLaunch("avgPool");
}

void CudaBackend::avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) {
  zero(dx);
  SEGVOL_LAUNCH(avgPoolKernel<true>, cuda::blocksFor(dy.size()), 256)(dy.data(), dx.data(), geo(g, dx, dy));
  cuda::checkLaunch("avgPoolBackward");
}

void CudaBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(upsampleKernel<false>, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), geo(PoolGeometry{}, x, y), mode == UpsampleMode::Linear,
                                                            alignCorners);
  cuda::checkLaunch("upsample");
}

void CudaBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  zero(dx);
  SEGVOL_LAUNCH(upsampleKernel<true>, cuda::blocksFor(dy.size()), 256)(dy.data(), dx.data(), geo(PoolGeometry{}, dx, dy), mode == UpsampleMode::Linear,
                                                            alignCorners);
  cuda::checkLaunch("upsampleBackward");
}

}  // namespace segvol
