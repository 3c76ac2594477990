// The fused LSTM step kernels (C-LSTM, ConvLSTM with peepholes, dense LSTM),
// twins of native/cpu/lstm_cell.cpp: one thread per (sample, hidden unit, plane
// voxel) reads the four gates and writes c and h.
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

__device__ inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

// gates: (N, 4O, S); recurrent: (N, 4O, S) or null; bias: (G*4O) or null, batch row b
// taking group b % G; cPrev, c, h: (N, O, S); peep: (3, O, S) or null
__global__ void lstmForwardKernel(float* gates, const float* recurrent, const float* bias, const float* cPrev, const float* peep,
                                  float* c, float* h, int64_t n, int64_t o, int64_t s, int64_t groups) {
  SEGVOL_GRID_STRIDE(idx, n * o * s) {
    const int64_t b = idx / (o * s), k = (idx / s) % o, p = idx % s;
    const int64_t gi = (b * 4 * o + k) * s + p, step = o * s, unit = idx % step;
    float pre[4];
    for (int q = 0; q < 4; ++q) {
      pre[q] = gates[gi + q * step];
      if (recurrent || bias) {
        pre[q] += (recurrent ? recurrent[gi + q * step] : 0.0f) + (bias ? bias[(b % groups) * 4 * o + q * o + k] : 0.0f);
      }
    }
    const float prev = cPrev ? cPrev[idx] : 0.0f;
    if (peep) {
      pre[0] += peep[unit] * prev;
      pre[1] += peep[step + unit] * prev;
    }
    const float i = sigmoidf(pre[0]), f = sigmoidf(pre[1]), g = tanhf(pre[2]);
    const float cell = g * i + prev * f;
    const float out = sigmoidf(peep ? pre[3] + peep[2 * step + unit] * cell : pre[3]);
    gates[gi] = i;
    gates[gi + step] = f;
    gates[gi + 2 * step] = g;
    gates[gi + 3 * step] = out;
    c[idx] = cell;
    h[idx] = out * tanhf(cell);
  }
}

__global__ void lstmBackwardKernel(const float* gates, const float* cPrev, const float* c, const float* dh, const float* dhRecurrent,
                                   const float* peep, float* dc, float* dgates, int64_t n, int64_t o, int64_t s) {
  SEGVOL_GRID_STRIDE(idx, n * o * s) {
    const int64_t b = idx / (o * s), k = (idx / s) % o, p = idx % s;
    const int64_t gi = (b * 4 * o + k) * s + p, step = o * s, unit = idx % step;
    const float i = gates[gi], f = gates[gi + step], g = gates[gi + 2 * step], out = gates[gi + 3 * step];
    const float tc = tanhf(c[idx]);
    const float gradH = dh[idx] + (dhRecurrent ? dhRecurrent[idx] : 0.0f);
    const float dout = gradH * tc * out * (1.0f - out);
    float gradC = dc[idx] + gradH * out * (1.0f - tc * tc);
    if (peep) gradC += dout * peep[2 * step + unit];
    const float prev = cPrev ? cPrev[idx] : 0.0f;
    const float di = gradC * g * i * (1.0f - i), df = gradC * prev * f * (1.0f - f);
    dgates[gi] = di;
    dgates[gi + step] = df;
    dgates[gi + 2 * step] = gradC * i * (1.0f - g * g);
    dgates[gi + 3 * step] = dout;
    dc[idx] = peep ? gradC * f + di * peep[unit] + df * peep[step + unit] : gradC * f;
  }
}

}  // namespace

void CudaBackend::lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias, const Tensor* cPrev,
                                  const Tensor* peepholes, Tensor& c, Tensor& h) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  SEGVOL_LAUNCH(lstmForwardKernel, cuda::blocksFor(c.size()), 256)(gates.data(), recurrent ? recurrent->data() : nullptr,
                                                        recurrentBias ? recurrentBias->data() : nullptr, cPrev ? cPrev->data() : nullptr,
                                                        peepholes ? peepholes->data() : nullptr, c.data(), h.data(), n, o, s,
                                                        recurrentBias ? recurrentBias->size() / (4 * o) : 1);
  cuda::checkLaunch("lstmStepForward");
}

void CudaBackend::lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh, const Tensor* dhRecurrent,
                                   const Tensor* peepholes, Tensor& dc, Tensor& dgates) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  SEGVOL_LAUNCH(lstmBackwardKernel, cuda::blocksFor(c.size()), 256)(gates.data(), cPrev ? cPrev->data() : nullptr, c.data(), dh.data(),
                                                         dhRecurrent ? dhRecurrent->data() : nullptr,
                                                         peepholes ? peepholes->data() : nullptr, dc.data(), dgates.data(), n, o, s);
  cuda::checkLaunch("lstmStepBackward");
}

}  // namespace segvol
