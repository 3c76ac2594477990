// How the fused recurrent cell kernels (lstm_cell.cpp, recurrent_cells.cpp) split
// a step into vectorisable spans. A step's tensors are (N, units, S): per sample,
// each gate is a contiguous (units * S) block. A span is a contiguous piece of a
// sample's block: one unit's S plane voxels (convolutional cells), or a whole
// sample's units (dense cells, S = 1). A span kernel gets same-length arrays; a
// missing operand reads kZeros, a per-unit bias is spread into a row.
#pragma once
#include <algorithm>
#include <cstdint>

namespace segvol::cells {

constexpr int64_t kChunk = 4096;
alignas(64) inline const float kZeros[kChunk] = {};

struct Span {
  int64_t b;       // sample
  int64_t offset;  // into the sample's (units * S) block
  int64_t len;
  int64_t unit;    // the unit of a row span; -1 for a dense span (per-unit operands index by offset)
};

template <typename Visit>
void forEachSpan(int64_t n, int64_t units, int64_t s, Visit&& visit) {
  if (s == 1) {
#pragma omp parallel for if (n * units > 32768)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t start = 0; start < units; start += kChunk) visit(Span{b, start, std::min(kChunk, units - start), -1});
    }
  } else {
#pragma omp parallel for if (n * units * s > 32768)
    for (int64_t row = 0; row < n * units; ++row) {
      const int64_t b = row / units, k = row % units;
      for (int64_t start = 0; start < s; start += kChunk) visit(Span{b, k * s + start, std::min(kChunk, s - start), k});
    }
  }
}

// Same-length spans of several rows (a cell's gates, in the cell's gate order) as
// restrict pointers, so a span kernel's loop vectorises. T: float or const float.
template <typename T>
struct Rows3 {
  T* __restrict r0;
  T* __restrict r1;
  T* __restrict r2;
};
template <typename T>
struct Rows4 {
  T* __restrict r0;
  T* __restrict r1;
  T* __restrict r2;
  T* __restrict r3;
};

// The rows of consecutive gates `block` floats apart, from the first gate's span.
template <typename T>
Rows3<T> rows3(T* first, int64_t block) {
  return {first, first + block, first + 2 * block};
}
template <typename T>
Rows4<T> rows4(T* first, int64_t block) {
  return {first, first + block, first + 2 * block, first + 3 * block};
}

// A per-unit vector (bias) as an array aligned with the span: itself for a dense
// span, else its unit's value spread into `row` (kChunk floats).
inline const float* perUnit(const float* values, const Span& sp, float* row) {
  if (sp.unit < 0) return values + sp.offset;
  std::fill(row, row + sp.len, values[sp.unit]);
  return row;
}

}  // namespace segvol::cells
