// An open-addressing hash map from uint64 keys to small values, for the hot loops of region
// graphs and agglomeration (millions of lookups, inserts and erases): linear probing in
// two flat arrays, tombstones for erased keys, no allocation per entry. std::unordered_map
// spends most of an agglomeration's time chasing its nodes. Keys must not be the two
// largest uint64 values (reserved as markers).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace segvol::metrics {

template <typename V>
class FlatMap {
 public:
  explicit FlatMap(size_t expected = 0) { resize(capacityFor(expected)); }

  // The value of key, or nullptr.
  V* find(uint64_t key) {
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

  // key -> value unless key is present; the stored value and whether it was inserted.
  std::pair<V*, bool> emplace(uint64_t key, V value) {
    if ((used_ + 1) * 10 > keys_.size() * 7) resize(capacityFor(size_ + 1));
    size_t slot = keys_.size();
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return {&values_[i], false};
      if (keys_[i] == kGone && slot == keys_.size()) slot = i;
      if (keys_[i] == kEmpty) {
        if (slot == keys_.size()) {
          slot = i;
          ++used_;
        }
        break;
      }
    }
    keys_[slot] = key;
    values_[slot] = value;
    ++size_;
    return {&values_[slot], true};
  }

  bool erase(uint64_t key) {
    for (size_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) {
        keys_[i] = kGone;
        --size_;
        return true;
      }
      if (keys_[i] == kEmpty) return false;
    }
  }

  size_t size() const { return size_; }

  // f(key, value) for every entry, in slot order.
  template <typename F>
  void forEach(F&& f) const {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] != kEmpty && keys_[i] != kGone) f(keys_[i], values_[i]);
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static constexpr uint64_t kGone = ~uint64_t{0} - 1;

  // A 64-bit finaliser (MurmurHash3's): pair keys (a << 32 | b) spread over every slot.
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
  }

  // At most half full after a rehash: room to churn (erase, insert) before tombstones force the next.
  static size_t capacityFor(size_t entries) {
    size_t capacity = 16;
    while (capacity < entries * 2) capacity *= 2;
    return capacity;
  }

  // Rehashes into `capacity` slots, dropping tombstones.
  void resize(size_t capacity) {
    std::vector<uint64_t> keys(capacity, kEmpty);
    std::vector<V> values(capacity);
    keys.swap(keys_);
    values.swap(values_);
    mask_ = capacity - 1;
    size_ = used_ = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == kEmpty || keys[i] == kGone) continue;
      size_t j = mix(keys[i]) & mask_;
      while (keys_[j] != kEmpty) j = (j + 1) & mask_;
      keys_[j] = keys[i];
      values_[j] = values[i];
      ++size_;
      ++used_;
    }
  }

  std::vector<uint64_t> keys_;
  std::vector<V> values_;
  size_t mask_ = 0, size_ = 0, used_ = 0;  // used_: entries and tombstones
};

}  // namespace segvol::metrics
