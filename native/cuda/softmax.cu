// Softmax over channels of (N, C, ...): one thread per voxel walks its C channels.
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

__global__ void softmaxKernel(const float* x, float* y, int64_t n, int64_t c, int64_t s) {
  SEGVOL_GRID_STRIDE(v, n * s) {
    const int64_t base = (v / s) * c * s + v % s;
    float mx = -INFINITY;
    for (int64_t k = 0; k < c; ++k) mx = fmaxf(mx, x[base + k * s]);
    float total = 0;
    for (int64_t k = 0; k < c; ++k) total += expf(x[base + k * s] - mx);
    for (int64_t k = 0; k < c; ++k) y[base + k * s] = expf(x[base + k * s] - mx) / total;
  }
}

__global__ void softmaxBackwardKernel(const float* y, const float* dy, float* dx, int64_t n, int64_t c, int64_t s) {
  SEGVOL_GRID_STRIDE(v, n * s) {
    const int64_t base = (v / s) * c * s + v % s;
    float dot = 0;
    for (int64_t k = 0; k < c; ++k) dot += y[base + k * s] * dy[base + k * s];
    for (int64_t k = 0; k < c; ++k) dx[base + k * s] = y[base + k * s] * (dy[base + k * s] - dot);
  }
}

}  // namespace

void CudaBackend::softmaxForward(const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), c = x.dim(1), s = x.size() / (n * c);
  SEGVOL_LAUNCH(softmaxKernel, cuda::blocksFor(n * s), 256)(x.data(), y.data(), n, c, s);
  cuda::checkLaunch("softmax");
}

void CudaBackend::softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const int64_t n = y.dim(0), c = y.dim(1), s = y.size() / (n * c);
  SEGVOL_LAUNCH(softmaxBackwardKernel, cuda::blocksFor(n * s), 256)(y.data(), dy.data(), dx.data(), n, c, s);
  cuda::checkLaunch("softmaxBackward");
}

}  // namespace segvol
