// The convolutions' per-channel bias and its gradient.
#include "loops.h"

namespace segvol {
using namespace ref;

void ReferenceBackend::addChannelBias(Tensor& y, const Tensor& bias) {
  const NCS d = ncs(y);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t s = 0; s < d.s; ++s) y.data()[(n * d.c + c) * d.s + s] += bias.data()[c];
}

void ReferenceBackend::channelSum(const Tensor& dy, Tensor& dbias) {
  const NCS d = ncs(dy);
  for (int64_t c = 0; c < d.c; ++c) {
    double acc = 0;
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) acc += dy.data()[(n * d.c + c) * d.s + s];
    dbias.data()[c] = static_cast<float>(acc);
  }
}

}  // namespace segvol
