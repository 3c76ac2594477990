// Memory management shared by the backends that compute on host memory (the
// optimized CPU backend and the reference backend): 64-byte aligned blocks, so
// vector loads and oneDNN never see misaligned data.
#pragma once
#include "../core/backend.h"

namespace segvol {

class HostBackend : public Backend {
 public:
  Device device() const override { return Device::Cpu; }
#include "../core/backend_memory_overrides.inc"
};

}  // namespace segvol
