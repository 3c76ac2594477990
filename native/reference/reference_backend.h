// The reference backend: the readable oracle the tests compare every optimized
// and CUDA op against. Plain nested loops over (N, C, D, H, W), double
// accumulation, no threads, no tricks; speed does not matter here.
#pragma once
#include "../cpu/host_backend.h"

namespace segvol {

class ReferenceBackend final : public HostBackend {
 public:
  std::string name() const override { return "reference"; }

  // The op primitives, one .cpp per op family, named as in cpu/ and cuda/
  // (the table in core/backend_ops.inc).
#include "../core/backend_overrides.inc"
};

// The process's reference backend.
Backend& referenceBackend();

}  // namespace segvol
