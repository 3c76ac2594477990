// float32 <-> bfloat16 / IEEE half conversions on raw bits, rounding to nearest even,
// written once for the CPU backend and the CUDA kernels (host and device code). NaN
// stays NaN (quiet), values past a format's largest finite value round to infinity,
// and half's subnormals are kept (no flush to zero), as CUDA's __float2half_rn and
// __float2bfloat16_rn do. The reference backend rounds with its own arithmetic
// (native/reference/precision.cpp), which the parity tests compare against these.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define SEGVOL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SEGVOL_HOST_DEVICE inline
#endif

namespace segvol::bits {

SEGVOL_HOST_DEVICE uint32_t ofFloat(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}
SEGVOL_HOST_DEVICE float toFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

SEGVOL_HOST_DEVICE uint16_t floatToBf16(float f) {
  uint32_t u = ofFloat(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN, made quiet
  u += 0x7fffu + ((u >> 16) & 1u);  // ties to even on the 16 dropped bits; may carry into infinity
  return static_cast<uint16_t>(u >> 16);
}
SEGVOL_HOST_DEVICE float bf16ToFloat(uint16_t b) { return toFloat(static_cast<uint32_t>(b) << 16); }

SEGVOL_HOST_DEVICE uint16_t floatToHalf(float f) {
  uint32_t u = ofFloat(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((u >> 13) & 0x3ffu));  // NaN, made quiet
  if (u >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 (and infinity) -> infinity
  if (u >= 0x38800000u) {  // half's normal range, |f| >= 2^-14
    u += 0x0fffu + ((u >> 13) & 1u);  // ties to even on the 13 dropped bits; a carry moves the exponent
    return static_cast<uint16_t>(sign | ((u - 0x38000000u) >> 13));  // exponent bias 127 -> 15
  }
  if (u < 0x33000000u) return static_cast<uint16_t>(sign);  // |f| <= 2^-25 rounds to zero (the tie to even)
  // Half subnormals: multiples of 2^-24; the float's 24-bit significand shifted into place.
  const uint32_t exponent = u >> 23;  // 102..112
  const uint32_t significand = (u & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - exponent;  // 14..24
  uint32_t q = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (q & 1u))) ++q;  // may become 0x400, the smallest normal
  return static_cast<uint16_t>(sign | q);
}
SEGVOL_HOST_DEVICE float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return toFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float v = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // mantissa * 2^-24, exact
    return sign ? -v : v;
  }
  return toFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// f as the nearest value the format holds, back in float32.
SEGVOL_HOST_DEVICE float roundedTo(bool bf16, float f) { return bf16 ? bf16ToFloat(floatToBf16(f)) : halfToFloat(floatToHalf(f)); }

}  // namespace segvol::bits
