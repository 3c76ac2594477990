// Per-channel bias add and bias gradient: the convolutions' bias terms, kept
// out of convolution.cu (cuDNN) so they also run in the emulated build.
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {
__global__ void addBiasKernel(float* y, const float* b, int64_t n, int64_t c, int64_t s) {
  SEGVOL_GRID_STRIDE(i, n) y[i] += b[(i / s) % c];
}

// One block per channel; a fixed reduction tree, so the result is deterministic.
__global__ void channelSumKernel(const float* dy, float* out, int64_t n, int64_t c, int64_t s) {
  __shared__ double partial[256];
  const int64_t channel = blockIdx.x;
  double acc = 0;
  for (int64_t k = threadIdx.x; k < n * s; k += blockDim.x) acc += dy[((k / s) * c + channel) * s + k % s];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[channel] = static_cast<float>(partial[0]);
}
}  // namespace

void CudaBackend::addChannelBias(Tensor& y, const Tensor& bias) {
  const int64_t c = y.dim(1), s = y.size() / (y.dim(0) * c);
  SEGVOL_LAUNCH(addBiasKernel, cuda::blocksFor(y.size()), 256)(y.data(), bias.data(), y.size(), c, s);
  cuda::checkLaunch("addChannelBias");
}

void CudaBackend::channelSum(const Tensor& dy, Tensor& dbias) {
  const int64_t n = dy.dim(0), c = dy.dim(1), s = dy.size() / (n * c);
  SEGVOL_LAUNCH(channelSumKernel, static_cast<unsigned>(c), 256)(dy.data(), dbias.data(), n, c, s);
  cuda::checkLaunch("channelSum");
}

}  // namespace segvol
