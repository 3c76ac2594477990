// The fused steps of the Elman RNN and the GRU (PyTorch's definitions, see
// core/backend_ops.inc): one pass per step forward, one backward, split into spans as
// the LSTM step is (cell_spans.h).
#include "cell_spans.h"
#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {
namespace {

using cells::kChunk;
using cells::kZeros;
using cells::Span;

template <bool Relu>
__attribute__((noinline)) void rnnForwardSpan(const float* __restrict pre, const float* __restrict rec,
                                              const float* __restrict bias, float* __restrict h, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float v = pre[p] + (rec[p] + bias[p]);
    h[p] = Relu ? (v > 0.0f ? v : 0.0f) : fastmath::tanh(v);
  }
}

template <bool Relu>
__attribute__((noinline)) void rnnBackwardSpan(const float* __restrict h, const float* __restrict dh,
                                               const float* __restrict dhRecurrent, float* __restrict dpre,
                                               int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float grad = dh[p] + dhRecurrent[p];
    dpre[p] = Relu ? (h[p] > 0.0f ? grad : 0.0f) : grad * (1.0f - h[p] * h[p]);
  }
}

using cells::Rows3;
using cells::Rows4;
using cells::rows3;
using cells::rows4;

// gi, gh, bias: (r, z, n); act out: r, z, n, and gh_n + bh_n (the reset product's other factor).
__attribute__((noinline)) void gruForwardSpan(Rows3<const float> gi, Rows3<const float> gh, Rows3<const float> bias,
                                              const float* __restrict prev, Rows4<float> act, float* __restrict h,
                                              int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float r = fastmath::sigmoid(gi.r0[p] + (gh.r0[p] + bias.r0[p]));
    const float z = fastmath::sigmoid(gi.r1[p] + (gh.r1[p] + bias.r1[p]));
    const float hn = gh.r2[p] + bias.r2[p];
    const float n = fastmath::tanh(gi.r2[p] + r * hn);
    act.r0[p] = r;
    act.r1[p] = z;
    act.r2[p] = n;
    act.r3[p] = hn;
    h[p] = (1.0f - z) * n + z * prev[p];
  }
}

// act: (r, z, n, gh_n + bh_n); dgi, dgh: (r, z, n)
__attribute__((noinline)) void gruBackwardSpan(Rows4<const float> act, const float* __restrict prev,
                                               const float* __restrict dh, const float* __restrict dhRecurrent,
                                               float* __restrict carry, Rows3<float> dgi, Rows3<float> dgh, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float r = act.r0[p], z = act.r1[p], n = act.r2[p];
    const float grad = dh[p] + dhRecurrent[p] + carry[p];
    const float dn = grad * (1.0f - z) * (1.0f - n * n);
    const float dz = grad * (prev[p] - n) * z * (1.0f - z);
    const float dr = dn * act.r3[p] * r * (1.0f - r);
    dgi.r0[p] = dr;
    dgi.r1[p] = dz;
    dgi.r2[p] = dn;
    dgh.r0[p] = dr;
    dgh.r1[p] = dz;
    dgh.r2[p] = dn * r;
    carry[p] = grad * z;
  }
}

}  // namespace

void CpuBackend::rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o), block = o * s;
  cells::forEachSpan(n, o, s, [&](const Span& sp) {
    alignas(64) static thread_local float spread[kChunk];
    const int64_t at = sp.b * block + sp.offset;
    const float* rec = recurrent ? recurrent->data() + at : kZeros;
    const float* b = bias ? cells::perUnit(bias->data(), sp, spread) : kZeros;
    if (relu) rnnForwardSpan<true>(pre.data() + at, rec, b, h.data() + at, sp.len);
    else rnnForwardSpan<false>(pre.data() + at, rec, b, h.data() + at, sp.len);
  });
}

void CpuBackend::rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o), block = o * s;
  cells::forEachSpan(n, o, s, [&](const Span& sp) {
    const int64_t at = sp.b * block + sp.offset;
    const float* dr = dhRecurrent ? dhRecurrent->data() + at : kZeros;
    if (relu) rnnBackwardSpan<true>(h.data() + at, dh.data() + at, dr, dpre.data() + at, sp.len);
    else rnnBackwardSpan<false>(h.data() + at, dh.data() + at, dr, dpre.data() + at, sp.len);
  });
}

void CpuBackend::gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                                Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o), block = o * s;
  cells::forEachSpan(n, o, s, [&](const Span& sp) {
    alignas(64) static thread_local float spread[3][kChunk];
    const float* x = gi.data() + sp.b * 3 * block + sp.offset;
    const float* r = gh ? gh->data() + sp.b * 3 * block + sp.offset : nullptr;
    Rows3<const float> rec = r ? rows3(r, block) : Rows3<const float>{kZeros, kZeros, kZeros};
    Rows3<const float> b{kZeros, kZeros, kZeros};
    if (bias) {
      const float* bb = bias->data();
      b = {cells::perUnit(bb, sp, spread[0]), cells::perUnit(bb + o, sp, spread[1]), cells::perUnit(bb + 2 * o, sp, spread[2])};
    }
    float* a = act.data() + sp.b * 4 * block + sp.offset;
    const int64_t at = sp.b * block + sp.offset;
    gruForwardSpan(rows3(x, block), rec, b, hPrev ? hPrev->data() + at : kZeros, rows4(a, block), h.data() + at, sp.len);
  });
}

void CpuBackend::gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                                 Tensor& dhCarry, Tensor& dgi, Tensor& dgh) {
  const int64_t n = dh.dim(0), o = dh.dim(1), s = dh.size() / (n * o), block = o * s;
  cells::forEachSpan(n, o, s, [&](const Span& sp) {
    const float* a = act.data() + sp.b * 4 * block + sp.offset;
    float* di = dgi.data() + sp.b * 3 * block + sp.offset;
    float* dr = dgh.data() + sp.b * 3 * block + sp.offset;
    const int64_t at = sp.b * block + sp.offset;
    gruBackwardSpan(rows4(a, block), hPrev ? hPrev->data() + at : kZeros, dh.data() + at,
                    dhRecurrent ? dhRecurrent->data() + at : kZeros, dhCarry.data() + at, rows3(di, block), rows3(dr, block),
                    sp.len);
  });
}

}  // namespace segvol
