#include "conv_gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "../core/error.h"
#include "cpu_backend.h"

namespace segvol::cpu {

void sgemm(char transA, char transB, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.0f) {
      for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc, c + r * ldc + n, 0.0f);
    }
    return;
  }
  // A product under 2M multiply-adds runs on the calling thread: waking the sleeping OpenMP
  // team (passive waiting, docs/building.md) costs more than the second thread saves. A 3x3
  // convolution 4 -> 4 on 64 x 64, both gradients: 0.40-0.44 ms -> 0.29-0.31 ms.
  constexpr int64_t kSmallProduct = int64_t{1} << 21;
  const bool alone = m * n * k < kSmallProduct && !omp_in_parallel();
  const int threads = omp_get_max_threads();
  if (alone) omp_set_num_threads(1);
  const dnnl_status_t status = dnnl_sgemm(transA, transB, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (alone) omp_set_num_threads(threads);
  if (status != dnnl_success) {
    fail(ErrorCode::Native, "oneDNN sgemm failed (status " + std::to_string(static_cast<int>(status)) + ") on " +
                                std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k));
  }
}

bool isDenseProduct(const ConvGeometry& g, const Tensor& x, const Tensor& w) {
  if (g.groups != 1) return false;
  for (int a = 0; a < 3; ++a) {
    if (g.stride[a] != 1 || g.padding[a] != 0 || g.dilation[a] != 1) return false;
  }
  return x.size() == x.dim(0) * x.dim(1) && w.size() == w.dim(0) * w.dim(1);
}

bool isPointwiseConv(const ConvGeometry& g, const Tensor& x, const Tensor& w) {
  if (g.groups != 1 || x.rank() < 3 || w.rank() != x.rank() || isDenseProduct(g, x, w)) return false;
  for (int a = 0; a < g.spatialRank; ++a) {
    if (g.stride[a] != 1 || g.padding[a] != 0) return false;
  }
  for (int d = 2; d < w.rank(); ++d) {
    if (w.dim(d) != 1) return false;
  }
  return x.size() / (x.dim(0) * x.dim(1)) >= 64;
}

void pointwiseForward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const int64_t n = x.dim(0), c = x.dim(1), o = w.dim(0), plane = x.size() / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    float* out = y.data() + i * o * plane;
    sgemm('N', 'N', o, plane, c, w.data(), c, x.data() + i * c * plane, plane, 0.0f, out, plane);
    if (bias) {
      const float* b = bias->data();
#pragma omp parallel for if (o * plane > (1 << 16))
      for (int64_t k = 0; k < o; ++k) {
        float* row = out + k * plane;
        const float v = b[k];
#pragma omp simd
        for (int64_t s = 0; s < plane; ++s) row[s] += v;
      }
    }
  }
}

void pointwiseBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx) {
  const int64_t n = dx.dim(0), c = dx.dim(1), o = w.dim(0), plane = dx.size() / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    sgemm('T', 'N', c, plane, o, w.data(), c, dy.data() + i * o * plane, plane, 0.0f, dx.data() + i * c * plane, plane);
  }
}

void pointwiseBackwardWeights(const Tensor& x, const Tensor& dy, Tensor& dw) {
  const int64_t n = x.dim(0), c = x.dim(1), o = dw.dim(0), plane = x.size() / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    // The batch's gradients summed in batch order (beta 1 after the first image).
    sgemm('N', 'T', o, c, plane, dy.data() + i * o * plane, plane, x.data() + i * c * plane, plane, i == 0 ? 0.0f : 1.0f, dw.data(), c);
  }
}

