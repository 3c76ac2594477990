// Batch normalization: per-channel statistics with one block per channel
// (double accumulation, fixed reduction tree), then elementwise kernels.
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

constexpr int kThreads = 256;

__device__ double blockSum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// x: (N, C, S). Writes mean, invStd and updates the running statistics of channel blockIdx.x.
__global__ void statsKernel(const float* x, int64_t n, int64_t c, int64_t s, double eps, double momentum, float* mean, float* invStd,
                            float* runningMean, float* runningVar) {
  __shared__ double shared[kThreads];
  const int64_t ch = blockIdx.x, count = n * s;
  double acc = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) acc += x[((k / s) * c + ch) * s + k % s];
  const double mu = blockSum(acc, shared) / static_cast<double>(count);
  acc = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const double d = x[((k / s) * c + ch) * s + k % s] - mu;
    acc += d * d;
  }
  const double sq = blockSum(acc, shared);
  if (threadIdx.x == 0) {
    const double biased = sq / static_cast<double>(count), unbiased = count > 1 ? sq / static_cast<double>(count - 1) : biased;
    mean[ch] = static_cast<float>(mu);
    invStd[ch] = static_cast<float>(1.0 / sqrt(biased + eps));
    runningMean[ch] = static_cast<float>((1 - momentum) * runningMean[ch] + momentum * mu);
    runningVar[ch] = static_cast<float>((1 - momentum) * runningVar[ch] + momentum * unbiased);
  }
}

// y = (x - mean) * invStd * gamma + beta; invStd from `var` (+eps) when given, else from invStd.
__global__ void normalizeKernel(const float* x, const float* gamma, const float* beta, const float* mean, const float* invStd,
                                const float* var, double eps, float* y, int64_t total, int64_t c, int64_t s) {
  SEGVOL_GRID_STRIDE(i, total) {
    const int64_t ch = (i / s) % c;
    const float is = var ? static_cast<float>(1.0 / sqrt(static_cast<double>(var[ch]) + eps)) : invStd[ch];
    y[i] = (x[i] - mean[ch]) * is * gamma[ch] + beta[ch];
  }
}

__global__ void gradSumsKernel(const float* x, const float* dy, const float* mean, const float* invStd, int64_t n, int64_t c, int64_t s,
                               float* dgamma, float* dbeta, double* sums) {
  __shared__ double shared[kThreads];
  const int64_t ch = blockIdx.x, count = n * s;
  double sumDy = 0, sumDyXmu = 0;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const int64_t i = ((k / s) * c + ch) * s + k % s;
    sumDy += dy[i];
    sumDyXmu += static_cast<double>(dy[i]) * (x[i] - mean[ch]);
  }
  const double a = blockSum(sumDy, shared), b = blockSum(sumDyXmu, shared);
  if (threadIdx.x == 0) {
    dgamma[ch] = static_cast<float>(b * invStd[ch]);
    dbeta[ch] = static_cast<float>(a);
    sums[2 * ch] = a;
    sums[2 * ch + 1] = b;
  }
}

__global__ void dxKernel(const float* x, const float* dy, const float* gamma, const float* mean, const float* invStd, const double* sums,
                         bool batchStatistics, double count, float* dx, int64_t total, int64_t c, int64_t s) {
  SEGVOL_GRID_STRIDE(i, total) {
    const int64_t ch = (i / s) % c;
    const float is = invStd[ch], k = is * gamma[ch];
    const float meanDy = batchStatistics ? static_cast<float>(sums[2 * ch] / count) : 0.0f;
    const float proj = batchStatistics ? static_cast<float>(sums[2 * ch + 1] / count) * is * is : 0.0f;
    dx[i] = k * (dy[i] - meanDy - (x[i] - mean[ch]) * proj);
  }
}

struct Layout {
  int64_t n, c, s;
};
Layout layoutOf(const Tensor& x) { return {x.dim(0), x.dim(1), x.size() / (x.dim(0) * x.dim(1))}; }

}  // namespace

void CudaBackend::batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, double momentum,
                                        Tensor& runningMean, Tensor& runningVar, Tensor& y, Tensor& saveMean, Tensor& saveInvStd) {
  const Layout d = layoutOf(x);
  SEGVOL_LAUNCH(statsKernel, static_cast<unsigned>(d.c), kThreads)(x.data(), d.n, d.c, d.s, eps, momentum, saveMean.data(), saveInvStd.data(),
                                                         runningMean.data(), runningVar.data());
  cuda::checkLaunch("batchNorm statistics");
  SEGVOL_LAUNCH(normalizeKernel, cuda::blocksFor(x.size()), 256)(x.data(), gamma.data(), beta.data(), saveMean.data(), saveInvStd.data(), nullptr,
                                                      eps, y.data(), x.size(), d.c, d.s);
  cuda::checkLaunch("batchNorm");
}

void CudaBackend::batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& runningMean,
                                            const Tensor& runningVar, double eps, Tensor& y) {
  const Layout d = layoutOf(x);
  SEGVOL_LAUNCH(normalizeKernel, cuda::blocksFor(x.size()), 256)(x.data(), gamma.data(), beta.data(), runningMean.data(), nullptr, runningVar.data(),
                                                      eps, y.data(), x.size(), d.c, d.s);
  cuda::checkLaunch("batchNorm");
}

void CudaBackend::batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd, bool batchStatistics,
                                    const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const Layout d = layoutOf(x);
  cuda::Scratch<double> scratch(2 * d.c);
  double* sums = scratch.get();
  SEGVOL_LAUNCH(gradSumsKernel, static_cast<unsigned>(d.c), kThreads)(x.data(), dy.data(), mean.data(), invStd.data(), d.n, d.c, d.s, dgamma.data(),
                                                            dbeta.data(), sums);
  cudaError_t launch = cudaGetLastError();
  if (launch == cudaSuccess) {
    SEGVOL_LAUNCH(dxKernel, cuda::blocksFor(x.size()), 256)(x.data(), dy.data(), gamma.data(), mean.data(), invStd.data(), sums, batchStatistics,
                                                 static_cast<double>(d.n * d.s), dx.data(), x.size(), d.c, d.s);
    launch = cudaGetLastError();
  }
  cuda::check(launch, "batchNormBackward");
}

}  // namespace segvol
