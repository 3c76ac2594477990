// Axis permutation and flips, the re-orientations the directional scans need.
// Each output row along the last axis is produced by one strided gather.
#include <algorithm>
#include <vector>

#include "cpu_backend.h"

namespace segvol {
namespace {

// Generic gather: y[i0..ir] = x[offset + sum_a index_a * srcStride_a], where a
// negative stride walks an axis backwards (from offset's end).
void gather(const float* x, float* y, const Shape& outShape, const std::vector<int64_t>& srcStride, int64_t offset) {
  const int r = static_cast<int>(outShape.size());
  const int64_t inner = outShape[r - 1], innerStride = srcStride[r - 1];
  int64_t rows = 1;
  for (int a = 0; a < r - 1; ++a) rows *= outShape[a];
#pragma omp parallel for if (rows * inner > kParallelThreshold)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t rest = row, src = offset;
    for (int a = r - 2; a >= 0; --a) {
      src += (rest % outShape[a]) * srcStride[a];
      rest /= outShape[a];
    }
    float* out = y + row * inner;
    if (innerStride == 1) {
      for (int64_t k = 0; k < inner; ++k) out[k] = x[src + k];
    } else {
      for (int64_t k = 0; k < inner; ++k) out[k] = x[src + k * innerStride];
    }
  }
}

}  // namespace

void CpuBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  if (y.size() == 0) return;
  const std::vector<int64_t> xs = contiguousStrides(x.shape());
  std::vector<int64_t> srcStride(perm.size());
  for (size_t a = 0; a < perm.size(); ++a) srcStride[a] = xs[perm[a]];
  gather(x.data(), y.data(), y.shape(), srcStride, 0);
}

void CpuBackend::flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) {
  if (y.size() == 0) return;
  std::vector<int64_t> srcStride = contiguousStrides(x.shape());
  int64_t offset = 0;
  for (int a : axes) {
    offset += (x.dim(a) - 1) * srcStride[a];
    srcStride[a] = -srcStride[a];
  }
  gather(x.data(), y.data(), y.shape(), srcStride, offset);
}

void CpuBackend::copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                               int64_t count) {
  // Both tensors are (outer, L, inner) around the axis: one contiguous run of
  // count * inner floats per outer index.
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; ++a) outer *= src.dim(a);
  for (int a = axis + 1; a < src.rank(); ++a) inner *= src.dim(a);
  const int64_t run = count * inner;
  if (run == 0 || outer == 0) return;
  const float* s = src.data() + srcStart * inner;
  float* d = dst.data() + dstStart * inner;
  const int64_t srcStep = src.dim(axis) * inner, dstStep = dst.dim(axis) * inner;
#pragma omp parallel for if (outer * run > kParallelThreshold)
  for (int64_t o = 0; o < outer; ++o) std::copy(s + o * srcStep, s + o * srcStep + run, d + o * dstStep);
}

}  // namespace segvol