bool isFewTapConv(const ConvGeometry& g, const Tensor& x, const Tensor& w) {
  if (g.groups != 1 || g.stride[1] != 1 || g.stride[2] != 1) return false;
  const bool planar = g.spatialRank == 2 && x.rank() == 4 && w.rank() == 4;
  // A 3D convolution with a depth-1 kernel is a 2D one per slice (VD2D, N4: (1, k, k) kernels).
  const bool slices = g.spatialRank == 3 && x.rank() == 5 && w.rank() == 5 && w.dim(2) == 1 && g.stride[0] == 1 && g.padding[0] == 0;
  if (!planar && !slices) return false;
  const int64_t kh = w.dim(w.rank() - 2), kw = w.dim(w.rank() - 1);
  const int64_t taps = w.dim(1) * kh * kw;
  const int64_t planeVoxels = x.dim(x.rank() - 2) * x.dim(x.rank() - 1);
  // Below 64 plane voxels the per-image products are too small to pay. oneDNN's direct
  // kernels win on wide 2D convolutions (taps > 256); on dilated 3D (1, k, k) ones they
  // ran at 36-85 GFLOP/s against the product's 150 (VD2D3D's conv1b..conv3b), so those
  // take the product up to 1024 taps.
  // From 16 input channels, oneDNN's direct 2D kernels (a vector of 16 channels) match the
  // product or beat it: 3x3, 16 -> 16 on 4 x 64 x 64, forward and both gradients, 2.0-2.3 ms
  // against 3.2-3.9; 16 -> 32 on 2 x 128 x 128: 6.1-6.4 against 7.9-9.9; 16 -> 128: even
  // (npm run bench -- shapes).
  if (planar && w.dim(1) >= 16) return false;
  return kh * kw > 1 && planeVoxels >= 64 && taps <= (slices ? 1024 : 256);
}

namespace {

// One 2D convolution problem per (sample, slice): images of C channels at a channel
// stride, a (kh, kw) kernel with in-plane dilation and padding, stride 1.
struct Geometry {
  int64_t c, h, w, kh, kw, oh, ow, padTop, padLeft, dilY, dilX;
  int64_t slices;  // D of a 3D tensor (1 for 2D): images per sample
  int64_t inChannelStride() const { return slices * h * w; }
  int64_t outChannelStride() const { return slices * oh * ow; }
};

Geometry geometryOf(const ConvGeometry& g, const Tensor& in, const Tensor& weights, const Tensor& out) {
  const int r = in.rank();
  return {in.dim(1), in.dim(r - 2), in.dim(r - 1), weights.dim(r - 2), weights.dim(r - 1), out.dim(r - 2), out.dim(r - 1),
          g.padding[1], g.padding[2], g.dilation[1], g.dilation[2], r == 5 ? in.dim(2) : 1};
}

// The output columns [lo, hi) whose tap kx reads inside the image: 0 <= x + kx*dil - pad < w.
void columnRange(const Geometry& s, int64_t kx, int64_t& lo, int64_t& hi) {
  const int64_t shift = kx * s.dilX - s.padLeft;
  lo = std::max<int64_t>(0, -shift);
  hi = std::min<int64_t>(s.ow, s.w - shift);
  if (hi < lo) hi = lo;
}

// cols: (C * kH * kW, oH * oW), row (c, ky, kx) the image shifted by the tap, zeros outside.
// image: channel c at image + c * channelStride.
void im2col(const Geometry& s, const float* image, float* cols) {
  const int64_t rows = s.c * s.kh * s.kw, plane = s.oh * s.ow, cs = s.inChannelStride();
#pragma omp parallel for if (rows * plane > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / (s.kh * s.kw), ky = (r / s.kw) % s.kh, kx = r % s.kw;
    int64_t lo, hi;
    columnRange(s, kx, lo, hi);
    const int64_t shift = kx * s.dilX - s.padLeft;
    float* dst = cols + r * plane;
    for (int64_t y = 0; y < s.oh; ++y) {
      float* line = dst + y * s.ow;
      const int64_t sy = y + ky * s.dilY - s.padTop;
      if (sy < 0 || sy >= s.h) {
        std::fill(line, line + s.ow, 0.0f);
        continue;
      }
      std::fill(line, line + lo, 0.0f);
      std::memcpy(line + lo, image + c * cs + sy * s.w + (lo + shift), (hi - lo) * sizeof(float));
      std::fill(line + hi, line + s.ow, 0.0f);
    }
  }
}

