// Device memory, copies, and the backend's entry point. Allocations come from a
// caching pool: freed blocks wait in per-size free lists and are handed out again,
// so a training step does not call cudaMalloc/cudaFree (which synchronise the
// device) for every tensor. On out-of-memory the pool empties itself and retries.
#include <map>
#include <mutex>
#include <vector>

#include "cuda_backend.h"
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"
#ifndef SEGVOL_CUDA_EMULATION
#include "cudnn_loader.h"
#endif

namespace segvol {
namespace {

__global__ void fillKernel(float* p, int64_t n, float value) {
  SEGVOL_GRID_STRIDE(i, n) p[i] = value;
}

__global__ void finiteKernel(const float* p, int64_t n, int* bad) {
  SEGVOL_GRID_STRIDE(i, n) {
    if (!isfinite(p[i])) *bad = 1;
  }
}

// Sizes rounded up to 512 bytes below 1 MiB and to 1 MiB multiples above, so
// blocks of nearby sizes (the planes of a scan) are shared.
size_t bucket(size_t bytes) {
  const size_t small = 512, large = 1 << 20;
  return bytes < large ? (bytes + small - 1) / small * small : (bytes + large - 1) / large * large;
}

class CachingPool {
 public:
  void* take(size_t bytes) {
    const size_t size = bucket(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* ptr = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        return ptr;
      }
    }
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release();  // give cached blocks back to the driver, then try once more
      status = cudaMalloc(&ptr, size);
    }
    cuda::check(status, ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
    return ptr;
  }
  void give(void* ptr, size_t bytes) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    free_[bucket(bytes)].push_back(ptr);
    cached_ += bucket(bytes);
  }
  // Frees every cached block; returns their bytes.
  size_t release() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* ptr : blocks) cudaFree(ptr);
      blocks.clear();
    }
    const size_t released = cached_;
    cached_ = 0;
    return released;
  }
  // Bytes held in the cache for reuse: free for the next allocations, though the driver counts them used.
  size_t cached() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

CachingPool& pool() {
  static CachingPool* p = new CachingPool();  // never destroyed: the driver may be gone at exit
  return *p;
}

}  // namespace

void* cuda::poolTake(size_t bytes) { return pool().take(bytes); }
void cuda::poolGive(void* ptr, size_t bytes) noexcept { pool().give(ptr, bytes); }

void* CudaBackend::allocate(size_t bytes) { return pool().take(bytes); }

void CudaBackend::deallocate(void* ptr, size_t bytes) noexcept { pool().give(ptr, bytes); }

void CudaBackend::copyFromHost(const float* src, Tensor& dst) {
  cuda::check(cudaMemcpy(dst.data(), src, dst.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
}

void CudaBackend::copyToHost(const Tensor& src, float* dst) {
  cuda::check(cudaMemcpy(dst, src.data(), src.bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  cuda::check(cudaMemcpy(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice), "cudaMemcpy on the device");
}

void CudaBackend::fill(Tensor& t, float value) {
  if (!t.size()) return;
  SEGVOL_LAUNCH(fillKernel, cuda::blocksFor(t.size()), 256)(t.data(), t.size(), value);
  cuda::checkLaunch("fill");
}

int CudaBackend::firstNonFinite(const std::vector<const Tensor*>& ts) {
  if (ts.empty()) return -1;
  cuda::Scratch<int> flags(ts.size());
  cuda::check(cudaMemset(flags.get(), 0, ts.size() * sizeof(int)), "cudaMemset");
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!ts[i]->size()) continue;
    SEGVOL_LAUNCH(finiteKernel, cuda::blocksFor(ts[i]->size()), 256)(ts[i]->data(), ts[i]->size(), flags.get() + i);
    cuda::checkLaunch("firstNonFinite");
  }
  std::vector<int> host(ts.size());  // the one read-back for all of them
  cuda::check(cudaMemcpy(host.data(), flags.get(), ts.size() * sizeof(int), cudaMemcpyDeviceToHost), "firstNonFinite");
  for (size_t i = 0; i < ts.size(); ++i) {
    if (host[i]) return static_cast<int>(i);
  }
  return -1;
}

bool CudaBackend::allFinite(const Tensor& t) { return firstNonFinite({&t}) < 0; }

size_t CudaBackend::cachedBytes() { return pool().cached(); }

size_t CudaBackend::releaseCached() { return pool().release(); }

void CudaBackend::deviceMemory(size_t& free, size_t& total) {
  size_t driverFree = 0;
  cuda::check(cudaMemGetInfo(&driverFree, &total), "cudaMemGetInfo");
  free = driverFree + pool().cached();
}

Backend* cudaBackendOrNull(std::string* reason) {
  static std::once_flag once;
  static CudaBackend* backend = nullptr;
  static std::string why;
  std::call_once(once, [] {
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
      why = std::string("no CUDA device (") + (status != cudaSuccess ? cudaGetErrorString(status) : "0 devices") + ")";
      cudaGetLastError();
      return;
    }
#ifndef SEGVOL_CUDA_EMULATION
    if (!cuda::loadCudnn(&why)) return;
#endif
    backend = new CudaBackend();  // lives for the process
  });
  if (!backend && reason) *reason = why;
  return backend;
}

std::string cudaBackendDetail() {
  cudaDeviceProp prop{};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) return "";
#ifdef SEGVOL_CUDA_EMULATION
  return std::string(prop.name) + ", " + std::to_string(prop.totalGlobalMem >> 20) +
         " MiB, emulated: kernels on CPU fibers, convolutions by the CPU backend (test build)";
#else
  std::string reason;
  const cuda::CudnnApi* api = cuda::loadCudnn(&reason);
  return std::string(prop.name) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB, cuDNN " +
         (api ? std::to_string(api->cudnnGetVersion()) : "missing");
#endif
}

}  // namespace segvol
