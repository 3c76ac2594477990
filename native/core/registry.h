// Which backends this build has, and which one serves a device.
#pragma once
#include <string>
#include <vector>

#include "backend.h"

namespace segvol {

enum class Implementation { Optimized, Reference };

struct BackendStatus {
  std::string name;      // "cpu", "cuda"
  bool available;
  std::string reason;    // why not, when unavailable
  std::string detail;    // library versions, device name
};

std::vector<BackendStatus> backendStatuses();
// The backend that runs ops on tensors of this device, or ERR_DEVICE saying why none can.
Backend& backendFor(Device device, Implementation impl = Implementation::Optimized);
Backend& cpuBackend();
Backend& referenceBackend();

}  // namespace segvol
