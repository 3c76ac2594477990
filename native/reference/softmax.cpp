// Softmax over the channel axis, in double.
#include <limits>

#include "loops.h"

namespace segvol {
using namespace ref;

void ReferenceBackend::softmaxForward(const Tensor& x, Tensor& y) {
  const NCS d = ncs(x);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = 0; s < d.s; ++s) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < d.c; ++c) mx = std::max(mx, static_cast<double>(x.data()[(n * d.c + c) * d.s + s]));
      double total = 0;
      for (int64_t c = 0; c < d.c; ++c) total += std::exp(x.data()[(n * d.c + c) * d.s + s] - mx);
      for (int64_t c = 0; c < d.c; ++c) {
        int64_t i = (n * d.c + c) * d.s + s;
        y.data()[i] = static_cast<float>(std::exp(x.data()[i] - mx) / total);
      }
    }
}

void ReferenceBackend::softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const NCS d = ncs(y);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = 0; s < d.s; ++s) {
      double dot = 0;
      for (int64_t c = 0; c < d.c; ++c) {
        int64_t i = (n * d.c + c) * d.s + s;
        dot += static_cast<double>(dy.data()[i]) * y.data()[i];
      }
      for (int64_t c = 0; c < d.c; ++c) {
        int64_t i = (n * d.c + c) * d.s + s;
        dx.data()[i] = static_cast<float>(y.data()[i] * (dy.data()[i] - dot));
      }
    }
}

}  // namespace segvol
