// Profiling hooks of the CUDA backend: op times from CUDA events recorded in the
// stream (read once profiling stops, so timing does not serialise the ops), and
// NVTX ranges so Nsight Systems shows segvol's ops and scans on its timeline.
#include <memory>

#include "cuda_backend_impl.h"
#include "cuda_common.cuh"
#ifndef SEGVOL_CUDA_EMULATION
#include <nvtx3/nvToolsExt.h>
#endif

namespace segvol {
namespace {

class CudaMark final : public TimingMark {
 public:
  CudaMark() { cuda::check(cudaEventCreate(&event), "cudaEventCreate"); }
  ~CudaMark() override { cudaEventDestroy(event); }
  cudaEvent_t event = nullptr;
};

}  // namespace

std::shared_ptr<TimingMark> CudaBackend::timingMark() {
  auto mark = std::make_shared<CudaMark>();
  cuda::check(cudaEventRecord(mark->event, 0), "cudaEventRecord");
  return mark;
}

double CudaBackend::elapsedMs(const TimingMark& start, const TimingMark& end) {
  const auto& a = static_cast<const CudaMark&>(start);
  const auto& b = static_cast<const CudaMark&>(end);
  cuda::check(cudaEventSynchronize(b.event), "cudaEventSynchronize");
  float ms = 0;
  cuda::check(cudaEventElapsedTime(&ms, a.event, b.event), "cudaEventElapsedTime");
  return ms;
}

void CudaBackend::synchronize() { cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void CudaBackend::rangePush(const char* name) {
#ifndef SEGVOL_CUDA_EMULATION
  nvtxRangePushA(name);
#else
  (void)name;
#endif
}

void CudaBackend::rangePop() {
#ifndef SEGVOL_CUDA_EMULATION
  nvtxRangePop();
#endif
}

}  // namespace segvol
