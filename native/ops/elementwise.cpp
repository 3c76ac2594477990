#include <cmath>
#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {

Tensor activation(Implementation impl, ActivationKind kind, const Tensor& x) {
  Backend& backend = backendOf(impl, "activation", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.activation(kind, x, y);
  return y;
}

Tensor activationBackward(Implementation impl, ActivationKind kind, const Tensor& x, const Tensor& y, const Tensor& dy) {
  checkSameShape(x, y, "activationBackward", "input", "output");
  checkSameShape(x, dy, "activationBackward", "input", "output gradient");
  Backend& backend = backendOf(impl, "activationBackward", {&x, &y, &dy});
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.activationBackward(kind, x, y, dy, dx);
  return dx;
}

Tensor binary(Implementation impl, BinaryKind kind, const Tensor& a, const Tensor& b) {
  const char* op = kind == BinaryKind::Add ? "add" : "mul";
  checkSameShape(a, b, op, "a", "b");
  Backend& backend = backendOf(impl, op, {&a, &b});
  Tensor y = Tensor::empty(backend, a.shape());
  backend.binary(kind, a, b, y);
  return y;
}

Tensor scale(Implementation impl, const Tensor& x, double factor) {
  if (!std::isfinite(factor)) {
    fail(ErrorCode::NonFinite, "scale: expected a finite factor, received " + std::to_string(factor));
  }
  Backend& backend = backendOf(impl, "scale", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.scale(x, static_cast<float>(factor), y);
  return y;
}

Tensor sum(Implementation impl, const std::vector<const Tensor*>& xs) {
  if (xs.empty()) fail(ErrorCode::Argument, "sum: expected at least one tensor, received an empty list");
  for (size_t i = 1; i < xs.size(); ++i) {
    checkSameShape(*xs[0], *xs[i], "sum", "tensor 0", "tensor " + std::to_string(i));
    if (xs[i]->device() != xs[0]->device()) {
      fail(ErrorCode::Device, "sum: expected all tensors on one device, tensor " + std::to_string(i) + " is on " +
                                  deviceName(xs[i]->device()));
    }
  }
  Backend& backend = backendFor(xs[0]->device(), impl);
  Tensor y = Tensor::empty(backend, xs[0]->shape());
  backend.sum(xs, y);
  return y;
}

namespace {

void checkBounds(double lo, double hi, const char* op) {
  if (std::isnan(lo) || std::isnan(hi) || lo > hi) {
    fail(ErrorCode::Argument, std::string(op) + ": expected bounds lo <= hi, received lo " + std::to_string(lo) + ", hi " + std::to_string(hi));
  }
}

}  // namespace

Tensor clamp(Implementation impl, const Tensor& x, double lo, double hi) {
  checkBounds(lo, hi, "clamp");
  Backend& backend = backendOf(impl, "clamp", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.clamp(x, static_cast<float>(lo), static_cast<float>(hi), y);
  return y;
}

Tensor clampBackward(Implementation impl, const Tensor& x, double lo, double hi, const Tensor& dy) {
  checkBounds(lo, hi, "clampBackward");
  checkSameShape(x, dy, "clampBackward", "input", "output gradient");
  Backend& backend = backendOf(impl, "clampBackward", {&x, &dy});
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.clampBackward(x, static_cast<float>(lo), static_cast<float>(hi), dy, dx);
  return dx;
}

double sumOfSquares(Implementation impl, const std::vector<const Tensor*>& xs) {
  double total = 0;
  for (const Tensor* x : xs) total += backendOf(impl, "sumOfSquares", {x}).sumOfSquares(*x);
  return total;
}

Tensor roundToFormat(Implementation impl, const Tensor& x, FloatFormat format) {
  Backend& backend = backendOf(impl, "roundToPrecision", {&x});
  Tensor y = Tensor::empty(backend, x.shape());
  backend.roundToFormat(x, format, y);
  return y;
}

}  // namespace segvol::ops
