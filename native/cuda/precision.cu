// Conversions between float32 and the 16-bit formats of the half-precision
// convolutions (bfloat16, IEEE half): the twin of native/cpu/precision.cpp, on the
// same bit conversions (core/float_format_bits.h). convolution.cu converts cuDNN's
// operands and results with toFormat and fromFormat; roundToFormat runs both.
#include <string>

#include "../core/float_format_bits.h"
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

// dst: (n) 16-bit values of src: (n) float32
__global__ void toFormatKernel(bool bf16, const float* src, uint16_t* dst, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) dst[i] = bf16 ? bits::floatToBf16(src[i]) : bits::floatToHalf(src[i]);
}

// dst: (n) float32 of src: (n) 16-bit values
__global__ void fromFormatKernel(bool bf16, const uint16_t* src, float* dst, int64_t n) {
  SEGVOL_GRID_STRIDE(i, n) dst[i] = bf16 ? bits::bf16ToFloat(src[i]) : bits::halfToFloat(src[i]);
}

}  // namespace

namespace cuda {

void toFormat(FloatFormat format, const float* src, uint16_t* dst, int64_t n) {
  if (n == 0) return;
  SEGVOL_LAUNCH(toFormatKernel, blocksFor(n), 256)(format == FloatFormat::Bf16, src, dst, n);
  checkLaunch("toFormat");
}

void fromFormat(FloatFormat format, const uint16_t* src, float* dst, int64_t n) {
  if (n == 0) return;
  SEGVOL_LAUNCH(fromFormatKernel, blocksFor(n), 256)(format == FloatFormat::Bf16, src, dst, n);
  checkLaunch("fromFormat");
}

}  // namespace cuda

void CudaBackend::roundToFormat(const Tensor& x, FloatFormat format, Tensor& y) {
  if (x.size() == 0) return;
  cuda::Scratch<uint16_t> packed(static_cast<size_t>(x.size()));
  cuda::toFormat(format, x.data(), packed.get(), x.size());
  cuda::fromFormat(format, packed.get(), y.data(), y.size());
}

}  // namespace segvol

namespace segvol::cuda {

void requireHalfPrecision(FloatFormat format, const char* op) {
  static const int capability = [] {
    cudaDeviceProp prop{};
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) return 0;
    return prop.major * 10 + prop.minor;
  }();
  // cuDNN's bfloat16 convolutions need Ampere's tensor cores; half ones run from Pascal on.
  const int needed = format == FloatFormat::Bf16 ? 80 : 60;
  if (capability >= needed) return;
  fail(ErrorCode::Device, std::string(op) + ": the convolution math is '" + floatFormatName(format) + "', which needs a GPU of compute capability " +
                              std::to_string(needed / 10) + "." + std::to_string(needed % 10) + " or newer; this one is " +
                              std::to_string(capability / 10) + "." + std::to_string(capability % 10) +
                              (format == FloatFormat::Bf16 ? "; use 'fp16' (with loss scaling) or 'fp32'" : "; use 'fp32'"));
}

}  // namespace segvol::cuda
