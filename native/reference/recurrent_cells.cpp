// The Elman RNN and GRU steps, written from their definitions
// (core/backend_ops.inc) in double.
#include "loops.h"

namespace segvol {
using namespace ref;

void ReferenceBackend::rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o);
  for (int64_t i = 0; i < h.size(); ++i) {
    const int64_t k = (i / s) % o;
    double v = pre.data()[i];
    if (recurrent) v += recurrent->data()[i];
    if (bias) v += bias->data()[k];
    h.data()[i] = static_cast<float>(relu ? std::max(v, 0.0) : std::tanh(v));
  }
}

void ReferenceBackend::rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) {
  for (int64_t i = 0; i < h.size(); ++i) {
    const double grad = static_cast<double>(dh.data()[i]) + (dhRecurrent ? dhRecurrent->data()[i] : 0.0);
    const double y = h.data()[i];
    dpre.data()[i] = static_cast<float>(relu ? (y > 0 ? grad : 0.0) : grad * (1 - y * y));
  }
}

void ReferenceBackend::gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev,
                                      Tensor& act, Tensor& h) {
  const int64_t n = h.dim(0), o = h.dim(1), s = h.size() / (n * o);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k)
      for (int64_t p = 0; p < s; ++p) {
        auto at = [&](int gate) { return (b * 3 * o + gate * o + k) * s + p; };
        auto rec = [&](int gate) {
          return (gh ? static_cast<double>(gh->data()[at(gate)]) : 0.0) + (bias ? bias->data()[gate * o + k] : 0.0);
        };
        const double r = sigmoid(gi.data()[at(0)] + rec(0));
        const double z = sigmoid(gi.data()[at(1)] + rec(1));
        const double hn = rec(2);
        const double nn = std::tanh(gi.data()[at(2)] + r * hn);
        const int64_t hi = (b * o + k) * s + p;
        const double prev = hPrev ? hPrev->data()[hi] : 0.0;
        const double a[4] = {r, z, nn, hn};
        for (int q = 0; q < 4; ++q) act.data()[(b * 4 * o + q * o + k) * s + p] = static_cast<float>(a[q]);
        h.data()[hi] = static_cast<float>((1 - z) * nn + z * prev);
      }
}

void ReferenceBackend::gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                                       Tensor& dhCarry, Tensor& dgi, Tensor& dgh) {
  const int64_t n = dh.dim(0), o = dh.dim(1), s = dh.size() / (n * o);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < o; ++k)
      for (int64_t p = 0; p < s; ++p) {
        auto a = [&](int q) { return static_cast<double>(act.data()[(b * 4 * o + q * o + k) * s + p]); };
        const double r = a(0), z = a(1), nn = a(2), hn = a(3);
        const int64_t hi = (b * o + k) * s + p;
        const double prev = hPrev ? hPrev->data()[hi] : 0.0;
        const double grad = static_cast<double>(dh.data()[hi]) + (dhRecurrent ? dhRecurrent->data()[hi] : 0.0) +
                            dhCarry.data()[hi];
        const double dn = grad * (1 - z) * (1 - nn * nn);
        const double dz = grad * (prev - nn) * z * (1 - z);
        const double dr = dn * hn * r * (1 - r);
        auto at = [&](int gate) { return (b * 3 * o + gate * o + k) * s + p; };
        dgi.data()[at(0)] = static_cast<float>(dr);
        dgi.data()[at(1)] = static_cast<float>(dz);
        dgi.data()[at(2)] = static_cast<float>(dn);
        dgh.data()[at(0)] = static_cast<float>(dr);
        dgh.data()[at(1)] = static_cast<float>(dz);
        dgh.data()[at(2)] = static_cast<float>(dn * r);
        dhCarry.data()[hi] = static_cast<float>(grad * z);
      }
}

}  // namespace segvol
