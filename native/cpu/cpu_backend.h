// The optimized CPU backend: convolutions through oneDNN primitives (cached by
// shape), every other op as OpenMP-parallel C++. One .cpp per op family, named
// as in reference/ and cuda/ (the table in core/backend_ops.inc).
#pragma once
#include <cstdint>

#include "host_backend.h"

namespace segvol {

struct PrimitiveCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t entries = 0;
};

class CpuBackend final : public HostBackend {
 public:
  std::string name() const override { return "cpu"; }

  static PrimitiveCacheStats primitiveCacheStats();  // convolution.cpp
  static std::string onednnVersion();
  // Empty when oneDNN runs bf16 convolutions on this CPU, else why not (convolution.cpp).
  static std::string bf16Unsupported();

  // The op primitives, defined in the file of each op's family (core/backend_ops.inc).
#include "../core/backend_overrides.inc"
};

// Elementwise loops below this many elements stay on one thread: forking costs more.
constexpr int64_t kParallelThreshold = 1 << 15;

// The process's one CPU backend (its oneDNN primitive cache is shared by all callers).
Backend& cpuBackend();

}  // namespace segvol
