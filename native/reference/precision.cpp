// Rounding to a 16-bit format, in double arithmetic: the value is scaled by its
// format's unit in the last place, rounded to the nearest integer (ties to even) and
// scaled back. Written independently of the bit manipulation the CPU backend and the
// CUDA kernels share (core/float_format_bits.h), so the parity tests check one
// against the other.
#include <cfenv>
#include <cmath>
#include <limits>

#include "reference_backend.h"

namespace segvol {
namespace {

struct FormatLimits {
  int mantissaBits;  // stored fraction bits
  int minExponent;   // the smallest normal number is 2^minExponent; below it the step stays 2^(minExponent - mantissaBits)
  double largest;    // the largest finite value
};

FormatLimits limitsOf(FloatFormat format) {
  if (format == FloatFormat::Bf16) return {7, -126, (2.0 - std::ldexp(1.0, -7)) * std::ldexp(1.0, 127)};
  return {10, -14, 65504.0};
}

float roundTo(const FormatLimits& f, float value) {
  const double v = value;
  if (std::isnan(v)) return std::numeric_limits<float>::quiet_NaN();
  if (std::isinf(v) || v == 0) return value;
  int exponent = 0;
  std::frexp(v, &exponent);  // |v| = m * 2^exponent, m in [0.5, 1)
  const int unitExponent = std::max(exponent - 1, f.minExponent) - f.mantissaBits;
  const double rounded = std::ldexp(std::nearbyint(std::ldexp(v, -unitExponent)), unitExponent);  // nearbyint: ties to even
  // Past the largest finite value by half a unit or more rounds to infinity, which the
  // rounded multiple of the unit above the largest value stands for.
  if (std::fabs(rounded) > f.largest) return v > 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
  return static_cast<float>(rounded);
}

}  // namespace

void ReferenceBackend::roundToFormat(const Tensor& x, FloatFormat format, Tensor& y) {
  const FormatLimits limits = limitsOf(format);
  // nearbyint rounds in the current mode; the default is to nearest, ties to even.
  const int mode = std::fegetround();
  std::fesetround(FE_TONEAREST);
  for (int64_t i = 0; i < x.size(); ++i) y.data()[i] = roundTo(limits, x.data()[i]);
  std::fesetround(mode);
}

}  // namespace segvol
