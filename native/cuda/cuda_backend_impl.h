// The CUDA backend class. Convolutions through cuDNN (convolution.cu), every
// other op as a CUDA kernel, one .cu file per op family, each the twin of the
// CPU file of the same name (test/cuda.test.ts compares them).
#pragma once
#include "../core/backend.h"

namespace segvol {

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::Cuda; }

  // profiling.cu
  std::shared_ptr<TimingMark> timingMark() override;
  double elapsedMs(const TimingMark& start, const TimingMark& end) override;
  void rangePush(const char* name) override;
  void rangePop() override;
  void synchronize() override;

  // memory.cu
#include "../core/backend_memory_overrides.inc"
  int firstNonFinite(const std::vector<const Tensor*>& ts) override;

  // The op primitives, one .cu per op family, named as in cpu/ and reference/
  // (the table in core/backend_ops.inc).
#include "../core/backend_overrides.inc"
};

}  // namespace segvol
