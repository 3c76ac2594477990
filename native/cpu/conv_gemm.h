// Convolutions as matrix products (oneDNN's sgemm), for the shapes where that
// beats oneDNN's convolution primitives on the CPU:
//   - a 1x1 kernel on 1x1 planes: a product of (rows, channels) matrices
//     (the projections of the dense recurrent layers);
//   - 2D, stride 1, no dilation, one group, few input taps (C * kH * kW <= 256):
//     im2col + GEMM per image. oneDNN's direct kernels run these (a ConvLSTM's
//     16-channel input projection, a PyraMiD-LSTM layer's first convolution) at
//     half the rate of its wider ones; the product keeps its full rate.
//   - a kernel equal to its stride (and the transposed form, 2x2 up-sampling):
//     a rearrangement without overlap and one product per image.
#pragma once
#include "../core/backend.h"

namespace segvol::cpu {

// Row-major C (m, n) = op(A) op(B) + beta C, as dnnl_sgemm; throws on failure.
void sgemm(char transA, char transB, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

bool isDenseProduct(const ConvGeometry& g, const Tensor& x, const Tensor& w);
// A 1x1(x1) kernel on (N, C, ...) planes: per image a product (O, C) x (C, S). oneDNN's
// direct kernels ran a 64 -> 5 classifier at 1 GFLOP/s and a 256 -> 64 one at 44.
bool isPointwiseConv(const ConvGeometry& g, const Tensor& x, const Tensor& w);
bool isFewTapConv(const ConvGeometry& g, const Tensor& x, const Tensor& w);

// be allocates the im2col buffer of one image.
// x: (N, C, H, W), w: (O, C, kH, kW), bias: (O) or null, y: (N, O, oH, oW)
void fewTapForward(Backend& be, const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
// dy: (N, O, oH, oW) -> dx: (N, C, H, W)
void fewTapBackwardData(Backend& be, const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx);
// x, dy -> dw: (O, C, kH, kW)
void fewTapBackwardWeights(Backend& be, const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw);

// A kernel equal to its stride, no padding or dilation, spatial sizes divisible by the
// kernel: each output voxel reads its own block, so im2col is a rearrangement (no
// overlap) and one product per image. The transposed form (2x2 up-sampling) is its
// data gradient.
bool isPatchConv(const ConvGeometry& g, const Tensor& x, const Tensor& w);
// x: (N, C, D, H, W) or (N, C, H, W), w: (O, C, kd, kh, kw) or (O, C, kh, kw), y: (N, O, D/kd, H/kh, W/kw)
void patchForward(Backend& be, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
// dy -> dx: (N, C, D, H, W)
void patchBackwardData(Backend& be, const Tensor& dy, const Tensor& w, Tensor& dx);
// x, dy -> dw (the bias gradient is the caller's channel sum)
void patchBackwardWeights(Backend& be, const Tensor& x, const Tensor& dy, Tensor& dw);

// x: (N, C, S...), w: (O, C, 1...), bias: (O) or null, y: (N, O, S...)
void pointwiseForward(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
// dy: (N, O, S...) -> dx: (N, C, S...)
void pointwiseBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx);
// x, dy -> dw: (O, C, 1...) (the bias gradient is the caller's channel sum)
void pointwiseBackwardWeights(const Tensor& x, const Tensor& dy, Tensor& dw);

}  // namespace segvol::cpu