// colsT: (oH * oW, C * kH * kW), im2col transposed: a row of taps per output voxel. The weight
// gradient's product with it needs no transposed operand (measured 1.7x faster than with cols).
void im2colTransposed(const Geometry& s, const float* image, float* colsT) {
  const int64_t taps = s.c * s.kh * s.kw, cs = s.inChannelStride();
#pragma omp parallel for if (taps * s.oh * s.ow > kParallelThreshold)
  for (int64_t y = 0; y < s.oh; ++y) {
    float* block = colsT + y * s.ow * taps;  // this output row's voxels: ow x taps
    for (int64_t r = 0; r < taps; ++r) {
      const int64_t c = r / (s.kh * s.kw), ky = (r / s.kw) % s.kh, kx = r % s.kw;
      const int64_t sy = y + ky * s.dilY - s.padTop;
      int64_t lo, hi;
      columnRange(s, kx, lo, hi);
      if (sy < 0 || sy >= s.h) lo = hi = 0;
      const float* src = image + c * cs + sy * s.w + (kx * s.dilX - s.padLeft);
      for (int64_t x = 0; x < lo; ++x) block[x * taps + r] = 0.0f;
      for (int64_t x = lo; x < hi; ++x) block[x * taps + r] = src[x];
      for (int64_t x = std::max(lo, hi); x < s.ow; ++x) block[x * taps + r] = 0.0f;
    }
  }
}

// image (C, H, W) (channel stride as im2col's) = the sum of cols' rows put back at their taps.
void col2im(const Geometry& s, const float* cols, float* image) {
  const int64_t plane = s.oh * s.ow, cs = s.inChannelStride();
#pragma omp parallel for if (s.c * s.kh * s.kw * plane > kParallelThreshold)
  for (int64_t c = 0; c < s.c; ++c) {
    float* channel = image + c * cs;
    std::fill(channel, channel + s.h * s.w, 0.0f);
    for (int64_t ky = 0; ky < s.kh; ++ky)
      for (int64_t kx = 0; kx < s.kw; ++kx) {
        int64_t lo, hi;
        columnRange(s, kx, lo, hi);
        const float* src = cols + ((c * s.kh + ky) * s.kw + kx) * plane;
        for (int64_t y = 0; y < s.oh; ++y) {
          const int64_t sy = y + ky * s.dilY - s.padTop;
          if (sy < 0 || sy >= s.h) continue;
          float* __restrict to = channel + sy * s.w + (kx * s.dilX - s.padLeft);
          const float* __restrict from = src + y * s.ow;
#pragma omp simd
          for (int64_t x = lo; x < hi; ++x) to[x] += from[x];
        }
      }
  }
}

}  // namespace

void fewTapForward(Backend& be, const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const Geometry s = geometryOf(g, x, w, y);
  const int64_t o = w.dim(0), taps = s.c * s.kh * s.kw, plane = s.oh * s.ow;
  Tensor cols = Tensor::empty(be, {taps, plane});
  for (int64_t n = 0; n < x.dim(0); ++n)
    for (int64_t d = 0; d < s.slices; ++d) {
      im2col(s, x.data() + n * s.c * s.inChannelStride() + d * s.h * s.w, cols.data());
      // y[n, :, d] (o, plane), rows a channel stride apart
      float* out = y.data() + n * o * s.outChannelStride() + d * plane;
      sgemm('N', 'N', o, plane, taps, w.data(), taps, cols.data(), plane, 0.0f, out, s.outChannelStride());
      if (bias) {
        const float* b = bias->data();
#pragma omp parallel for if (o * plane > kParallelThreshold)
        for (int64_t k = 0; k < o; ++k) {
          float* row = out + k * s.outChannelStride();
          const float v = b[k];
#pragma omp simd
          for (int64_t p = 0; p < plane; ++p) row[p] += v;
        }
      }
    }
}

