// Convolutions of the emulated CUDA backend. cuDNN cannot run without a GPU, so
// the emulated build computes the convolution itself with the CPU backend
// (emulated device memory is host memory) and adds or reduces the bias with the
// CUDA kernels of bias.cu, so those still run. What this build verifies is
// everything around cuDNN: the kernels, the orchestration and the memory rules.
//
// The precision modes are emulated as the GPU computes them, so their accuracy can
// be judged without one:
// - TF32: operands rounded to TF32 (10-bit mantissa, round to nearest, as the tensor
//   cores' conversion does), accumulated in float32.
// - BF16 and FP16 (convolutions of 16+ channels in and out, core/math_mode.h): the
//   operands go through precision.cu's conversion kernels, the ones the cuDNN path
//   uses, products accumulate in float32, and the result is rounded to the format
//   as cuDNN writes it (PSEUDO_BFLOAT16 / PSEUDO_HALF) before it is widened.
#include <cstring>

#include "../../core/math_mode.h"
#include "../../cpu/cpu_backend.h"
#include "../cuda_backend_impl.h"
#include "../cuda_common.cuh"

namespace segvol {
namespace {

float roundToTf32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  if ((bits & 0x7f800000u) == 0x7f800000u) return v;  // inf, NaN
  bits = (bits + 0x1000u) & 0xffffe000u;               // keep 10 of 23 mantissa bits, ties away from zero
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

// How one convolution computes. in: (N, C, ...), w: (O, C/groups, ...)
struct Math {
  bool half = false;
  FloatFormat format = FloatFormat::Bf16;
  Math(const Tensor& in, const Tensor& w, const char* op) {
    half = halfPrecisionConvolution(in.dim(1), w.dim(0), &format);
    if (half) cuda::requireHalfPrecision(format, op);
  }
};

// The operand as the convolution sees it: itself in FP32 mode, a rounded copy in TF32
// mode (on the host) or in a 16-bit mode (through the device's conversion kernels).
Tensor operand(CudaBackend& device, const Math& math, const Tensor& t) {
  if (math.half) {
    Tensor copy = Tensor::empty(device, t.shape());
    device.roundToFormat(t, math.format, copy);
    return copy;
  }
  if (convMath() != ConvMath::Tf32) return t;
  Tensor copy = Tensor::empty(cpuBackend(), t.shape());
  const float* src = t.data();
  float* dst = copy.data();
  for (int64_t i = 0; i < t.size(); ++i) dst[i] = roundToTf32(src[i]);
  return copy;
}

// The result as cuDNN leaves it: in a 16-bit mode, rounded to the format.
void finish(CudaBackend& device, const Math& math, Tensor& result) {
  if (math.half) device.roundToFormat(result, math.format, result);
}

}  // namespace

void CudaBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const Math math(x, w, "conv forward");
  {
    const Tensor xs = operand(*this, math, x), ws = operand(*this, math, w);
    Fp32ConvolutionsOnThisThread fp32;  // the operands are rounded already
    cpuBackend().convForward(g, xs, ws, nullptr, y);
  }
  finish(*this, math, y);
  if (bias) addChannelBias(y, *bias);
}

void CudaBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const Math math(dx, w, "conv backward data");
  {
    const Tensor dys = operand(*this, math, dy), ws = operand(*this, math, w);
    Fp32ConvolutionsOnThisThread fp32;
    cpuBackend().convBackwardData(g, dys, ws, dx);
  }
  finish(*this, math, dx);
}

void CudaBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  const Math math(x, dw, "conv backward weights");
  {
    const Tensor xs = operand(*this, math, x), dys = operand(*this, math, dy);
    Fp32ConvolutionsOnThisThread fp32;
    cpuBackend().convBackwardWeights(g, xs, dys, dw, nullptr);
  }
  finish(*this, math, dw);
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
