#include "registry.h"

#include "../cpu/cpu_backend.h"
#include "../reference/reference_backend.h"
#include "error.h"
#include "profiler.h"

#ifndef SEGVOL_CUDA_REASON
#define SEGVOL_CUDA_REASON "not compiled: this build has no CUDA backend"
#endif

namespace segvol {

Backend& cpuBackend() {
  static CpuBackend backend;
  return backend;
}

Backend& referenceBackend() {
  static ReferenceBackend backend;
  return backend;
}

std::vector<BackendStatus> backendStatuses() {
  return {
      {"cpu", true, "", "oneDNN " + CpuBackend::onednnVersion()},
      {"cuda", false, SEGVOL_CUDA_REASON, ""},
  };
}

Backend& backendFor(Device device, Implementation impl) {
  if (device == Device::Cpu) {
    Backend& backend = impl == Implementation::Reference ? referenceBackend() : cpuBackend();
    return profilingActive() ? profiled(backend) : backend;
  }
  if (impl == Implementation::Reference) {
    fail(ErrorCode::Device, "reference ops run on cpu tensors only; copy the tensor to the cpu first");
  }
  fail(ErrorCode::Device, std::string("cuda backend unavailable: ") + SEGVOL_CUDA_REASON +
                              "; use device 'cpu', or rebuild with CUDA and cuDNN (see README)");
}

}  // namespace segvol
