#pragma once
// The hash of a (pred, truth) pair key for contingency tables (rand.cpp, rand2d.cpp).
#include <cstddef>
#include <cstdint>

namespace segvol::metrics {

// splitmix64: a fast, well-mixed hash for (pred, truth) pair keys.
struct PairHash {
  size_t operator()(uint64_t k) const {
    k += 0x9e3779b97f4a7c15ull;
    k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ull;
    k = (k ^ (k >> 27)) * 0x94d049bb133111ebull;
    return static_cast<size_t>(k ^ (k >> 31));
  }
};

}  // namespace segvol::metrics
