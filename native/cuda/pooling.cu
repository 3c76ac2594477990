// Max pooling / max-filtering and average pooling: one thread per output voxel;
// backward passes scatter with atomicAdd (order-dependent in the last bits,
// within the parity tolerance).
#include "../core/window.h"
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"
#include "volume.cuh"

namespace segvol {
namespace {

struct Geo {
  cuda::Volumes v;
  int64_t k[3], s[3], p[3], d[3];
  bool countIncludePad;
};

Geo geo(const PoolGeometry& g, const Tensor& in, const Tensor& out) {
  Geo r{cuda::volumes(in, out), {}, {}, {}, {}, g.countIncludePad};
  for (int i = 0; i < 3; ++i) {
    r.k[i] = g.kernel[i];
    r.s[i] = g.stride[i];
    r.p[i] = g.padding[i];
    r.d[i] = g.dilation[i];
  }
  return r;
}

// Calls visit(input index) for every tap of the window of output voxel `at` that
// lands inside the input, in scan order (z, then y, then x), until visit returns true.
template <typename Visit>
__device__ void forEachWindowTap(const Geo& g, const cuda::Voxel& at, Visit&& visit) {
  const int64_t oz = windowOrigin(at.z, g.s[0], g.p[0]), oy = windowOrigin(at.y, g.s[1], g.p[1]),
                ox = windowOrigin(at.x, g.s[2], g.p[2]);
  for (int64_t kz = 0; kz < g.k[0]; ++kz)
    for (int64_t ky = 0; ky < g.k[1]; ++ky)
      for (int64_t kx = 0; kx < g.k[2]; ++kx) {
        const int64_t iz = oz + kz * g.d[0], iy = oy + ky * g.d[1], ix = ox + kx * g.d[2];
        if (iz < 0 || iz >= g.v.id || iy < 0 || iy >= g.v.ih || ix < 0 || ix >= g.v.iw) continue;
        if (visit(cuda::inputIndex(g.v, at.plane, iz, iy, ix))) return;
      }
}

// Index of the window's first maximum (NaN wins), or -1.
__device__ int64_t argmaxAt(const float* x, const Geo& g, const cuda::Voxel& at) {
  int64_t arg = -1;
  float best = -INFINITY;
  forEachWindowTap(g, at, [&](int64_t i) {
    const float v = x[i];
    if (arg < 0 || v > best || isnan(v)) {
      best = v;
      arg = i;
    }
    return static_cast<bool>(isnan(v));
  });
  return arg;
}

__global__ void maxPoolKernel(const float* x, float* y, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.v.outputs()) {
    const int64_t arg = argmaxAt(x, g, cuda::outputVoxel(g.v, o));
    y[o] = arg < 0 ? -INFINITY : x[arg];
  }
}

__global__ void maxPoolBackwardKernel(const float* x, const float* dy, float* dx, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.v.outputs()) {
    const int64_t arg = argmaxAt(x, g, cuda::outputVoxel(g.v, o));
    if (arg >= 0) atomicAdd(dx + arg, dy[o]);
  }
}

__device__ int64_t divisorAt(const Geo& g, const cuda::Voxel& at) {
  const int64_t o[3] = {at.z, at.y, at.x}, size[3] = {g.v.id, g.v.ih, g.v.iw};
  int64_t count = 1;
  for (int a = 0; a < 3; ++a) {
    count *= avgPoolAxisTaps(windowOrigin(o[a], g.s[a], g.p[a]), g.k[a], g.d[a], g.p[a], size[a], g.countIncludePad);
  }
  return count;
}

template <bool Backward>
__global__ void avgPoolKernel(const float* in, float* out, Geo g) {
  SEGVOL_GRID_STRIDE(o, g.v.outputs()) {
    const cuda::Voxel at = cuda::outputVoxel(g.v, o);
    const int64_t divisor = divisorAt(g, at);
    float acc = 0;
    forEachWindowTap(g, at, [&](int64_t i) {
      if (Backward) {
        if (divisor) atomicAdd(out + i, in[o] / static_cast<float>(divisor));
      } else {
        acc += in[i];
      }
      return false;
    });
    if (!Backward) out[o] = divisor ? acc / static_cast<float>(divisor) : 0.0f;
  }
}

}  // namespace

void CudaBackend::maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(maxPoolKernel, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), geo(g, x, y));
  cuda::checkLaunch("maxPool");
}

void CudaBackend::maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) {
  cuda::zero(dx);
  SEGVOL_LAUNCH(maxPoolBackwardKernel, cuda::blocksFor(dy.size()), 256)(x.data(), dy.data(), dx.data(), geo(g, x, dy));
  cuda::checkLaunch("maxPoolBackward");
}

void CudaBackend::avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(avgPoolKernel<false>, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), geo(g, x, y));
  cuda::checkLaunch("avgPool");
}

void CudaBackend::avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) {
  cuda::zero(dx);
  SEGVOL_LAUNCH(avgPoolKernel<true>, cuda::blocksFor(dy.size()), 256)(dy.data(), dx.data(), geo(g, dx, dy));
  cuda::checkLaunch("avgPoolBackward");
}

}  // namespace segvol
