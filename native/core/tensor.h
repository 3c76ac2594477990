// A Tensor owns (shares) float32 memory on one device, in contiguous row-major
// NC(D)HW order. Copies of a Tensor share storage; views reshape without copying.
#pragma once
#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include "shape.h"

namespace segvol {

class Backend;

enum class Device { Cpu, Cuda };
const char* deviceName(Device device);

// Memory held by live storages on a device (a storage is one allocation; views share it).
struct MemoryStats {
  int64_t storages = 0;
  int64_t bytes = 0;
  int64_t peakBytes = 0;  // the most bytes live at once since the last resetPeakMemory
};
MemoryStats memoryStats(Device device);
void resetPeakMemory(Device device);

// Memory allocated by a backend and released by it when the last Tensor lets go.
class Storage {
 public:
  Storage(Backend& backend, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Backend& backend() const { return backend_; }

 private:
  Backend& backend_;
  size_t bytes_;
  void* data_;
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised memory of the given shape on the backend's device.
  static Tensor empty(Backend& backend, const Shape& shape);
  static Tensor zeros(Backend& backend, const Shape& shape);

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const { return shape_[axis < 0 ? axis + rank() : axis]; }
  int64_t size() const { return elementCount(shape_); }
  size_t bytes() const { return static_cast<size_t>(size()) * sizeof(float); }
  bool defined() const { return static_cast<bool>(storage_); }
  Device device() const;
  Backend& backend() const { return storage_->backend(); }

  float* data() const { return static_cast<float*>(storage_->data()) + offset_; }

  // Same storage, another shape with the same element count.
  Tensor view(const Shape& shape) const;
  // Entries [start, start + count) of axis 0, sharing storage (a plane of a (T, N, ...) buffer).
  Tensor slice(int64_t start, int64_t count) const;
  // Drops this handle's reference to the memory.
  void release() { storage_.reset(); }
  bool sharesStorageWith(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  Shape shape_;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in elements, from the start of storage
};

// (N, C, D, H, W) of a rank-4 (D = 1) or rank-5 tensor.
using Dims5 = std::array<int64_t, 5>;
Dims5 dims5(const Tensor& t);

}  // namespace segvol
