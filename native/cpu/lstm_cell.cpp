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

struct Four {
  float* __restrict i;
  float* __restrict f;
  float* __restrict g;
  float* __restrict o;
};
struct ConstFour {
  const float* __restrict i;
  const float* __restrict f;
  const float* __restrict g;
  const float* __restrict o;
};
struct ConstThree {
  const float* __restrict i;
  const float* __restrict f;
  const float* __restrict o;
};

// gates in: input pre-activations; out: activations. rec and bias: the recurrent
// term and its bias per voxel (zeros when absent); prev: cPrev; peep: w_ci, w_cf, w_co.
__attribute__((noinline)) void forwardSpan(Four gates, ConstFour rec, ConstFour bias, const float* __restrict prev,
                                           ConstThree peep, float* __restrict c, float* __restrict h, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float cp = prev[p];
    const float i = sigmoid(gates.i[p] + (rec.i[p] + bias.i[p]) + peep.i[p] * cp);
    const float f = sigmoid(gates.f[p] + (rec.f[p] + bias.f[p]) + peep.f[p] * cp);
    const float g = tanh(gates.g[p] + (rec.g[p] + bias.g[p]));
    const float cell = g * i + cp * f;
    const float o = sigmoid(gates.o[p] + (rec.o[p] + bias.o[p]) + peep.o[p] * cell);
    gates.i[p] = i;
    gates.f[p] = f;
    gates.g[p] = g;
    gates.o[p] = o;
    c[p] = cell;
    h[p] = o * tanh(cell);
  }
}

__attribute__((noinline)) void backwardSpan(ConstFour gates, const float* __restrict prev, const float* __restrict c,
                                            const float* __restrict dh, const float* __restrict dhRecurrent,
                                            ConstThree peep, float* __restrict dc, Four dgates, int64_t len) {
#pragma omp simd
  for (int64_t p = 0; p < len; ++p) {
    const float i = gates.i[p], f = gates.f[p], g = gates.g[p], o = gates.o[p];
    const float tc = tanh(c[p]);
    const float gradH = dh[p] + dhRecurrent[p];
    const float dout = gradH * tc * o * (1.0f - o);
    const float gradC = dc[p] + gradH * o * (1.0f - tc * tc) + dout * peep.o[p];
    const float di = gradC * g * i * (1.0f - i);
    const float df = gradC * prev[p] * f * (1.0f - f);
    dgates.i[p] = di;
    dgates.f[p] = df;
    dgates.g[p] = gradC * i * (1.0f - g * g);
    dgates.o[p] = dout;
    dc[p] = gradC * f + di * peep.i[p] + df * peep.f[p];
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
    ConstFour rec = r ? ConstFour{r, r + block, r + 2 * block, r + 3 * block} : ConstFour{kZeros, kZeros, kZeros, kZeros};
    ConstFour bias{kZeros, kZeros, kZeros, kZeros};
    if (biases) {
      const float* bb = biases + (sp.b % groups) * 4 * o;
      bias = {cells::perUnit(bb, sp, spread[0]), cells::perUnit(bb + o, sp, spread[1]),
              cells::perUnit(bb + 2 * o, sp, spread[2]), cells::perUnit(bb + 3 * o, sp, spread[3])};
    }
    ConstThree peep = pp ? ConstThree{pp + sp.offset, pp + block + sp.offset, pp + 2 * block + sp.offset}
                         : ConstThree{kZeros, kZeros, kZeros};
    forwardSpan({base, base + block, base + 2 * block, base + 3 * block}, rec, bias,
                cp ? cp + sp.b * block + sp.offset : kZeros, peep, c.data() + sp.b * block + sp.offset,
                h.data() + sp.b * block + sp.offset, sp.len);
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
    ConstThree peep = pp ? ConstThree{pp + sp.offset, pp + block + sp.offset, pp + 2 * block + sp.offset}
                         : ConstThree{kZeros, kZeros, kZeros};
    backwardSpan({g, g + block, g + 2 * block, g + 3 * block}, cPrev ? cPrev->data() + at : kZeros, c.data() + at,
                 dh.data() + at, dhRecurrent ? dhRecurrent->data() + at : kZeros, peep, dc.data() + at,
                 {d, d + block, d + 2 * block, d + 3 * block}, sp.len);
  });
}

}  // namespace segvol
