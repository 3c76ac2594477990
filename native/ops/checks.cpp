#include "checks.h"

namespace segvol::ops {

void checkRank(const Tensor& t, std::initializer_list<int> ranks, const std::string& op, const std::string& arg,
               const std::string& layout) {
  for (int r : ranks) {
    if (t.rank() == r) return;
  }
  std::string allowed;
  for (int r : ranks) allowed += (allowed.empty() ? "" : " or ") + std::to_string(r);
  fail(ErrorCode::Shape, op + ": expected " + arg + " of rank " + allowed + " " + layout + ", received rank " +
                             std::to_string(t.rank()) + " " + shapeToString(t.shape()) +
                             "; reshape it (add a batch or channel axis of size 1 if needed)");
}

void checkSameShape(const Tensor& a, const Tensor& b, const std::string& op, const std::string& aName,
                    const std::string& bName) {
  if (a.shape() != b.shape()) {
    fail(ErrorCode::Shape, op + ": expected " + bName + " to have the shape of " + aName + " " +
                               shapeToString(a.shape()) + ", received " + shapeToString(b.shape()));
  }
}

void checkVector(const Tensor& t, int64_t length, const std::string& op, const std::string& arg,
                 const std::string& why) {
  if (t.rank() != 1 || t.dim(0) != length) {
    fail(ErrorCode::Shape, op + ": expected " + arg + " of shape (" + std::to_string(length) + ",) (" + why +
                               "), received " + shapeToString(t.shape()));
  }
}

void checkAllFinite(Backend& backend, const std::vector<std::pair<const Tensor*, std::string>>& named, const std::string& op) {
  std::vector<const Tensor*> tensors;
  std::vector<const std::string*> names;
  for (const auto& [t, name] : named) {
    if (!t) continue;
    tensors.push_back(t);
    names.push_back(&name);
  }
  const int bad = backend.firstNonFinite(tensors);
  if (bad < 0) return;
  fail(ErrorCode::NonFinite, op + ": expected finite values in " + *names[bad] + ", received NaN or Inf in a tensor of shape " +
                                 shapeToString(tensors[bad]->shape()) +
                                 "; re-initialise the parameters or lower the learning rate if training diverged");
}

void checkOutputGradient(const Tensor& dy, const Shape& expected, const std::string& op) {
  if (dy.shape() != expected) {
    fail(ErrorCode::Shape, op + ": expected the output gradient of shape " + shapeToString(expected) +
                               " (the forward output's), received " + shapeToString(dy.shape()));
  }
}

void checkNotEmpty(const Tensor& t, const std::string& op, const std::string& arg) {
  for (int a = 0; a < t.rank(); ++a) {
    if (t.dim(a) == 0) {
      fail(ErrorCode::Shape, op + ": expected " + arg + " with no zero-length axis, received " +
                                 shapeToString(t.shape()) + "; axis " + std::to_string(a) + " is empty");
    }
  }
}

Backend& backendOf(Implementation impl, const std::string& op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t) continue;
    if (!first) {
      first = t;
    } else if (t->device() != first->device()) {
      fail(ErrorCode::Device, op + ": expected all tensors on one device, received " + deviceName(first->device()) +
                                  " and " + deviceName(t->device()) + "; move them with tensor.to(device)");
    }
  }
  return backendFor(first->device(), impl);
}

int spatialRankOf(const Tensor& x) { return x.rank() - 2; }

const char* axisName(int spatialRank, int a) {
  static const char* names[] = {"D", "H", "W"};
  return names[geometryAxis(spatialRank, a)];
}

}  // namespace segvol::ops
