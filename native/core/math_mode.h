// The floating-point mode of convolutions on the GPU, process-wide. FP32 (the
// default) keeps CUDA results comparable with the CPU at the parity tolerances;
// TF32 lets cuDNN use tensor cores, which round the convolution operands to a
// 10-bit mantissa (float32 accumulation). The CPU backend has no TF32 and
// ignores the setting.
#pragma once
#include <atomic>

namespace segvol {

enum class ConvMath { Fp32, Tf32 };

inline std::atomic<ConvMath>& convMathSetting() {
  static std::atomic<ConvMath> mode{ConvMath::Fp32};
  return mode;
}
inline ConvMath convMath() { return convMathSetting().load(std::memory_order_relaxed); }
inline void setConvMath(ConvMath mode) { convMathSetting().store(mode, std::memory_order_relaxed); }

}  // namespace segvol
