// Error checking and launch helpers shared by the CUDA op files. Failures throw
// segvol::Error naming the call and the status, never abort.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../core/error.h"
#include "../core/math_mode.h"
#include "../core/tensor.h"

namespace segvol::cuda {

inline void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  if (status == cudaErrorMemoryAllocation) {
    size_t free = 0, total = 0;
    cudaGetLastError();
    cudaMemGetInfo(&free, &total);
    fail(ErrorCode::Memory, std::string("cuda: ") + call + " ran out of device memory (" + std::to_string(free >> 20) + " MiB free of " +
                                std::to_string(total >> 20) + " MiB); use smaller sub-volumes or windows, or dispose() tensors");
  }
  fail(ErrorCode::Device, std::string("cuda: ") + call + " failed: " + cudaGetErrorString(status) +
                              "; check the driver with nvidia-smi, or use device 'cpu'");
}

// Checks the last kernel launch.
inline void checkLaunch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline int blocksFor(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks > 65535 * 16 ? 65535 * 16 : (blocks < 1 ? 1 : blocks));
}

// Sets every element of t to 0.0f (before a backward pass scatters into it).
inline void zero(Tensor& t) { check(cudaMemset(t.data(), 0, t.bytes()), "cudaMemset"); }

// Blocks of the caching pool (memory.cu), for temporaries.
void* poolTake(size_t bytes);
void poolGive(void* ptr, size_t bytes) noexcept;

// Temporary device memory from the caching pool: no cudaMalloc/cudaFree, which
// synchronise the device. Returning a block while a kernel still uses it is safe
// because all work runs in stream order on one stream, like the next user's.
template <typename T>
class Scratch {
 public:
  explicit Scratch(size_t count) : bytes_(count * sizeof(T)), ptr_(static_cast<T*>(poolTake(bytes_))) {}
  ~Scratch() { poolGive(ptr_, bytes_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return ptr_; }

 private:
  size_t bytes_;
  T* ptr_;
};

// The 16-bit buffers of the half-precision convolutions (precision.cu):
// dst: (n) bfloat16 or half values of src: (n) float32, and back.
void toFormat(FloatFormat format, const float* src, uint16_t* dst, int64_t n);
void fromFormat(FloatFormat format, const uint16_t* src, float* dst, int64_t n);
// Throws ERR_DEVICE where this GPU cannot compute convolutions in format (op names the caller).
void requireHalfPrecision(FloatFormat format, const char* op);

// Kernel launch: SEGVOL_LAUNCH(kernel, grid, block)(args...). Under nvcc it is the
// <<<>>> launch on the default stream; the emulated build (SEGVOL_CUDA=EMULATED)
// runs the same kernel body on the CPU, one fiber per CUDA thread, and checks
// the launch configuration and that every pointer argument is device memory.
#ifdef SEGVOL_CUDA_EMULATION
#define SEGVOL_LAUNCH(kernel, grid, block) ::segvol::emulation::Launch(kernel, (grid), (block), #kernel)
#else
#define SEGVOL_LAUNCH(kernel, grid, block) kernel<<<(grid), (block)>>>
#endif

#define SEGVOL_GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace segvol::cuda
