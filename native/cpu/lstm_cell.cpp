// The fused LSTM step of the C-LSTM scan: one pass over a plane reads the four
// gate pre-activations (plus the recurrent term and its bias), writes the
// activations, the cell and the output; backward is one pass as well.
// Work is split into rows (sample, hidden unit) of S plane voxels; each row
// kernel takes restrict pointers and has no branch in its loop, so it
// vectorises (the compiler does not vectorise these loops in the OpenMP
// outlined body itself).
#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {
namespace {

using fastmath::sigmoid;
using fastmath::tanh;

struct GateRows {
  float* __restrict i;
  float* __restrict f;
  float* __restrict g;
  float* __restrict o;
};

__attribute__((noinline)) void addRecurrent(GateRows gates, const float* __restrict ri, const float* __restrict rf,
                                            const float* __restrict rg, const float* __restrict ro, float bi, float bf,
                                            float bg, float bo, int64_t s) {
#pragma omp simd
  for (int64_t p = 0; p < s; ++p) {
    gates.i[p] += ri[p] + bi;
    gates.f[p] += rf[p] + bf;
    gates.g[p] += rg[p] + bg;
    gates.o[p] += ro[p] + bo;
  }
}

// prev == nullptr: the first plane, c = g * i.
__attribute__((noinline)) void forwardRow(GateRows gates, const float* __restrict prev, float* __restrict c,
                                          float* __restrict h, int64_t s) {
  alignas(64) static thread_local float zeros[4096] = {};
  for (int64_t start = 0; start < s; start += 4096) {
    const int64_t len = s - start < 4096 ? s - start : 4096;
    const float* __restrict pv = prev ? prev + start : zeros;
    float* __restrict gi = gates.i + start;
    float* __restrict gf = gates.f + start;
    float* __restrict gg = gates.g + start;
    float* __restrict go = gates.o + start;
    float* __restrict cc = c + start;
    float* __restrict hh = h + start;
#pragma omp simd
    for (int64_t p = 0; p < len; ++p) {
      const float i = sigmoid(gi[p]), f = sigmoid(gf[p]), g = tanh(gg[p]), o = sigmoid(go[p]);
      const float cell = g * i + pv[p] * f;
      gi[p] = i;
      gf[p] = f;
      gg[p] = g;
      go[p] = o;
      cc[p] = cell;
      hh[p] = o * tanh(cell);
    }
  }
}

struct ConstGateRows {
  const float* __restrict i;
  const float* __restrict f;
  const float* __restrict g;
  const float* __restrict o;
};

// dhRecurrent and prev may be null (no next step's recurrence, no previous cell).
__attribute__((noinline)) void backwardRow(ConstGateRows gates, const float* __restrict prev,
                                           const float* __restrict c, const float* __restrict dh,
                                           const float* __restrict dhRecurrent, float* __restrict dc, GateRows dgates,
                                           int64_t s) {
  // Missing operands read as zeros from a small stack row, keeping the loop branch-free.
  alignas(64) static thread_local float zeros[4096] = {};
  for (int64_t start = 0; start < s; start += 4096) {
    const int64_t len = s - start < 4096 ? s - start : 4096;
    const float* __restrict pv = prev ? prev + start : zeros;
    const float* __restrict dr = dhRecurrent ? dhRecurrent + start : zeros;
    const float* __restrict gi = gates.i + start;
    const float* __restrict gf = gates.f + start;
    const float* __restrict gg = gates.g + start;
    const float* __restrict go = gates.o + start;
    const float* __restrict cc = c + start;
    const float* __restrict dd = dh + start;
    float* __restrict dcc = dc + start;
    float* __restrict di = dgates.i + start;
    float* __restrict df = dgates.f + start;
    float* __restrict dg = dgates.g + start;
    float* __restrict dout = dgates.o + start;
#pragma omp simd
    for (int64_t p = 0; p < len; ++p) {
      const float i = gi[p], f = gf[p], g = gg[p], o = go[p];
      const float tc = tanh(cc[p]);
      const float gradH = dd[p] + dr[p];
      const float gradC = dcc[p] + gradH * o * (1.0f - tc * tc);
      di[p] = gradC * g * i * (1.0f - i);
      df[p] = gradC * pv[p] * f * (1.0f - f);
      dg[p] = gradC * i * (1.0f - g * g);
      dout[p] = gradH * tc * o * (1.0f - o);
      dcc[p] = gradC * f;
    }
  }
}

}  // namespace

void CpuBackend::lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias,
                                 const Tensor* cPrev, Tensor& c, Tensor& h) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  float* gp = gates.data();
  const float* rp = recurrent ? recurrent->data() : nullptr;
  const float* biases = recurrentBias ? recurrentBias->data() : nullptr;
  const int64_t groups = recurrentBias ? recurrentBias->size() / (4 * o) : 1;
  const float* cp = cPrev ? cPrev->data() : nullptr;
#pragma omp parallel for if (c.size() > 32768)
  for (int64_t row = 0; row < n * o; ++row) {
    const int64_t b = row / o, k = row % o;
    float* base = gp + (b * 4 * o + k) * s;
    GateRows g{base, base + o * s, base + 2 * o * s, base + 3 * o * s};
    if (rp) {
      const float* bias = biases ? biases + (b % groups) * 4 * o : nullptr;
      const float* r = rp + (b * 4 * o + k) * s;
      addRecurrent(g, r, r + o * s, r + 2 * o * s, r + 3 * o * s, bias ? bias[k] : 0.0f, bias ? bias[o + k] : 0.0f,
                   bias ? bias[2 * o + k] : 0.0f, bias ? bias[3 * o + k] : 0.0f, s);
    }
    forwardRow(g, cp ? cp + row * s : nullptr, c.data() + row * s, h.data() + row * s, s);
  }
}

void CpuBackend::lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                                  const Tensor* dhRecurrent, Tensor& dc, Tensor& dgates) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
#pragma omp parallel for if (c.size() > 32768)
  for (int64_t row = 0; row < n * o; ++row) {
    const int64_t b = row / o, k = row % o;
    const float* g = gates.data() + (b * 4 * o + k) * s;
    float* d = dgates.data() + (b * 4 * o + k) * s;
    backwardRow({g, g + o * s, g + 2 * o * s, g + 3 * o * s}, cPrev ? cPrev->data() + row * s : nullptr,
                c.data() + row * s, dh.data() + row * s, dhRecurrent ? dhRecurrent->data() + row * s : nullptr,
                dc.data() + row * s, {d, d + o * s, d + 2 * o * s, d + 3 * o * s}, s);
  }
}

}  // namespace segvol
