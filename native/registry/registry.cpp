#include "registry.h"

#include "../core/error.h"
#include "../core/profiler.h"
#include "../cpu/cpu_backend.h"
#include "../reference/reference_backend.h"
#ifdef SEGVOL_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

#ifndef SEGVOL_CUDA_REASON
#define SEGVOL_CUDA_REASON "not compiled"
#endif

namespace segvol {

std::vector<BackendStatus> backendStatuses() {
  BackendStatus cuda{"cuda", false, SEGVOL_CUDA_REASON, ""};
#ifdef SEGVOL_WITH_CUDA
  std::string reason;
  if (cudaBackendOrNull(&reason)) {
    cuda = {"cuda", true, "", cudaBackendDetail()};
  } else {
    cuda.reason = reason;
  }
#endif
  return {{"cpu", true, "", "oneDNN " + CpuBackend::onednnVersion()}, cuda};
}

Backend& backendFor(Device device, Implementation impl) {
  if (device == Device::Cpu) {
    Backend& backend = impl == Implementation::Reference ? referenceBackend() : cpuBackend();
    return profilingActive() ? profiled(backend) : backend;
  }
  if (impl == Implementation::Reference) {
    fail(ErrorCode::Device, "reference ops run on cpu tensors only; copy the tensor to the cpu first");
  }
#ifdef SEGVOL_WITH_CUDA
  std::string reason;
  if (Backend* cuda = cudaBackendOrNull(&reason)) return profilingActive() ? profiled(*cuda) : *cuda;
  fail(ErrorCode::Device, "cuda backend unavailable: " + reason + "; use device 'cpu'");
#endif
  fail(ErrorCode::Device, std::string("cuda backend unavailable: ") + SEGVOL_CUDA_REASON +
                              "; use device 'cpu', or rebuild with CUDA and cuDNN (see README)");
}

Backend* backendIfAvailable(Device device) {
  if (device == Device::Cpu) return &cpuBackend();
#ifdef SEGVOL_WITH_CUDA
  std::string reason;
  return cudaBackendOrNull(&reason);
#else
  return nullptr;
#endif
}

}  // namespace segvol
