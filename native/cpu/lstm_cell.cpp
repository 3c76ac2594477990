// The fused LSTM step of the C-LSTM scan and of the dense LSTM: one pass reads
// the four gate pre-activations (plus the recurrent term, its bias and the
// optional peepholes), writes the activations, the cell and the output;
// backward is one pass as well.
// Work is split into spans of contiguous voxels that share nothing but their
// operands: a (sample, hidden unit) row of S plane voxels, or, for the dense
// LSTM (S = 1), a whole sample's O units. Each span kernel takes restrict
// pointers to same-length arrays (a missing operand reads a zero row, a
// per-unit bias is spread into a row) and has no branch in its loop, so it
// vectorises (the compiler does not vectorise loops in the OpenMP outlined body).
#include <algorithm>

#include "cell_spans.h"
#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {
namespace {

using fastmath::sigmoid;
using fastmath::tanh;

using cells::kChunk;
using cells::kZeros;
using cells::Span;
using cells::forEachSpan;

using cells::Rows3;
using cells::Rows4;
using cells::rows3;
using cells::rows4;

// The peephole rows (w_ci, w_cf, w_co) of a span, or zeros.
Rows3<const float> peepRows(const float* peepholes, const Span& sp, int64_t block) {
  return peepholes ? rows3(peepholes + sp.offset, block) : Rows3<const float>{kZeros, kZeros, kZeros};
}

// gates (i, f, g, o) in: input pre-activations; out: activations. rec and bias: the
// recurrent term and its bias per voxel (zeros when absent); prev: cPrev; peep
// (i, f, o): w_ci, w_cf, w_co.
__attribute__((noinline)) void forwardSpan(Rows4<float> gates, Rows4<const float> rec, Rows4<const float> bias,
                                           const float* __restrict prev, Rows3<const float> peep, float* __restrict c,
                                           float* __restrict h, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float cp = prev[p];
    const float i = sigmoid(gates.r0[p] + (rec.r0[p] + bias.r0[p]) + peep.r0[p] * cp);
    const float f = sigmoid(gates.r1[p] + (rec.r1[p] + bias.r1[p]) + peep.r1[p] * cp);
    const float g = tanh(gates.r2[p] + (rec.r2[p] + bias.r2[p]));
    const float cell = g * i + cp * f;
    const float o = sigmoid(gates.r3[p] + (rec.r3[p] + bias.r3[p]) + peep.r2[p] * cell);
    gates.r0[p] = i;
    gates.r1[p] = f;
    gates.r2[p] = g;
    gates.r3[p] = o;
    c[p] = cell;
    h[p] = o * tanh(cell);
  }
}

// gates, dgates: (i, f, g, o); peep: (i, f, o)
__attribute__((noinline)) void backwardSpan(Rows4<const float> gates, const float* __restrict prev,
                                            const float* __restrict c, const float* __restrict dh,
                                            const float* __restrict dhRecurrent, Rows3<const float> peep,
                                            float* __restrict dc, Rows4<float> dgates, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float i = gates.r0[p], f = gates.r1[p], g = gates.r2[p], o = gates.r3[p];
    const float tc = tanh(c[p]);
    const float gradH = dh[p] + dhRecurrent[p];
    const float dout = gradH * tc * o * (1.0f - o);
    const float gradC = dc[p] + gradH * o * (1.0f - tc * tc) + dout * peep.r2[p];
    const float di = gradC * g * i * (1.0f - i);
    const float df = gradC * prev[p] * f * (1.0f - f);
    dgates.r0[p] = di;
    dgates.r1[p] = df;
    dgates.r2[p] = gradC * i * (1.0f - g * g);
    dgates.r3[p] = dout;
    dc[p] = gradC * f + di * peep.r0[p] + df * peep.r1[p];
  }
}

}  // namespace

void CpuBackend::lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias,
                                 const Tensor* cPrev, const Tensor* peepholes, Tensor& c, Tensor& h) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o), block = o * s;
  float* gp = gates.data();
  const float* rp = recurrent ? recurrent->data() : nullptr;
  const float* biases = recurrentBias ? recurrentBias->data() : nullptr;
  const int64_t groups = recurrentBias ? recurrentBias->size() / (4 * o) : 1;
  const float* cp = cPrev ? cPrev->data() : nullptr;
  const float* pp = peepholes ? peepholes->data() : nullptr;
  forEachSpan(n, o, s, [&](const Span& sp) {
    alignas(64) static thread_local float spread[4][kChunk];
    float* base = gp + sp.b * 4 * block + sp.offset;
    const float* r = rp ? rp + sp.b * 4 * block + sp.offset : nullptr;
    Rows4<const float> rec = r ? rows4(r, block) : Rows4<const float>{kZeros, kZeros, kZeros, kZeros};
    Rows4<const float> bias{kZeros, kZeros, kZeros, kZeros};
    if (biases) {
      const float* bb = biases + (sp.b % groups) * 4 * o;
      bias = {cells::perUnit(bb, sp, spread[0]), cells::perUnit(bb + o, sp, spread[1]),
              cells::perUnit(bb + 2 * o, sp, spread[2]), cells::perUnit(bb + 3 * o, sp, spread[3])};
    }
    forwardSpan(rows4(base, block), rec, bias, cp ? cp + sp.b * block + sp.offset : kZeros, peepRows(pp, sp, block),
                c.data() + sp.b * block + sp.offset, h.data() + sp.b * block + sp.offset, sp.len);
  });
}

void CpuBackend::lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                                  const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o), block = o * s;
  const float* pp = peepholes ? peepholes->data() : nullptr;
  forEachSpan(n, o, s, [&](const Span& sp) {
    const float* g = gates.data() + sp.b * 4 * block + sp.offset;
    float* d = dgates.data() + sp.b * 4 * block + sp.offset;
    const int64_t at = sp.b * block + sp.offset;
    backwardSpan(rows4(g, block), cPrev ? cPrev->data() + at : kZeros, c.data() + at, dh.data() + at,
                 dhRecurrent ? dhRecurrent->data() + at : kZeros, peepRows(pp, sp, block), dc.data() + at, rows4(d, block),
                 sp.len);
  });
}

}  // namespace segvol
