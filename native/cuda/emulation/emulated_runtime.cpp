// The emulated CUDA runtime behind emulation/cuda_runtime.h: registered host
// allocations stand in for device memory, and a fiber scheduler runs kernels.
#include <ucontext.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_runtime.h"

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim{1, 1, 1};
thread_local dim3 gridDim{1, 1, 1};

namespace segvol::emulation {
namespace {

// ---- device memory: every live allocation, by start address
std::mutex memoryMutex;
std::map<uintptr_t, size_t>& allocations() {
  static auto* m = new std::map<uintptr_t, size_t>();
  return *m;
}
size_t liveBytes = 0;
constexpr size_t kEmulatedMemory = size_t(80) << 30;  // what cudaMemGetInfo reports as total

thread_local cudaError_t lastError = cudaSuccess;
thread_local std::string lastMessage;

cudaError_t record(cudaError_t status, const std::string& message) {
  if (status != cudaSuccess) {
    lastError = status;
    lastMessage = message;
  }
  return status;
}

// ---- fibers: one per CUDA thread of the block being run
constexpr size_t kFiberStack = 64 * 1024;

struct Fiber {
  ucontext_t context;
  uint3 thread;
  bool done;
};

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;
  std::vector<char> stacks;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  bool insideKernel = false;
};
thread_local Scheduler scheduler;

void fiberEntry() {
  (*scheduler.body)();
  scheduler.current->done = true;
  // returning resumes scheduler.main through uc_link
}

}  // namespace

void syncThreads() {
  if (!scheduler.insideKernel || !scheduler.current) return;
  swapcontext(&scheduler.current->context, &scheduler.main);
}

bool isDeviceRange(const void* ptr, size_t bytes) {
  const auto address = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(memoryMutex);
  auto it = allocations().upper_bound(address);
  if (it == allocations().begin()) return false;
  --it;
  return address >= it->first && address + bytes <= it->first + it->second;
}

size_t liveDeviceBytes() {
  std::lock_guard<std::mutex> lock(memoryMutex);
  return liveBytes;
}

void reportLaunchError(cudaError_t status, const char* kernel, const char* what) {
  record(status, std::string("emulated launch of ") + kernel + ": " + what);
}

void runGrid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    reportLaunchError(cudaErrorInvalidConfiguration, kernel, "the grid is empty or too large");
    return;
  }
  if (threads == 0 || threads > 1024 || block.z > 64) {
    reportLaunchError(cudaErrorInvalidConfiguration, kernel, "a block needs 1..1024 threads");
    return;
  }
  Scheduler& s = scheduler;
  if (s.insideKernel) {
    reportLaunchError(cudaErrorLaunchFailure, kernel, "launched from inside a kernel");
    return;
  }
  s.fibers.resize(threads);
  if (s.stacks.size() < threads * kFiberStack) s.stacks.resize(threads * kFiberStack);
  s.body = &body;
  s.insideKernel = true;
  gridDim = grid;
  blockDim = block;
  ucontext_t blank;
  getcontext(&blank);
  bool divergent = false;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        for (uint64_t t = 0; t < threads; ++t) {
          Fiber& f = s.fibers[t];
          f.context = blank;
          f.context.uc_stack.ss_sp = s.stacks.data() + t * kFiberStack;
          f.context.uc_stack.ss_size = kFiberStack;
          f.context.uc_link = &s.main;
          makecontext(&f.context, fiberEntry, 0);
          f.thread = {unsigned(t % block.x), unsigned((t / block.x) % block.y), unsigned(t / (uint64_t(block.x) * block.y))};
          f.done = false;
        }
        // Each round runs every live thread to its next barrier or to its end.
        for (uint64_t live = threads; live > 0;) {
          uint64_t atBarrier = 0, finished = 0;
          for (Fiber& f : s.fibers) {
            if (f.done) continue;
            s.current = &f;
            threadIdx = f.thread;
            swapcontext(&s.main, &f.context);
            if (f.done) ++finished; else ++atBarrier;
          }
          if (atBarrier && finished) divergent = true;
          live = atBarrier;
        }
      }
  s.current = nullptr;
  s.insideKernel = false;
  if (divergent) reportLaunchError(cudaErrorLaunchFailure, kernel, "__syncthreads() was not reached by every thread of a block");
}

}  // namespace segvol::emulation

using segvol::emulation::allocations;
using segvol::emulation::isDeviceRange;
using segvol::emulation::record;

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return record(cudaErrorInvalidValue, "cudaMalloc: null output pointer");
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded ? rounded : 256);
  if (!p) return record(cudaErrorMemoryAllocation, "cudaMalloc: out of memory");
  std::lock_guard<std::mutex> lock(segvol::emulation::memoryMutex);
  const size_t recorded = bytes ? bytes : 1;  // a zero-byte allocation still owns its address
  allocations()[reinterpret_cast<uintptr_t>(p)] = recorded;
  segvol::emulation::liveBytes += recorded;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(segvol::emulation::memoryMutex);
    auto it = allocations().find(reinterpret_cast<uintptr_t>(ptr));
    if (it == allocations().end()) return record(cudaErrorInvalidDevicePointer, "cudaFree: not the start of a cudaMalloc allocation");
    segvol::emulation::liveBytes -= it->second;
    allocations().erase(it);
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (!bytes) return cudaSuccess;
  const bool dstDevice = isDeviceRange(dst, bytes), srcDevice = isDeviceRange(src, bytes);
  const bool wantDst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool wantSrc = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dstDevice != wantDst || srcDevice != wantSrc) {
    return record(cudaErrorInvalidMemcpyDirection,
                  std::string("cudaMemcpy: the direction does not match the pointers (destination is ") +
                      (dstDevice ? "device" : "host") + " memory, source is " + (srcDevice ? "device" : "host") + " memory)");
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (!bytes) return cudaSuccess;
  if (!isDeviceRange(ptr, bytes)) return record(cudaErrorInvalidDevicePointer, "cudaMemset: not device memory");
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = segvol::emulation::lastError;
  segvol::emulation::lastError = cudaSuccess;
  return e;
}

const char* cudaGetErrorString(cudaError_t status) {
  if (status == cudaSuccess) return "no error";
  // The message of the most recent failure on this thread names what went wrong.
  return segvol::emulation::lastMessage.empty() ? "emulated CUDA error" : segvol::emulation::lastMessage.c_str();
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  const size_t live = segvol::emulation::liveDeviceBytes();
  *total = segvol::emulation::kEmulatedMemory;
  *free = live < *total ? *total - live : 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "segvol CUDA emulator (CPU)", sizeof(prop->name) - 1);
  prop->totalGlobalMem = segvol::emulation::kEmulatedMemory;
  // An older GPU can be stood for (the half-precision checks): SEGVOL_EMULATED_COMPUTE_CAPABILITY=7.5.
  prop->major = 9;
  prop->minor = 0;
  if (const char* capability = std::getenv("SEGVOL_EMULATED_COMPUTE_CAPABILITY")) {
    int major = 0, minor = 0;
    if (std::sscanf(capability, "%d.%d", &major, &minor) == 2) {
      prop->major = major;
      prop->minor = minor;
    }
  }
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }

struct EmulatedEvent {
  std::chrono::steady_clock::time_point at;
};

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new EmulatedEvent{};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}
