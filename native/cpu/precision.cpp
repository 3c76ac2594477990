// Rounding to a 16-bit format: the bit conversions the CUDA kernels use
// (core/float_format_bits.h), in a flat vectorised loop.
#include "../core/float_format_bits.h"
#include "cpu_backend.h"

namespace segvol {

void CpuBackend::roundToFormat(const Tensor& x, FloatFormat format, Tensor& y) {
  const float* in = x.data();
  float* out = y.data();
  const int64_t n = x.size();
  const bool bf16 = format == FloatFormat::Bf16;
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = bits::roundedTo(bf16, in[i]);
}

}  // namespace segvol
