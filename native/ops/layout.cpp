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

namespace {

void checkAxis(int axis, int rank, const std::string& op, const Shape& shape) {
  if (axis < 0 || axis >= rank) {
    fail(ErrorCode::Argument, op + ": expected an axis in 0.." + std::to_string(rank - 1) + " for shape " +
                                  shapeToString(shape) + ", received " + std::to_string(axis));
  }
}

}  // namespace

Tensor concat(Implementation impl, const std::vector<const Tensor*>& xs, int axis) {
  const std::string op = "concat";
  if (xs.empty()) fail(ErrorCode::Argument, op + ": expected at least one tensor");
  const Tensor& first = *xs[0];
  checkAxis(axis, first.rank(), op, first.shape());
  Shape out = first.shape();
  out[axis] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i]->shape();
    bool agrees = static_cast<int>(s.size()) == first.rank();
    for (int a = 0; agrees && a < first.rank(); ++a) agrees = a == axis || s[a] == first.dim(a);
    if (!agrees) {
      fail(ErrorCode::Shape, op + ": expected tensors that agree on every axis but " + std::to_string(axis) +
                                 "; tensor 0 is " + shapeToString(first.shape()) + ", tensor " + std::to_string(i) +
                                 " is " + shapeToString(s));
    }
    out[axis] += s[axis];
  }
  Backend& backend = backendOf(impl, op, {&first});
  for (const Tensor* x : xs) {
    if (x->device() != first.device()) {
      fail(ErrorCode::Device, op + ": expected every tensor on " + std::string(deviceName(first.device())) +
                                  ", received one on " + deviceName(x->device()) + "; move it with .to()");
    }
  }
  Tensor y = Tensor::empty(backend, out);
  int64_t offset = 0;
  for (const Tensor* x : xs) {
    backend.copyAxisRange(*x, 0, y, offset, axis, x->dim(axis));
    offset += x->dim(axis);
  }
  return y;
}

Tensor narrow(Implementation impl, const Tensor& x, int axis, int64_t start, int64_t length) {
  const std::string op = "narrow";
  checkAxis(axis, x.rank(), op, x.shape());
  if (start < 0 || length < 0 || start + length > x.dim(axis)) {
    fail(ErrorCode::Argument, op + ": expected entries [start, start + length) inside 0.." +
                                  std::to_string(x.dim(axis)) + " of axis " + std::to_string(axis) + " of " +
                                  shapeToString(x.shape()) + ", received start " + std::to_string(start) +
                                  ", length " + std::to_string(length));
  }
  Backend& backend = backendOf(impl, op, {&x});
  Shape out = x.shape();
  out[axis] = length;
  Tensor y = Tensor::empty(backend, out);
  backend.copyAxisRange(x, start, y, 0, axis, length);
  return y;
}

Tensor narrowBackward(Implementation impl, const Tensor& dy, const Shape& inputShape, int axis, int64_t start) {
  const std::string op = "narrowBackward";
  checkAxis(axis, static_cast<int>(inputShape.size()), op, inputShape);
  Shape expected = inputShape;
  const int64_t length = axis < dy.rank() ? dy.dim(axis) : -1;
  expected[axis] = length;
  if (dy.shape() != expected || start < 0 || start + length > inputShape[axis]) {
    fail(ErrorCode::Shape, op + ": expected an output gradient of shape " + shapeToString(expected) +
                               " fitting at " + std::to_string(start) + " in " + shapeToString(inputShape) +
                               ", received " + shapeToString(dy.shape()));
  }
  Backend& backend = backendOf(impl, op, {&dy});
  Tensor dx = Tensor::zeros(backend, inputShape);
  backend.copyAxisRange(dy, 0, dx, start, axis, length);
  return dx;
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