void fewTapBackwardData(Backend& be, const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const Geometry s = geometryOf(g, dx, w, dy);
  const int64_t o = w.dim(0), taps = s.c * s.kh * s.kw, plane = s.oh * s.ow;
  Tensor cols = Tensor::empty(be, {taps, plane});
  for (int64_t n = 0; n < dy.dim(0); ++n)
    for (int64_t d = 0; d < s.slices; ++d) {
      // dcols (taps, plane) = w (o, taps)^T dy[n, :, d] (o, plane)
      sgemm('T', 'N', taps, plane, o, w.data(), taps, dy.data() + n * o * s.outChannelStride() + d * plane, s.outChannelStride(), 0.0f,
            cols.data(), plane);
      col2im(s, cols.data(), dx.data() + n * s.c * s.inChannelStride() + d * s.h * s.w);
    }
}

void fewTapBackwardWeights(Backend& be, const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw) {
  const Geometry s = geometryOf(g, x, dw, dy);
  const int64_t o = dw.dim(0), taps = s.c * s.kh * s.kw, plane = s.oh * s.ow;
  Tensor colsT = Tensor::empty(be, {plane, taps});
  bool first = true;
  for (int64_t n = 0; n < x.dim(0); ++n)
    for (int64_t d = 0; d < s.slices; ++d) {
      im2colTransposed(s, x.data() + n * s.c * s.inChannelStride() + d * s.h * s.w, colsT.data());
      // dw (o, taps) += dy[n, :, d] (o, plane) colsT (plane, taps)
      sgemm('N', 'N', o, taps, plane, dy.data() + n * o * s.outChannelStride() + d * plane, s.outChannelStride(), colsT.data(), taps,
            first ? 0.0f : 1.0f, dw.data(), taps);
      first = false;
    }
  if (first) std::fill(dw.data(), dw.data() + dw.size(), 0.0f);
}


// ---- Kernel equal to stride ("patch" convolutions): each output voxel reads its own
// block of the input, so im2col is a rearrangement without overlap or padding. The
// transposed form (the MRI decoder's 2x2, stride 2 up-sampling) is this convolution's
// data gradient; oneDNN's strided 2x2 kernels ran those at 12-40 GFLOP/s.

namespace {

// The spatial extents of a patch convolution: input (D, H, W), kernel (kd, kh, kw),
// output (D/kd, H/kh, W/kw); 2D tensors have D = kd = 1.
struct PatchShape {
  int64_t d, h, w, kd, kh, kw;
  int64_t od() const { return d / kd; }
  int64_t oh() const { return h / kh; }
  int64_t ow() const { return w / kw; }
  int64_t taps() const { return kd * kh * kw; }
  int64_t voxels() const { return d * h * w; }
  int64_t outVoxels() const { return od() * oh() * ow(); }
};

PatchShape patchShapeOf(const Tensor& x, const Tensor& w) {
  const int r = x.rank();
  return {r == 5 ? x.dim(2) : 1, x.dim(r - 2), x.dim(r - 1), r == 5 ? w.dim(2) : 1, w.dim(r - 2), w.dim(r - 1)};
}

// Moves one image between its (C, D, H, W) layout and patch columns (C * taps, outVoxels):
// row (c, tz, ty, tx), column (z, y, x) holds image[c, z*kd + tz, y*kh + ty, x*kw + tx].
// toColumns false writes the image from the columns (every voxel is in exactly one patch).
void rearrange(const PatchShape& p, int64_t channels, float* image, float* cols, bool toColumns) {
  const int64_t rows = channels * p.taps(), od = p.od(), oh = p.oh(), ow = p.ow(), out = p.outVoxels();
#pragma omp parallel for if (rows * out > kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / p.taps(), tz = (r / (p.kh * p.kw)) % p.kd, ty = (r / p.kw) % p.kh, tx = r % p.kw;
    float* col = cols + r * out;
    for (int64_t z = 0; z < od; ++z)
      for (int64_t y = 0; y < oh; ++y) {
        float* line = image + ((c * p.d + z * p.kd + tz) * p.h + y * p.kh + ty) * p.w + tx;
        float* dst = col + (z * oh + y) * ow;
        if (toColumns) {
          for (int64_t x = 0; x < ow; ++x) dst[x] = line[x * p.kw];
        } else {
          for (int64_t x = 0; x < ow; ++x) line[x * p.kw] = dst[x];
        }
      }
  }
}

}  // namespace

