#include "reference_backend.h"

namespace segvol {

Backend& referenceBackend() {
  static ReferenceBackend backend;
  return backend;
}

}  // namespace segvol
