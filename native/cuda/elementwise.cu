// Elementwise activations and arithmetic: the twin of native/cpu/elementwise.cpp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

__global__ void activationKernel(int kind, const float* x, float* y, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = kind == 0 ? tanhf(v) : kind == 1 ? 1.0f / (1.0f + expf(-v)) : (v > 0.0f ? v : 0.0f);
  }
}

__global__ void activationBackwardKernel(int kind, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) {
    dx[i] = kind == 0 ? dy[i] * (1.0f - y[i] * y[i]) : kind == 1 ? dy[i] * y[i] * (1.0f - y[i]) : (x[i] > 0.0f ? dy[i] : 0.0f);
  }
}

__global__ void clampKernel(const float* x, float lo, float hi, float* y, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) y[i] = fminf(fmaxf(x[i], lo), hi);
}

__global__ void clampBackwardKernel(const float* x, float lo, float hi, const float* dy, float* dx, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) dx[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0.0f;
}

// One double per block: the block's threads reduce their strided sums in shared memory.
constexpr int kSquareThreads = 256;
__global__ void sumOfSquaresKernel(const float* x, int64_t n, double* partial) {
  __shared__ double sums[kSquareThreads];
  double acc = 0;
  SEGVOL_GRID_STRIDE(i, n) acc += static_cast<double>(x[i]) * x[i];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kSquareThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

__global__ void binaryKernel(int kind, const float* a, const float* b, float* y, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) y[i] = kind == 0 ? a[i] + b[i] : a[i] * b[i];
}

__global__ void scaleKernel(const float* x, float factor, float* y, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) y[i] = x[i] * factor;
}

__global__ void accumulateKernel(const float* x, float* y, int64_t n, bool first) {
  SEGVOL_GRID_STRIDE(i, n) y[i] = first ? x[i] : y[i] + x[i];
}

int activationIndex(ActivationKind kind) { return kind == ActivationKind::Tanh ? 0 : kind == ActivationKind::Sigmoid ? 1 : 2; }

}  // namespace

void CudaBackend::activation(ActivationKind kind, const Tensor& x, Tensor& y) {
  if (!x.size()) return;
  SEGVOL_LAUNCH(activationKernel, cuda::blocksFor(x.size()), 256)(activationIndex(kind), x.data(), y.data(), x.size());
  cuda::checkLaunch("activation");
}

void CudaBackend::activationBackward(ActivationKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  if (!x.size()) return;
  SEGVOL_LAUNCH(activationBackwardKernel, cuda::blocksFor(x.size()), 256)(activationIndex(kind), x.data(), y.data(), dy.data(), dx.data(), x.size());
  cuda::checkLaunch("activationBackward");
}

void CudaBackend::clamp(const Tensor& x, float lo, float hi, Tensor& y) {
  if (!x.size()) return;
  SEGVOL_LAUNCH(clampKernel, cuda::blocksFor(x.size()), 256)(x.data(), lo, hi, y.data(), x.size());
  cuda::checkLaunch("clamp");
}

void CudaBackend::clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) {
  if (!x.size()) return;
  SEGVOL_LAUNCH(clampBackwardKernel, cuda::blocksFor(x.size()), 256)(x.data(), lo, hi, dy.data(), dx.data(), x.size());
  cuda::checkLaunch("clampBackward");
}

double CudaBackend::sumOfSquares(const Tensor& x) {
  if (!x.size()) return 0;
  // A fixed grid for a given size, partials added on the host in block order: deterministic.
  const int blocks = std::min(cuda::blocksFor(x.size(), kSquareThreads), 1024);
  cuda::Scratch<double> partial(static_cast<size_t>(blocks));
  SEGVOL_LAUNCH(sumOfSquaresKernel, blocks, kSquareThreads)(x.data(), x.size(), partial.get());
  cuda::checkLaunch("sumOfSquares");
  std::vector<double> host(static_cast<size_t>(blocks));
  cuda::check(cudaMemcpy(host.data(), partial.get(), host.size() * sizeof(double), cudaMemcpyDeviceToHost), "sumOfSquares");
  double total = 0;
  for (double v : host) total += v;
  return total;
}

void CudaBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) {
  if (!a.size()) return;
  SEGVOL_LAUNCH(binaryKernel, cuda::blocksFor(a.size()), 256)(kind == BinaryKind::Add ? 0 : 1, a.data(), b.data(), y.data(), a.size());
  cuda::checkLaunch(kind == BinaryKind::Add ? "add" : "mul");
}

void CudaBackend::scale(const Tensor& x, float factor, Tensor& y) {
  if (!x.size()) return;
  SEGVOL_LAUNCH(scaleKernel, cuda::blocksFor(x.size()), 256)(x.data(), factor, y.data(), x.size());
  cuda::checkLaunch("scale");
}

void CudaBackend::sum(const std::vector<const Tensor*>& xs, Tensor& y) {
  if (!y.size()) return;
  for (size_t i = 0; i < xs.size(); ++i) {
    SEGVOL_LAUNCH(accumulateKernel, cuda::blocksFor(y.size()), 256)(xs[i]->data(), y.data(), y.size(), i == 0);
    cuda::checkLaunch("sum");
  }
}

}  // namespace segvol
