// Permutes, flips and axis-range copies, one element at a time.
#include "loops.h"

namespace segvol {

void ReferenceBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  const std::vector<int64_t> xs = contiguousStrides(x.shape());
  const int r = x.rank();
  std::vector<int64_t> index(r, 0);  // index into y
  for (int64_t flat = 0; flat < y.size(); ++flat) {
    int64_t rest = flat, src = 0;
    for (int a = r - 1; a >= 0; --a) {
      index[a] = rest % y.dim(a);
      rest /= y.dim(a);
    }
    for (int a = 0; a < r; ++a) src += index[a] * xs[perm[a]];
    y.data()[flat] = x.data()[src];
  }
}

void ReferenceBackend::flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) {
  const std::vector<int64_t> strides = contiguousStrides(x.shape());
  const int r = x.rank();
  std::vector<bool> flipped(r, false);
  for (int a : axes) flipped[a] = true;
  for (int64_t flat = 0; flat < y.size(); ++flat) {
    int64_t rest = flat, src = 0;
    for (int a = r - 1; a >= 0; --a) {
      int64_t i = rest % x.dim(a);
      rest /= x.dim(a);
      src += (flipped[a] ? x.dim(a) - 1 - i : i) * strides[a];
    }
    y.data()[flat] = x.data()[src];
  }
}

void ReferenceBackend::copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                                     int64_t count) {
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; ++a) outer *= src.dim(a);
  for (int a = axis + 1; a < src.rank(); ++a) inner *= src.dim(a);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t l = 0; l < count; ++l)
      for (int64_t i = 0; i < inner; ++i) {
        dst.data()[(o * dst.dim(axis) + dstStart + l) * inner + i] = src.data()[(o * src.dim(axis) + srcStart + l) * inner + i];
      }
}

}  // namespace segvol
