// The fused LSTM step of the C-LSTM scan: one pass over the plane reads the four
// gate pre-activations (plus the recurrent term and its bias), writes the
// activations, the cell and the output. Backward is one pass as well.
// Parallel over (sample, hidden unit) rows; the inner loop over the plane is
// unit-stride and vectorised.
#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {
using fastmath::sigmoid;
using fastmath::tanh;

void CpuBackend::lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias,
                                 const Tensor* cPrev, Tensor& c, Tensor& h) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  float* gp = gates.data();
  const float* rp = recurrent ? recurrent->data() : nullptr;
  const float* bias = recurrentBias ? recurrentBias->data() : nullptr;
  const float* cp = cPrev ? cPrev->data() : nullptr;
  float* cOut = c.data();
  float* hOut = h.data();
#pragma omp parallel for collapse(2) if (c.size() > 8192)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k) {
      float* gi = gp + (b * 4 * o + k) * s;
      float* gf = gi + o * s;
      float* gg = gf + o * s;
      float* go = gg + o * s;
      const float* ri = rp ? rp + (b * 4 * o + k) * s : nullptr;
      const float* prev = cp ? cp + (b * o + k) * s : nullptr;
      float* cRow = cOut + (b * o + k) * s;
      float* hRow = hOut + (b * o + k) * s;
      const float bi = bias ? bias[k] : 0.0f, bf = bias ? bias[o + k] : 0.0f, bg = bias ? bias[2 * o + k] : 0.0f,
                  bo = bias ? bias[3 * o + k] : 0.0f;
      if (ri) {
        const float* rf = ri + o * s;
        const float* rg = rf + o * s;
        const float* ro = rg + o * s;
#pragma omp simd
        for (int64_t p = 0; p < s; ++p) {
          gi[p] += ri[p] + bi;
          gf[p] += rf[p] + bf;
          gg[p] += rg[p] + bg;
          go[p] += ro[p] + bo;
        }
      }
#pragma omp simd
      for (int64_t p = 0; p < s; ++p) {
        const float i = sigmoid(gi[p]), f = sigmoid(gf[p]), g = tanh(gg[p]), out = sigmoid(go[p]);
        const float cell = prev ? g * i + prev[p] * f : g * i;
        gi[p] = i;
        gf[p] = f;
        gg[p] = g;
        go[p] = out;
        cRow[p] = cell;
        hRow[p] = out * tanh(cell);
      }
    }
}

void CpuBackend::lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                                  const Tensor* dhRecurrent, Tensor& dc, Tensor& dgates) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
#pragma omp parallel for collapse(2) if (c.size() > 8192)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k) {
      const float* gi = gates.data() + (b * 4 * o + k) * s;
      const float* gf = gi + o * s;
      const float* gg = gf + o * s;
      const float* go = gg + o * s;
      float* di = dgates.data() + (b * 4 * o + k) * s;
      float* df = di + o * s;
      float* dg = df + o * s;
      float* dout = dg + o * s;
      const int64_t row = (b * o + k) * s;
      const float* cRow = c.data() + row;
      const float* prev = cPrev ? cPrev->data() + row : nullptr;
      const float* dhRow = dh.data() + row;
      const float* dhr = dhRecurrent ? dhRecurrent->data() + row : nullptr;
      float* dcRow = dc.data() + row;
#pragma omp simd
      for (int64_t p = 0; p < s; ++p) {
        const float i = gi[p], f = gf[p], g = gg[p], out = go[p];
        const float tc = tanh(cRow[p]);
        const float gradH = dhr ? dhRow[p] + dhr[p] : dhRow[p];
        const float gradC = dcRow[p] + gradH * out * (1.0f - tc * tc);
        const float prevC = prev ? prev[p] : 0.0f;
        di[p] = gradC * g * i * (1.0f - i);
        df[p] = gradC * prevC * f * (1.0f - f);
        dg[p] = gradC * i * (1.0f - g * g);
        dout[p] = gradH * tc * out * (1.0f - out);
        dcRow[p] = gradC * f;
      }
    }
}

}  // namespace segvol
