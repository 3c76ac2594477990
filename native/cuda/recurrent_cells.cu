// The fused Elman RNN and GRU step kernels, twins of native/cpu/recurrent_cells.cpp:
// one thread per (sample, hidden unit, plane voxel).
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

__device__ inline float sigmoidOf(float v) { return 1.0f / (1.0f + expf(-v)); }

// pre, recurrent (or null), h: (N, O, S); bias: (O) or null
__global__ void rnnForwardKernel(const float* pre, const float* recurrent, const float* bias, float* h, int64_t total,
                                 int64_t o, int64_t s, bool relu) {
  SEGVOL_GRID_STRIDE(idx, total) {
    const float v = pre[idx] + ((recurrent ? recurrent[idx] : 0.0f) + (bias ? bias[(idx / s) % o] : 0.0f));
    h[idx] = relu ? (v > 0.0f ? v : 0.0f) : tanhf(v);
  }
}

__global__ void rnnBackwardKernel(const float* h, const float* dh, const float* dhRecurrent, float* dpre, int64_t total, bool relu) {
  SEGVOL_GRID_STRIDE(idx, total) {
    const float grad = dh[idx] + (dhRecurrent ? dhRecurrent[idx] : 0.0f);
    dpre[idx] = relu ? (h[idx] > 0.0f ? grad : 0.0f) : grad * (1.0f - h[idx] * h[idx]);
  }
}

// gi, gh (or null): (N, 3O, S); bias: (3O) or null; hPrev (or null), h: (N, O, S); act: (N, 4O, S) out
__global__ void gruForwardKernel(const float* gi, const float* gh, const float* bias, const float* hPrev, float* act, float* h,
                                 int64_t n, int64_t o, int64_t s) {
  SEGVOL_GRID_STRIDE(idx, n * o * s) {
    const int64_t b = idx / (o * s), k = (idx / s) % o, step = o * s, unit = idx % step;
    const int64_t in = b * 3 * step + unit, out = b * 4 * step + unit;
    float rec[3];
    for (int q = 0; q < 3; ++q) rec[q] = (gh ? gh[in + q * step] : 0.0f) + (bias ? bias[q * o + k] : 0.0f);
    const float r = sigmoidOf(gi[in] + rec[0]);
    const float z = sigmoidOf(gi[in + step] + rec[1]);
    const float nn = tanhf(gi[in + 2 * step] + r * rec[2]);
    act[out] = r;
    act[out + step] = z;
    act[out + 2 * step] = nn;
    act[out + 3 * step] = rec[2];
    h[idx] = (1.0f - z) * nn + z * (hPrev ? hPrev[idx] : 0.0f);
  }
}

__global__ void gruBackwardKernel(const float* act, const float* hPrev, const float* dh, const float* dhRecurrent, float* carry,
                                  float* dgi, float* dgh, int64_t n, int64_t o, int64_t s) {
  SEGVOL_GRID_STRIDE(idx, n * o * s) {
    const int64_t b = idx / (o * s), step = o * s, unit = idx % step;
    const int64_t a = b * 4 * step + unit, g = b * 3 * step + unit;
    const float r = act[a], z = act[a + step], nn = act[a + 2 * step], hn = act[a + 3 * step];
    const float grad = dh[idx] + (dhRecurrent ? dhRecurrent[idx] : 0.0f) + carry[idx];
    const float dn = grad * (1.0f - z) * (1.0f - nn * nn);
    const float dz = grad * ((hPrev ? hPrev[idx] : 0.0f) - nn) * z * (1.0f - z);
    const float dr = dn * hn * r * (1.0f - r);
    dgi[g] = dr;
    dgi[g + step] = dz;
    dgi[g + 2 * step] = dn;
    dgh[g] = dr;
    dgh[g + step] = dz;
    dgh[g + 2 * step] = dn * r;
    carry[idx] = grad * z;
  }
}

}  // namespace

void CudaBackend::rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o);
  SEGVOL_LAUNCH(rnnForwardKernel, cuda::blocksFor(h.size()), 256)(pre.data(), recurrent ? recurrent->data() : nullptr,
                                                       bias ? bias->data() : nullptr, h.data(), h.size(), o, s, relu);
  cuda::checkLaunch("rnnStepForward");
}

void CudaBackend::rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) {
  SEGVOL_LAUNCH(rnnBackwardKernel, cuda::blocksFor(h.size()), 256)(h.data(), dh.data(), dhRecurrent ? dhRecurrent->data() : nullptr,
                                                        dpre.data(), h.size(), relu);
  cuda::checkLaunch("rnnStepBackward");
}

void CudaBackend::gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act, Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o);
  SEGVOL_LAUNCH(gruForwardKernel, cuda::blocksFor(h.size()), 256)(gi.data(), gh ? gh->data() : nullptr, bias ? bias->data() : nullptr,
                                                       hPrev ? hPrev->data() : nullptr, act.data(), h.data(), n, o, s);
  cuda::checkLaunch("gruStepForward");
}

void CudaBackend::gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dhCarry,
                                  Tensor& dgi, Tensor& dgh) {
  const int64_t n = dh.dim(0), o = dh.dim(1), s = dh.size() / (n * o);
  SEGVOL_LAUNCH(gruBackwardKernel, cuda::blocksFor(dh.size()), 256)(act.data(), hPrev ? hPrev->data() : nullptr, dh.data(),
                                                         dhRecurrent ? dhRecurrent->data() : nullptr, dhCarry.data(), dgi.data(),
                                                         dgh.data(), n, o, s);
  cuda::checkLaunch("gruStepBackward");
}

}  // namespace segvol
