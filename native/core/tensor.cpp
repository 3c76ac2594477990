#include "tensor.h"

#include <atomic>
#include <limits>

#include "backend.h"
#include "error.h"

namespace segvol {

const char* deviceName(Device device) { return device == Device::Cpu ? "cpu" : "cuda"; }

namespace {

struct Counters {
  std::atomic<int64_t> storages{0}, bytes{0}, peak{0};
};
Counters& countersOf(Device device) {
  static Counters counters[2];
  return counters[device == Device::Cpu ? 0 : 1];
}

}  // namespace

MemoryStats memoryStats(Device device) {
  Counters& c = countersOf(device);
  return {c.storages.load(), c.bytes.load(), c.peak.load()};
}

void resetPeakMemory(Device device) {
  Counters& c = countersOf(device);
  c.peak = c.bytes.load();
}

Storage::Storage(Backend& backend, size_t bytes) : backend_(backend), bytes_(bytes), data_(nullptr) {
  data_ = backend_.allocate(bytes_ == 0 ? sizeof(float) : bytes_);
  Counters& c = countersOf(backend_.device());
  c.storages += 1;
  const int64_t now = c.bytes += static_cast<int64_t>(bytes_);
  int64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}

Storage::~Storage() {
  backend_.deallocate(data_, bytes_ == 0 ? sizeof(float) : bytes_);
  Counters& c = countersOf(backend_.device());
  c.storages -= 1;
  c.bytes -= static_cast<int64_t>(bytes_);
}

Tensor Tensor::empty(Backend& backend, const Shape& shape) {
  if (shape.empty() || shape.size() > static_cast<size_t>(kMaxRank)) {
    fail(ErrorCode::Shape, "tensor: expected a rank between 1 and 5, received rank " + std::to_string(shape.size()) +
                               " " + shapeToString(shape) + "; reshape the data to (N, C, [D,] H, W) or fewer axes");
  }
  for (int64_t s : shape) {
    if (s < 0) {
      fail(ErrorCode::Shape, "tensor: expected non-negative sizes, received " + shapeToString(shape) +
                                 "; every axis length must be 0 or more");
    }
  }
  // Sizes whose byte count overflows are refused before any arithmetic wraps.
  const int64_t limit = std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(float));
  int64_t count = 1;
  for (int64_t s : shape) {
    if (s != 0 && count > limit / s) {
      fail(ErrorCode::Shape, "tensor: the shape " + shapeToString(shape) + " holds more elements than any memory; " +
                                 "check the sizes (a swapped or unconverted axis?)");
    }
    count *= s;
  }
  Tensor t;
  t.shape_ = shape;
  t.storage_ = std::make_shared<Storage>(backend, static_cast<size_t>(count) * sizeof(float));
  return t;
}

Tensor Tensor::zeros(Backend& backend, const Shape& shape) {
  Tensor t = empty(backend, shape);
  backend.fill(t, 0.0f);
  return t;
}

Device Tensor::device() const { return storage_->backend().device(); }

Tensor Tensor::view(const Shape& shape) const {
  if (elementCount(shape) != size()) {
    fail(ErrorCode::Shape, "view: expected a shape with " + std::to_string(size()) + " elements like " +
                               shapeToString(shape_) + ", received " + shapeToString(shape));
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice(int64_t start, int64_t count) const {
  if (rank() < 1 || start < 0 || count < 0 || start + count > dim(0)) {
    fail(ErrorCode::Shape, "slice: expected [" + std::to_string(start) + ", " + std::to_string(start + count) +
                               ") within axis 0 of " + shapeToString(shape_));
  }
  Tensor t = *this;
  t.shape_[0] = count;
  t.offset_ += start * (dim(0) ? size() / dim(0) : 0);
  return t;
}

Dims5 dims5(const Tensor& t) {
  const Shape& s = t.shape();
  if (s.size() == 4) return {s[0], s[1], 1, s[2], s[3]};
  return {s[0], s[1], s[2], s[3], s[4]};
}

}  // namespace segvol
