#include "host_backend.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../core/error.h"

namespace segvol {

void* HostBackend::allocate(size_t bytes) {
  const size_t alignment = 64;
  size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* ptr = std::aligned_alloc(alignment, rounded);
  if (!ptr) {
    fail(ErrorCode::Memory, "cpu: could not allocate " + std::to_string(bytes) +
                                " bytes of host memory; use smaller volumes or batches, or free tensors with dispose()");
  }
  return ptr;
}

void HostBackend::deallocate(void* ptr, size_t) noexcept { std::free(ptr); }

void HostBackend::copyFromHost(const float* src, Tensor& dst) { std::memcpy(dst.data(), src, dst.bytes()); }

void HostBackend::copyToHost(const Tensor& src, float* dst) { std::memcpy(dst, src.data(), src.bytes()); }

void HostBackend::copy(const Tensor& src, Tensor& dst) { std::memcpy(dst.data(), src.data(), src.bytes()); }

void HostBackend::fill(Tensor& t, float value) {
  float* p = t.data();
  const int64_t n = t.size();
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

bool HostBackend::allFinite(const Tensor& t) {
  // NaN and Inf are the floats whose exponent bits are all set. An OR over that
  // test vectorises and threads (an early-exit isfinite loop does neither): the
  // trainer checks every activation and gradient of a step with it.
  const float* p = t.data();
  const int64_t n = t.size();
  uint32_t bad = 0;
#pragma omp parallel for simd reduction(| : bad) if (n > (1 << 18))
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

Dims5 dims5(const Tensor& t) {
  const Shape& s = t.shape();
  if (s.size() == 4) return {s[0], s[1], 1, s[2], s[3]};
  return {s[0], s[1], s[2], s[3], s[4]};
}

}  // namespace segvol
