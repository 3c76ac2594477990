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
}  // namespace

Tensor upsampleForward(Implementation impl, const Tensor& x, const std::vector<int64_t>& size, UpsampleMode mode,
                       bool alignCorners) {
  checkSize(x, size, "upsample", "size");
  Backend& backend = backendOf(impl, "upsample", {&x});
  Shape out = {x.dim(0), x.dim(1)};
  out.insert(out.end(), size.begin(), size.end());
  Tensor y = Tensor::empty(backend, out);
  backend.upsampleForward(mode, alignCorners, x, y);
  return y;
}

Tensor upsampleBackward(Implementation impl, const Tensor& dy, const std::vector<int64_t>& inputSpatial,
                        UpsampleMode mode, bool alignCorners) {
  checkSize(dy, inputSpatial, "upsampleBackward", "inputSize");
  Backend& backend = backendOf(impl, "upsampleBackward", {&dy});
  Shape in = {dy.dim(0), dy.dim(1)};
  in.insert(in.end(), inputSpatial.begin(), inputSpatial.end());
  Tensor dx = Tensor::empty(backend, in);
  backend.upsampleBackward(mode, alignCorners, dy, dx);
  return dx;
}

}  // namespace segvol::ops
