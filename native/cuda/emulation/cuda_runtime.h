// A CPU stand-in for the CUDA runtime, used only by the emulated test build
// (SEGVOL_CUDA=EMULATED). The .cu files are compiled as C++ against this header:
// kernels become plain functions, a launch runs every block of the grid in turn
// and every CUDA thread of a block as a fiber, so __syncthreads() and __shared__
// memory keep their meaning. Device memory is host memory that this runtime
// registers, so a kernel handed a host pointer, a copy in the wrong direction or
// a launch with an empty grid fails the way it would on a GPU instead of
// working by accident.
//
// What it cannot check: timing, the GPU memory model (races between blocks,
// which run here one after another), warp-level behaviour and cuDNN (the
// emulated convolutions call the CPU backend).
#pragma once
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One copy per OS thread: blocks run one after another on the launching thread.
#define __shared__ static thread_local

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
typedef struct EmulatedStream* cudaStream_t;
typedef struct EmulatedEvent* cudaEvent_t;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
};

cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* ptr, int value, size_t bytes);
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t status);
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();
// Work runs as it is launched here, so a stream is always idle.
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// Within one OS thread fibers switch only at __syncthreads(), so a plain
// read-modify-write is atomic with respect to the other CUDA threads.
template <typename T>
inline T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

namespace segvol::emulation {

void syncThreads();
// Runs body once per CUDA thread of the grid; reports a bad configuration or a
// divergent __syncthreads() through cudaGetLastError(), as a GPU would.
void runGrid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body);
// Whether [ptr, ptr + bytes) lies inside one live cudaMalloc allocation.
bool isDeviceRange(const void* ptr, size_t bytes);
void reportLaunchError(cudaError_t status, const char* kernel, const char* what);
// Bytes currently allocated by cudaMalloc (leak checks in tests).
size_t liveDeviceBytes();

template <typename T>
bool argumentIsDeviceOrNull(const T& value) {
  if constexpr (std::is_pointer_v<T>) {
    return value == nullptr || isDeviceRange(value, 1);
  } else {
    return true;
  }
}

// SEGVOL_LAUNCH(kernel, grid, block)(args...) under emulation: converts the
// arguments to the kernel's parameter types (as a launch does), checks that
// every pointer is device memory, then runs the grid.
template <typename... Params>
class Launch {
 public:
  Launch(void (*kernel)(Params...), dim3 grid, dim3 block, const char* name)
      : kernel_(kernel), grid_(grid), block_(block), name_(name) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel launched with the wrong number of arguments");
    std::tuple<Params...> bound(static_cast<Params>(std::forward<Args>(args))...);
    const bool pointersOk = std::apply([](const auto&... a) { return (argumentIsDeviceOrNull(a) && ...); }, bound);
    if (!pointersOk) {
      reportLaunchError(cudaErrorInvalidDevicePointer, name_, "a pointer argument is not device memory (host pointer or freed)");
      return;
    }
    runGrid(name_, grid_, block_, [&] { std::apply(kernel_, bound); });
  }

 private:
  void (*kernel_)(Params...);
  dim3 grid_, block_;
  const char* name_;
};

template <typename... Params>
Launch(void (*)(Params...), dim3, dim3, const char*) -> Launch<Params...>;

}  // namespace segvol::emulation

inline void __syncthreads() { segvol::emulation::syncThreads(); }
