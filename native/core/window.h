// Window arithmetic shared by the backends' pooling loops (host code and CUDA
// kernels alike): where a window starts along an axis, and how many of its taps
// count towards an average. Integer arithmetic only, so every backend agrees exactly.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define SEGVOL_HOST_DEVICE __host__ __device__
#else
#define SEGVOL_HOST_DEVICE
#endif

namespace segvol {

// Input index of tap 0 of output position `out`'s window along one axis
// (negative when the window starts in the padding).
SEGVOL_HOST_DEVICE inline int64_t windowOrigin(int64_t out, int64_t stride, int64_t padding) {
  return out * stride - padding;
}

// How many taps of one axis of an average-pooling window count towards its
// divisor: PyTorch counts padding (but not the part of a window past the padded
// border) when countIncludePad is set, else only the taps inside the input.
// The divisor of a window is the product over its three axes.
SEGVOL_HOST_DEVICE inline int64_t avgPoolAxisTaps(int64_t origin, int64_t kernel, int64_t dilation, int64_t padding,
                                                  int64_t size, bool countIncludePad) {
  const int64_t lo = countIncludePad ? -padding : 0, hi = countIncludePad ? size + padding : size;
  int64_t taps = 0;
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t i = origin + k * dilation;
    if (i >= lo && i < hi) ++taps;
  }
  return taps;
}

}  // namespace segvol
