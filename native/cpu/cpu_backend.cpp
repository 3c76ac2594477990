#include "cpu_backend.h"

namespace segvol {

Backend& cpuBackend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace segvol
