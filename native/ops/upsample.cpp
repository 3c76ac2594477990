#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {
namespace {
void checkSize(const Tensor& t, const std::vector<int64_t>& size, const std::string& op, const std::string& what) {
  checkRank(t, {4, 5}, op, "input", "(N, C, [D,] H, W)");
  checkNotEmpty(t, op, "input");
  if (static_cast<int>(size.size()) != spatialRankOf(t)) {
    fail(ErrorCode::Argument, op + ": expected " + what + " with " + std::to_string(spatialRankOf(t)) +
                                  " entries (one per spatial axis of " + shapeToString(t.shape()) + "), received " +
                                  std::to_string(size.size()));
  }
  for (int64_t s : size) {
    if (s < 1) fail(ErrorCode::Argument, op + ": expected " + what + " entries >= 1, received " + std::to_string(s));
  }
}

// t (N, C, ...) resampled to `spatial` by the backend's forward or backward pass.
using UpsamplePass = void (Backend::*)(UpsampleMode, bool, const Tensor&, Tensor&);
Tensor resampled(Implementation impl, const Tensor& t, const std::vector<int64_t>& spatial, UpsampleMode mode,
                 bool alignCorners, const char* op, const char* what, UpsamplePass pass) {
  checkSize(t, spatial, op, what);
  Backend& backend = backendOf(impl, op, {&t});
  Shape shape = {t.dim(0), t.dim(1)};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  Tensor out = Tensor::empty(backend, shape);
  (backend.*pass)(mode, alignCorners, t, out);
  return out;
}
}  // namespace

Tensor upsampleForward(Implementation impl, const Tensor& x, const std::vector<int64_t>& size, UpsampleMode mode,
                       bool alignCorners) {
  return resampled(impl, x, size, mode, alignCorners, "upsample", "size", &Backend::upsampleForward);
}

// dy: the gradient of the upsampled output; dx: of the input, of spatial size inputSpatial.
Tensor upsampleBackward(Implementation impl, const Tensor& dy, const std::vector<int64_t>& inputSpatial,
                        UpsampleMode mode, bool alignCorners) {
  return resampled(impl, dy, inputSpatial, mode, alignCorners, "upsampleBackward", "inputSize", &Backend::upsampleBackward);
}

}  // namespace segvol::ops
