// Which backends this build has, and which one serves a device. The registry sits
// above the backends (it knows them all) and below the ops; native/core knows none.
#pragma once
#include <string>
#include <vector>

#include "../core/backend.h"

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
// The optimized backend of this device, or nullptr where this build or machine has none
// (asks nothing of a device that is not there: for statistics).
Backend* backendIfAvailable(Device device);

}  // namespace segvol
