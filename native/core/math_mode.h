// The floating-point mode of convolutions, process-wide.
// - FP32 (the default): float32 operands and accumulation everywhere; CUDA results
//   stay comparable with the CPU at the parity tolerances.
// - TF32 (GPU): cuDNN may use tensor cores, which round the operands to a 10-bit
//   mantissa (float32 accumulation). The CPU backend has no TF32 and ignores it.
// - BF16 (CPU and GPU): for convolutions of 16 or more input and output channels the
//   operands (input, weights, incoming gradient) are rounded to bfloat16 and products
//   accumulate in float32 (thinner ones stay float32). On the CPU oneDNN does it and
//   writes float32 results (needs AVX512-BF16 or AMX); on the GPU cuDNN computes from
//   bfloat16 buffers into a bfloat16 result, widened to float32 (compute capability
//   8.0 or newer). Weights, gradients and states stay float32 tensors either way.
// - FP16 (GPU only): as BF16 on the GPU with IEEE half operands and results (a 10-bit
//   mantissa, range +-65504), which training pairs with loss scaling.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>

#include "error.h"

namespace segvol {

enum class ConvMath { Fp32, Tf32, Bf16, Fp16 };

inline std::atomic<ConvMath>& convMathSetting() {
  static std::atomic<ConvMath> mode{ConvMath::Fp32};
  return mode;
}
// A per-thread override of the process-wide mode: the emulated CUDA backend computes its
// convolutions with the CPU backend on operands it has already rounded, in float32.
inline const ConvMath*& convMathThreadOverride() {
  static thread_local const ConvMath* mode = nullptr;
  return mode;
}
inline ConvMath convMath() {
  const ConvMath* local = convMathThreadOverride();
  return local ? *local : convMathSetting().load(std::memory_order_relaxed);
}
inline void setConvMath(ConvMath mode) { convMathSetting().store(mode, std::memory_order_relaxed); }

// For its lifetime, convolutions on this thread compute in float32 whatever the process-wide mode.
class Fp32ConvolutionsOnThisThread {
 public:
  Fp32ConvolutionsOnThisThread() : before_(convMathThreadOverride()) { convMathThreadOverride() = &kFp32; }
  ~Fp32ConvolutionsOnThisThread() { convMathThreadOverride() = before_; }
  Fp32ConvolutionsOnThisThread(const Fp32ConvolutionsOnThisThread&) = delete;
  Fp32ConvolutionsOnThisThread& operator=(const Fp32ConvolutionsOnThisThread&) = delete;

 private:
  static constexpr ConvMath kFp32 = ConvMath::Fp32;
  const ConvMath* before_;
};

// The name JavaScript uses for a mode ('fp32', 'tf32', 'bf16', 'fp16'), and back (false: not a mode).
inline const char* convMathName(ConvMath mode) {
  switch (mode) {
    case ConvMath::Tf32: return "tf32";
    case ConvMath::Bf16: return "bf16";
    case ConvMath::Fp16: return "fp16";
    case ConvMath::Fp32: break;
  }
  return "fp32";
}
inline bool convMathFromName(const std::string& name, ConvMath& mode) {
  for (ConvMath m : {ConvMath::Fp32, ConvMath::Tf32, ConvMath::Bf16, ConvMath::Fp16}) {
    if (name == convMathName(m)) {
      mode = m;
      return true;
    }
  }
  return false;
}

// The 16-bit formats a convolution's operands may be rounded to.
enum class FloatFormat { Bf16, Fp16 };
inline const char* floatFormatName(FloatFormat f) { return f == FloatFormat::Bf16 ? "bf16" : "fp16"; }

// Whether a convolution of these channel counts computes in a 16-bit format under the
// current mode, and which. Thin convolutions (a network's first layer on 1-5 image
// channels, 8-channel heads) stay float32: on the CPU oneDNN's bf16 kernels ran them
// 2-3x slower than float32, and one rule on both backends keeps their results comparable.
inline bool halfPrecisionConvolution(int64_t inChannels, int64_t outChannels, FloatFormat* format = nullptr) {
  const ConvMath mode = convMath();
  if ((mode != ConvMath::Bf16 && mode != ConvMath::Fp16) || inChannels < 16 || outChannels < 16) return false;
  if (format) *format = mode == ConvMath::Bf16 ? FloatFormat::Bf16 : FloatFormat::Fp16;
  return true;
}

}  // namespace segvol
