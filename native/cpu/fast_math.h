// Branch-free float exp, sigmoid and tanh that the compiler vectorises inside
// `omp simd` loops (libm's scalar expf/tanhf calls cannot be). exp: Cephes-style
// range reduction x = n*ln2 + r and a degree-6 polynomial; sigmoid and tanh are
// built on it (tanh as 1 - 2/(1 + e^{2x})). test/ops.test.ts bounds tanh and
// sigmoid against the double-precision reference to 3e-7 absolute + 1e-6
// relative over the float range, +-Inf and NaN included.
#pragma once
#include <cstdint>
#include <cstring>

namespace segvol::fastmath {

inline float exp(float input) {
  float x = input < 88.3762626647949f ? input : 88.3762626647949f;
  x = x > -87.3365447504019f ? x : -87.3365447504019f;
  // Round to nearest by adding and removing 1.5 * 2^23 (|x * log2 e| < 128, so exact);
  // floorf would block vectorisation.
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;  // ln2 in two parts keeps r exact
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  // The clamps above turn NaN into a number; hand NaN back (a blend, still vectorised).
  return input == input ? p * scale : input;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

inline float tanh(float x) {
  // 1 - 2 / (e^{2x} + 1): exact limits at +-inf after clamping, no cancellation for large |x|.
  return 1.0f - 2.0f / (exp(2.0f * x) + 1.0f);
}

}  // namespace segvol::fastmath
