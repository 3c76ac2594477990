// Convolutions of the emulated CUDA backend. cuDNN cannot run without a GPU, so
// the emulated build computes the convolution itself with the CPU backend
// (emulated device memory is host memory) and adds or reduces the bias with the
// CUDA kernels of bias.cu, so those still run. What this build verifies is
// everything around cuDNN: the kernels, the orchestration and the memory rules.
//
// In TF32 mode the operands are rounded to TF32 first (10-bit mantissa, round to
// nearest, as the tensor cores' conversion does) and accumulated in float32, so
// the accuracy cost of setConvMath('tf32') can be estimated without a GPU.
#include <cstring>

#include "../../core/math_mode.h"
#include "../../cpu/cpu_backend.h"
#include "../cuda_backend_impl.h"

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

// The operand as the convolution sees it: itself in FP32 mode, a rounded copy in TF32 mode.
Tensor operand(const Tensor& t) {
  if (convMath() != ConvMath::Tf32) return t;
  Tensor copy = Tensor::empty(cpuBackend(), t.shape());
  const float* src = t.data();
  float* dst = copy.data();
  for (int64_t i = 0; i < t.size(); ++i) dst[i] = roundToTf32(src[i]);
  return copy;
}

}  // namespace

void CudaBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  rejectBf16OnGpu("conv forward");
  cpuBackend().convForward(g, operand(x), operand(w), nullptr, y);
  if (bias) addChannelBias(y, *bias);
}

void CudaBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  rejectBf16OnGpu("conv backward data");
  cpuBackend().convBackwardData(g, operand(dy), operand(w), dx);
}

void CudaBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  rejectBf16OnGpu("conv backward weights");
  cpuBackend().convBackwardWeights(g, operand(x), operand(dy), dw, nullptr);
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
