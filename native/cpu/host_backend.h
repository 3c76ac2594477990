// Memory management shared by the backends that compute on host memory (the
// optimized CPU backend and the reference backend): 64-byte aligned blocks, so
// vector loads and oneDNN never see misaligned data.
#pragma once
#include <array>

#include "../core/backend.h"

namespace segvol {

class HostBackend : public Backend {
 public:
  Device device() const override { return Device::Cpu; }
#include "../core/backend_memory_overrides.inc"
};

// (N, C, D, H, W) of a rank-4 (D = 1) or rank-5 tensor.
using Dims5 = std::array<int64_t, 5>;
Dims5 dims5(const Tensor& t);

}  // namespace segvol
