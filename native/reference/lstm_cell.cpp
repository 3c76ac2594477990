// The LSTM step, written from its definition (core/backend_ops.inc) in double.
#include "loops.h"

namespace segvol {
using namespace ref;

void ReferenceBackend::lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias,
                                       const Tensor* cPrev, const Tensor* peepholes, Tensor& c, Tensor& h) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  const int64_t groups = recurrentBias ? recurrentBias->size() / (4 * o) : 1;
  auto peep = [&](int which, int64_t k, int64_t p) {
    return peepholes ? static_cast<double>(peepholes->data()[(which * o + k) * s + p]) : 0.0;
  };
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k)
      for (int64_t p = 0; p < s; ++p) {
        double pre[4];
        for (int gate = 0; gate < 4; ++gate) {
          const int64_t gi = (b * 4 * o + gate * o + k) * s + p;
          pre[gate] = gates.data()[gi];
          if (recurrent) pre[gate] += recurrent->data()[gi];
          if (recurrentBias) pre[gate] += recurrentBias->data()[(b % groups) * 4 * o + gate * o + k];
        }
        const int64_t ci = (b * o + k) * s + p;
        const double prev = cPrev ? cPrev->data()[ci] : 0.0;
        const double i = sigmoid(pre[0] + peep(0, k, p) * prev), f = sigmoid(pre[1] + peep(1, k, p) * prev);
        const double g = std::tanh(pre[2]);
        const double cell = g * i + prev * f;
        const double out = sigmoid(pre[3] + peep(2, k, p) * cell);
        c.data()[ci] = static_cast<float>(cell);
        h.data()[ci] = static_cast<float>(out * std::tanh(cell));
        const double act[4] = {i, f, g, out};
        for (int gate = 0; gate < 4; ++gate) gates.data()[(b * 4 * o + gate * o + k) * s + p] = static_cast<float>(act[gate]);
      }
}

void ReferenceBackend::lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                                        const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) {
  const int64_t n = c.dim(0), o = c.dim(1), s = c.size() / (n * o);
  auto peep = [&](int which, int64_t k, int64_t p) {
    return peepholes ? static_cast<double>(peepholes->data()[(which * o + k) * s + p]) : 0.0;
  };
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k)
      for (int64_t p = 0; p < s; ++p) {
        auto gateAt = [&](int gate) { return (b * 4 * o + gate * o + k) * s + p; };
        const int64_t ci = (b * o + k) * s + p;
        const double i = gates.data()[gateAt(0)], f = gates.data()[gateAt(1)], g = gates.data()[gateAt(2)],
                     out = gates.data()[gateAt(3)];
        const double tc = std::tanh(static_cast<double>(c.data()[ci]));
        const double gradH = static_cast<double>(dh.data()[ci]) + (dhRecurrent ? dhRecurrent->data()[ci] : 0.0);
        const double dout = gradH * tc * out * (1 - out);
        const double gradC = static_cast<double>(dc.data()[ci]) + gradH * out * (1 - tc * tc) + dout * peep(2, k, p);
        const double prev = cPrev ? cPrev->data()[ci] : 0.0;
        const double di = gradC * g * i * (1 - i), df = gradC * prev * f * (1 - f);
        dgates.data()[gateAt(0)] = static_cast<float>(di);
        dgates.data()[gateAt(1)] = static_cast<float>(df);
        dgates.data()[gateAt(2)] = static_cast<float>(gradC * i * (1 - g * g));
        dgates.data()[gateAt(3)] = static_cast<float>(dout);
        dc.data()[ci] = static_cast<float>(gradC * f + di * peep(0, k, p) + df * peep(1, k, p));
      }
}

}  // namespace segvol
