// The floating-point mode of convolutions, process-wide.
// - FP32 (the default): float32 operands and accumulation everywhere; CUDA results
//   stay comparable with the CPU at the parity tolerances.
// - TF32 (GPU): cuDNN may use tensor cores, which round the operands to a 10-bit
//   mantissa (float32 accumulation). The CPU backend has no TF32 and ignores it.
// - BF16 (CPU): for convolutions of 16 or more input and output channels, oneDNN rounds
//   the operands (input, weights, incoming gradient) to bfloat16 and accumulates in
//   float32 (thinner ones stay float32); results, weights, gradients and states
//   stay float32 tensors (mixed precision). Needs AVX512-BF16 (or AMX); the GPU
//   backend refuses it until it has its own bf16 path.
#pragma once
#include <atomic>
#include <string>

#include "error.h"

namespace segvol {

enum class ConvMath { Fp32, Tf32, Bf16 };

inline std::atomic<ConvMath>& convMathSetting() {
  static std::atomic<ConvMath> mode{ConvMath::Fp32};
  return mode;
}
inline ConvMath convMath() { return convMathSetting().load(std::memory_order_relaxed); }
inline void setConvMath(ConvMath mode) { convMathSetting().store(mode, std::memory_order_relaxed); }

// The name JavaScript uses for a mode ('fp32', 'tf32', 'bf16'), and back (false: not a mode).
inline const char* convMathName(ConvMath mode) {
  switch (mode) {
    case ConvMath::Tf32: return "tf32";
    case ConvMath::Bf16: return "bf16";
    case ConvMath::Fp32: break;
  }
  return "fp32";
}
inline bool convMathFromName(const std::string& name, ConvMath& mode) {
  for (ConvMath m : {ConvMath::Fp32, ConvMath::Tf32, ConvMath::Bf16}) {
    if (name == convMathName(m)) {
      mode = m;
      return true;
    }
  }
  return false;
}

// For the GPU backends' convolutions: BF16 is a CPU mode in this version.
inline void rejectBf16OnGpu(const char* op) {
  if (convMath() == ConvMath::Bf16) {
    fail(ErrorCode::Device, std::string(op) +
                                ": the convolution math is 'bf16', which only the cpu backend computes in this "
                                "version; on cuda use setConvMath('tf32') (or precision 'tf32'), or run on the cpu");
  }
}

}  // namespace segvol
