// The CUDA backend's entry point, in plain C++ (the registry includes it; no
// CUDA headers leak out). Compiled only when CMake finds CUDA and cuDNN headers.
#pragma once
#include <string>

#include "../core/backend.h"

namespace segvol {

// The process-wide CUDA backend, or nullptr with *reason saying why CUDA cannot
// be used here (no driver, no device, cuDNN missing).
Backend* cudaBackendOrNull(std::string* reason);
// Device name and library versions, for backends().
std::string cudaBackendDetail();

}  // namespace segvol
