#include "host_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>

#include <sys/mman.h>

#include "../core/error.h"

namespace segvol {
namespace {

// Blocks of 128 KiB and more are mapped here (mmap) and kept for reuse when freed,
// instead of going through the C library:
// - Below its dynamic threshold (up to 32 MiB) the library serves them from its heap,
//   where the propagation's churn of 0.1-6 MiB temporaries left freed holes that were
//   never returned: a 30-object patch peaked at 2.1-2.4 GiB RSS with 0.7 GiB of tensors
//   live (1.3-1.4 GiB once such blocks were mapped, with a 512 MiB cache; 1.56-1.58 GiB
//   with the 1 GiB cache below).
// - Above it the library maps every block fresh, and a fresh mapping costs a page
//   fault per 4 KiB on first touch: the scan buffers of a recurrent layer, allocated
//   again each step, spent more time faulting than computing (a ConvLSTM's cell kernel
//   over 16 slices: 1.8 ms a step on fresh memory, 0.2 ms on reused).
// Freed blocks wait in size classes (four per power of two), so a block serves the
// next request of its class, not only of its exact size. How much it keeps: limit()
// below. A flat cap came first: an N4 training step frees more than 512 MiB between
// reuses, and with 512 MiB
// it faulted 1.3 M pages over 7 steps and took 910 ms a step; with 1 GiB, 0.27 M
// pages and 671 ms, against 811 ms before this scheme (only blocks of 1 MiB and more
// cached, by exact size, 512 MiB; the rest on the C library's heap). VD2D3D: 1,055 ms
// and 773 MiB peak RSS, against 1,318 ms and 1,168 MiB before.
void* mapBlock(size_t size) noexcept {
  void* ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return ptr == MAP_FAILED ? nullptr : ptr;
}

void releaseBlock(void* ptr, size_t size) noexcept;

class BlockCache {
 public:
  static constexpr size_t kFrom = size_t(128) << 10;      // blocks of 128 KiB and more, mapped
  static constexpr size_t kCapacity = size_t(1024) << 20;  // room above the high-water mark (limit())

  // Size classes, four per power of two (at most 25% more than asked, whole pages as
  // mmap needs): layers of different shapes share blocks. Small blocks: 64 bytes.
  static size_t roundedSize(size_t bytes) {
    if (bytes < kFrom) return (bytes + 63) / 64 * 64;
    size_t octave = kFrom;
    while (octave * 2 <= bytes) octave *= 2;
    const size_t step = octave / 4;
    return (bytes + step - 1) / step * step;
  }

  // A cached block of this size class, else nullptr; either way the caller now holds
  // size bytes more (mapped by it on a miss).
  void* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_ += size;
    highWater_ = std::max(highWater_, live_);
    auto it = bySize_.find(size);
    if (it == bySize_.end()) {
      trim();  // the caller maps a new block: make room for it under the limit
      return nullptr;
    }
    void* ptr = it->second->ptr;
    order_.erase(it->second);
    bySize_.erase(it);
    cached_ -= size;
    return ptr;
  }

  // The caller could not map the block it was told to map.
  void untake(size_t size) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    live_ -= size;
  }

