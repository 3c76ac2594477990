// Self-test of the emulated CUDA runtime (native/cuda/emulation): the emulated
// build is only worth its parity results if launches, barriers, shared memory
// and the device-memory rules behave as on a GPU. Built with SEGVOL_CUDA=EMULATED
// as build-emulated/emulation_selftest; test/cuda.test.ts runs it. Prints one
// line per check and exits 1 if any failed.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "../../native/cuda/cuda_common.cuh"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// Tree reduction in shared memory: wrong without working barriers.
__global__ void blockSumKernel(const float* x, float* out, int n) {
  __shared__ float partial[256];
  float acc = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) acc += x[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Each (block, thread) of a 2D grid of 2D blocks marks its own cell once.
__global__ void coverageKernel(int* marks, int width) {
  const unsigned x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  marks[y * width + x] += 1;
}

__global__ void divergentBarrierKernel(float* x) {
  if (threadIdx.x % 2 == 0) __syncthreads();
  x[threadIdx.x] = 1.0f;
}

__global__ void writeKernel(float* x, int n) {
  SEGVOL_GRID_STRIDE(i, n) x[i] = static_cast<float>(i);
}

}  // namespace

int main() {
  // Barriers and shared memory.
  const int n = 5000, blocks = 3;
  std::vector<float> host(n);
  double expected = 0;
  for (int i = 0; i < n; ++i) expected += host[i] = static_cast<float>(i % 7);
  float *x = nullptr, *sums = nullptr;
  cudaMalloc(&x, n * sizeof(float));
  cudaMalloc(&sums, blocks * sizeof(float));
  cudaMemcpy(x, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  SEGVOL_LAUNCH(blockSumKernel, blocks, 256)(x, sums, n);
  check(cudaGetLastError() == cudaSuccess, "a block reduction with __syncthreads launches");
  float partial[blocks];
  cudaMemcpy(partial, sums, sizeof(partial), cudaMemcpyDeviceToHost);
  check(partial[0] + partial[1] + partial[2] == static_cast<float>(expected),
        "the shared-memory reduction sums to " + std::to_string(expected) + " (got " + std::to_string(partial[0] + partial[1] + partial[2]) + ")");

  // Indices of a 2D grid.
  const int width = 4 * 8, height = 3 * 2;
  int* marks = nullptr;
  cudaMalloc(&marks, width * height * sizeof(int));
  cudaMemset(marks, 0, width * height * sizeof(int));
  SEGVOL_LAUNCH(coverageKernel, dim3(4, 3), dim3(8, 2))(marks, width);
  std::vector<int> seen(width * height);
  cudaMemcpy(seen.data(), marks, seen.size() * sizeof(int), cudaMemcpyDeviceToHost);
  bool once = true;
  for (int v : seen) once = once && v == 1;
  check(once, "a 4x3 grid of 8x2 blocks visits each of its 192 threads once");

  // Grid-stride loops over more elements than threads.
  SEGVOL_LAUNCH(writeKernel, 2, 64)(x, n);
  cudaMemcpy(host.data(), x, n * sizeof(float), cudaMemcpyDeviceToHost);
  check(host[0] == 0 && host[127] == 127 && host[n - 1] == n - 1, "a grid-stride loop of 128 threads covers 5000 elements");

  // What a GPU rejects is rejected here too.
  SEGVOL_LAUNCH(writeKernel, 2, 64)(host.data(), n);
  check(cudaGetLastError() == cudaErrorInvalidDevicePointer, "a host pointer as a kernel argument is an error");
  SEGVOL_LAUNCH(writeKernel, 0, 64)(x, n);
  check(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid is an error");
  SEGVOL_LAUNCH(writeKernel, 1, 2048)(x, n);
  check(cudaGetLastError() == cudaErrorInvalidConfiguration, "a block of 2048 threads is an error");
  SEGVOL_LAUNCH(divergentBarrierKernel, 1, 32)(x);
  check(cudaGetLastError() == cudaErrorLaunchFailure, "a __syncthreads() reached by half the block is an error");
  check(cudaGetLastError() == cudaSuccess, "cudaGetLastError() clears the error");
  check(cudaMemcpy(host.data(), x, n * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidMemcpyDirection,
        "a copy whose direction does not match its pointers is an error");
  check(cudaMemcpy(host.data(), x, (n + 1) * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess,
        "a copy past the end of an allocation is an error");
  cudaFree(x);
  SEGVOL_LAUNCH(writeKernel, 1, 64)(x, n);
  check(cudaGetLastError() == cudaErrorInvalidDevicePointer, "a freed pointer as a kernel argument is an error");
  cudaFree(sums);
  cudaFree(marks);

  std::printf("%s\n", failures ? "emulation self-test FAILED" : "emulation self-test passed");
  return failures ? 1 : 0;
}
