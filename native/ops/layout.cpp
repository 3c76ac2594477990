#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {

Tensor permute(Implementation impl, const Tensor& x, const std::vector<int>& perm) {
  if (static_cast<int>(perm.size()) != x.rank()) {
    fail(ErrorCode::Argument, "permute: expected a permutation of " + std::to_string(x.rank()) +
                                  " axes for a tensor of shape " + shapeToString(x.shape()) + ", received " +
                                  std::to_string(perm.size()) + " entries");
  }
  std::vector<bool> seen(perm.size(), false);
  Shape out;
  for (int a : perm) {
    if (a < 0 || a >= x.rank() || seen[a]) {
      fail(ErrorCode::Argument, "permute: expected each axis 0.." + std::to_string(x.rank() - 1) +
                                    " exactly once, received axis " + std::to_string(a) +
                                    (a >= 0 && a < x.rank() ? " twice" : " out of range"));
    }
    seen[a] = true;
    out.push_back(x.dim(a));
  }
  Backend& backend = backendOf(impl, "permute", {&x});
  Tensor y = Tensor::empty(backend, out);
  backend.permute(x, perm, y);
  return y;
}

Tensor flip(Implementation impl, const Tensor& x, const std::vector<int>& axes) {
  std::vector<bool> seen(x.rank(), false);
  for (int a : axes) {
    if (a < 0 || a >= x.rank() || seen[a]) {
      fail(ErrorCode::Argument, "flip: expected distinct axes in 0.." + std::to_string(x.rank() - 1) +
                                    " for a tensor of shape " + shapeToString(x.shape()) + ", received axis " +
                                    std::to_string(a) + (a >= 0 && a < x.rank() ? " twice" : " out of range"));
    }
    seen[a] = true;
  }
  Backend& backend = backendOf(impl, "flip", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.flip(x, axes, y);
  return y;
}

Tensor copyTo(const Tensor& x, Device device) {
  Backend& target = backendFor(device);
  Tensor y = Tensor::empty(target, x.shape());
  if (x.device() == device) {
    target.copy(x, y);
  } else if (device == Device::Cpu) {
    x.backend().copyToHost(x, y.data());
  } else {
    target.copyFromHost(x.data(), y);
  }
  return y;
}

}  // namespace segvol::ops