  // Keeps a freed block, evicting the blocks freed longest ago when full: a
  // training loop frees and asks for the same sizes every step, so the recent
  // blocks are the ones it will ask for next.
  void give(void* ptr, size_t size) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    live_ -= size;
    if (size > limit()) {
      releaseBlock(ptr, size);
      return;
    }
    while (cached_ + size > limit() && !order_.empty()) evictOldest();
    try {
      order_.push_back({size, ptr});
      try {
        bySize_.emplace(size, std::prev(order_.end()));
      } catch (...) {
        order_.pop_back();
        throw;
      }
      cached_ += size;
    } catch (...) {
      releaseBlock(ptr, size);
    }
  }

  // Unmaps every cached block; returns their bytes.
  size_t releaseAll() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t released = cached_;
    while (!order_.empty()) evictOldest();
    return released;
  }

  size_t cached() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

 private:
  struct Block {
    size_t size;
    void* ptr;
  };

  // How much may wait here: what the blocks in use are below their high-water mark,
  // plus 1 GiB. So mapped memory (in use + cached) stays within 1 GiB above that mark,
  // the bound a flat 1 GiB cache had at the mark itself.
  // - A training step frees and asks again for the same blocks every step. With a flat
  //   1 GiB cap the cross-modality MRI step (3 GiB at its peak) mapped 2+ GiB fresh
  //   each step, and a first touch costs a page fault and a page clear: 65,000 faults
  //   and 0.1-2.3 s of system time a call for its last 64-channel convolution alone.
  // - Without the 1 GiB above the mark, blocks of other sizes filled the room the
  //   next step's last activations needed at the peak, and about 20 blocks of 8-128
  //   MiB a step still missed.
  size_t limit() const { return (highWater_ > live_ ? highWater_ - live_ : size_t(0)) + kCapacity; }

  void trim() noexcept {
    while (cached_ > limit() && !order_.empty()) evictOldest();
  }

  void evictOldest() noexcept {
    const Block oldest = order_.front();
    auto range = bySize_.equal_range(oldest.size);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == order_.begin()) {
        bySize_.erase(it);
        break;
      }
    }
    order_.pop_front();
    cached_ -= oldest.size;
    releaseBlock(oldest.ptr, oldest.size);
  }

  std::mutex mutex_;
  std::list<Block> order_;  // oldest first
  std::multimap<size_t, std::list<Block>::iterator> bySize_;
  size_t cached_ = 0;
  size_t live_ = 0;       // mapped blocks in use
  size_t highWater_ = 0;  // the most live_ has been
};

void releaseBlock(void* ptr, size_t size) noexcept { munmap(ptr, size); }

BlockCache& blockCache() {
  static BlockCache* cache = new BlockCache();  // never destroyed: tensors may be freed during exit
  return *cache;
}

}  // namespace

void* HostBackend::allocate(size_t bytes) {
  const size_t alignment = 64;
  const size_t rounded = BlockCache::roundedSize(bytes);
  const bool mapped = rounded >= BlockCache::kFrom;
  if (mapped) {
    if (void* reused = blockCache().take(rounded)) return reused;
  }
  void* ptr = mapped ? mapBlock(rounded) : std::aligned_alloc(alignment, rounded);
  if (!ptr) {
    blockCache().releaseAll();
    ptr = mapped ? mapBlock(rounded) : std::aligned_alloc(alignment, rounded);
  }
  if (!ptr) {
    if (mapped) blockCache().untake(rounded);
    fail(ErrorCode::Memory, "cpu: could not allocate " + std::to_string(bytes) +
                                " bytes of host memory; use smaller volumes or batches, or free tensors with dispose()");
  }
  return ptr;
}

void HostBackend::deallocate(void* ptr, size_t bytes) noexcept {
  const size_t rounded = BlockCache::roundedSize(bytes);
  if (rounded >= BlockCache::kFrom) {
    blockCache().give(ptr, rounded);
    return;
  }
  std::free(ptr);
}

void HostBackend::copyFromHost(const float* src, Tensor& dst) { std::memcpy(dst.data(), src, dst.bytes()); }

void HostBackend::copyToHost(const Tensor& src, float* dst) { std::memcpy(dst, src.data(), src.bytes()); }

void HostBackend::copy(const Tensor& src, Tensor& dst) { std::memcpy(dst.data(), src.data(), src.bytes()); }

void HostBackend::fill(Tensor& t, float value) {
  float* p = t.data();
  const int64_t n = t.size();
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

size_t HostBackend::cachedBytes() { return blockCache().cached(); }

size_t HostBackend::releaseCached() { return blockCache().releaseAll(); }

void HostBackend::deviceMemory(size_t& free, size_t& total) {
  // Host memory limits live in the OS and its cgroups, which the JavaScript side reads.
  free = 0;
  total = 0;
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

}  // namespace segvol
