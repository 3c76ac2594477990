// The convolutions' per-channel bias and its gradient (the channel sums of dy).
#include <algorithm>

#include "cpu_backend.h"

namespace segvol {

void CpuBackend::addChannelBias(Tensor& y, const Tensor& bias) {
  const int64_t n = y.dim(0), c = y.dim(1), s = y.size() / (n * c != 0 ? n * c : 1);
  float* out = y.data();
  const float* b = bias.data();
#pragma omp parallel for collapse(2) if (y.size() > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      float* row = out + (i * c + ch) * s;
      const float v = b[ch];
#pragma omp simd
      for (int64_t k = 0; k < s; ++k) row[k] += v;
    }
}

void CpuBackend::channelSum(const Tensor& dy, Tensor& dbias) {
  const int64_t n = dy.dim(0), c = dy.dim(1), s = dy.size() / (n * c != 0 ? n * c : 1);
  const float* in = dy.data();
  if (s == 1 && n > 1) {
    // Rows of channels (dense layers): sum whole rows at a time (contiguous), float
    // partials over blocks of 256 rows, a double total, per block of channels.
    constexpr int64_t kBlock = 256;
#pragma omp parallel for if (dy.size() > kParallelThreshold)
    for (int64_t c0 = 0; c0 < c; c0 += kBlock) {
      const int64_t width = std::min(kBlock, c - c0);
      double total[kBlock] = {};
      float partial[kBlock];
      for (int64_t r0 = 0; r0 < n; r0 += 256) {
        std::fill(partial, partial + width, 0.0f);
        for (int64_t r = r0; r < std::min(n, r0 + 256); ++r) {
          const float* row = in + r * c + c0;
#pragma omp simd
          for (int64_t j = 0; j < width; ++j) partial[j] += row[j];
        }
        for (int64_t j = 0; j < width; ++j) total[j] += partial[j];
      }
      for (int64_t j = 0; j < width; ++j) dbias.data()[c0 + j] = static_cast<float>(total[j]);
    }
    return;
  }
#pragma omp parallel for if (dy.size() > kParallelThreshold)
  for (int64_t ch = 0; ch < c; ++ch) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = in + (i * c + ch) * s;
      // float partial sums over short blocks vectorise; the double total keeps
      // large volumes (millions of voxels) accurate.
      for (int64_t start = 0; start < s; start += 1024) {
        const int64_t end = start + 1024 < s ? start + 1024 : s;
        float partial = 0;
#pragma omp simd reduction(+ : partial)
        for (int64_t k = start; k < end; ++k) partial += row[k];
        acc += partial;
      }
    }
    dbias.data()[ch] = static_cast<float>(acc);
  }
}

}  // namespace segvol