bool isPatchConv(const ConvGeometry& g, const Tensor& x, const Tensor& w) {
  if (g.groups != 1 || x.rank() < 4 || w.rank() != x.rank() || x.rank() - 2 != g.spatialRank) return false;
  int64_t taps = 1;
  for (int a = 0; a < g.spatialRank; ++a) {
    const int axis = 3 - g.spatialRank + a;  // geometry axis of spatial axis a
    const int64_t k = w.dim(2 + a);
    if (g.stride[axis] != k || g.padding[axis] != 0 || g.dilation[axis] != 1 || x.dim(2 + a) % k != 0) return false;
    taps *= k;
  }
  // 1x1 kernels have their own path; the product needs some columns to pay.
  const int64_t outVoxels = x.size() / (x.dim(0) * x.dim(1)) / taps;
  return taps > 1 && outVoxels >= 64;
}

void patchForward(Backend& be, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const PatchShape p = patchShapeOf(x, w);
  const int64_t c = x.dim(1), o = w.dim(0), rows = c * p.taps(), out = p.outVoxels();
  Tensor cols = Tensor::empty(be, {rows, out});
  for (int64_t n = 0; n < x.dim(0); ++n) {
    rearrange(p, c, const_cast<float*>(x.data()) + n * c * p.voxels(), cols.data(), true);
    // y[n] (o, out) = w (o, rows) cols (rows, out)
    float* yn = y.data() + n * o * out;
    sgemm('N', 'N', o, out, rows, w.data(), rows, cols.data(), out, 0.0f, yn, out);
    if (bias) {
      const float* b = bias->data();
#pragma omp parallel for if (o * out > kParallelThreshold)
      for (int64_t k = 0; k < o; ++k) {
        const float v = b[k];
#pragma omp simd
        for (int64_t s = 0; s < out; ++s) yn[k * out + s] += v;
      }
    }
  }
}

void patchBackwardData(Backend& be, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const PatchShape p = patchShapeOf(dx, w);
  const int64_t c = dx.dim(1), o = w.dim(0), rows = c * p.taps(), out = p.outVoxels();
  Tensor cols = Tensor::empty(be, {rows, out});
  for (int64_t n = 0; n < dx.dim(0); ++n) {
    // cols (rows, out) = w^T (rows, o) dy[n] (o, out), then back into dx's layout
    sgemm('T', 'N', rows, out, o, w.data(), rows, dy.data() + n * o * out, out, 0.0f, cols.data(), out);
    rearrange(p, c, dx.data() + n * c * p.voxels(), cols.data(), false);
  }
}

void patchBackwardWeights(Backend& be, const Tensor& x, const Tensor& dy, Tensor& dw) {
  const PatchShape p = patchShapeOf(x, dw);
  const int64_t c = x.dim(1), o = dw.dim(0), rows = c * p.taps(), out = p.outVoxels();
  Tensor cols = Tensor::empty(be, {rows, out});
  for (int64_t n = 0; n < x.dim(0); ++n) {
    rearrange(p, c, const_cast<float*>(x.data()) + n * c * p.voxels(), cols.data(), true);
    // dw (o, rows) (+)= dy[n] (o, out) cols^T (out, rows): the batch summed in order
    sgemm('N', 'T', o, rows, out, dy.data() + n * o * out, out, cols.data(), out, n == 0 ? 0.0f : 1.0f, dw.data(), rows);
  }
}

}  // namespace segvol::cpu
