#include "checks.h"
#include "ops.h"

namespace segvol::ops {

Tensor softmaxForward(Implementation impl, const Tensor& x) {
  checkRank(x, {2, 3, 4, 5}, "softmax", "input", "(N, C, ...)");
  Backend& backend = backendOf(impl, "softmax", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.softmaxForward(x, y);
  return y;
}

Tensor softmaxBackward(Implementation impl, const Tensor& y, const Tensor& dy) {
  checkRank(y, {2, 3, 4, 5}, "softmaxBackward", "output", "(N, C, ...)");
  checkSameShape(y, dy, "softmaxBackward", "output", "output gradient");
  Backend& backend = backendOf(impl, "softmaxBackward", {&y, &dy});
  Tensor dx = Tensor::empty(backend, y.shape());
  backend.softmaxBackward(y, dy, dx);
  return dx;
}

}  // namespace segvol::ops
