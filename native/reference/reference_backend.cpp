#include "reference_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace segvol {
namespace {

// Index of (n, c, z, y, x) in a contiguous (N, C, D, H, W) tensor.
inline int64_t at(const Dims5& d, int64_t n, int64_t c, int64_t z, int64_t y, int64_t x) {
  return (((n * d[1] + c) * d[2] + z) * d[3] + y) * d[4] + x;
}

// (N, C, S): batch, channels, and everything after the channel axis flattened.
struct NCS {
  int64_t n, c, s;
};
NCS ncs(const Tensor& t) {
  int64_t s = 1;
  for (int i = 2; i < t.rank(); ++i) s *= t.dim(i);
  return {t.dim(0), t.rank() > 1 ? t.dim(1) : 1, s};
}

bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }

// Source position along one axis for upsampling, as PyTorch's interpolate.
struct LinearTap {
  int64_t i0, i1;
  double lambda;  // weight of i1
};
LinearTap linearTap(int64_t dst, int64_t inSize, int64_t outSize, bool alignCorners) {
  double src;
  if (alignCorners) {
    src = outSize > 1 ? dst * static_cast<double>(inSize - 1) / static_cast<double>(outSize - 1) : 0.0;
  } else {
    src = (dst + 0.5) * static_cast<double>(inSize) / static_cast<double>(outSize) - 0.5;
    if (src < 0) src = 0;
  }
  int64_t i0 = static_cast<int64_t>(std::floor(src));
  if (i0 > inSize - 1) i0 = inSize - 1;
  int64_t i1 = i0 + 1 < inSize ? i0 + 1 : inSize - 1;
  return {i0, i1, src - static_cast<double>(i0)};
}
int64_t nearestTap(int64_t dst, int64_t inSize, int64_t outSize) {
  int64_t i = static_cast<int64_t>(std::floor(dst * static_cast<double>(inSize) / static_cast<double>(outSize)));
  return i < inSize - 1 ? i : inSize - 1;
}

// Calls f(zIn, yIn, xIn, weight) for every input tap that output voxel (z, y, x) reads.
template <typename F>
void forEachUpsampleTap(UpsampleMode mode, bool alignCorners, const Dims5& in, const Dims5& out, int64_t z,
                        int64_t y, int64_t x, F&& f) {
  if (mode == UpsampleMode::Nearest) {
    f(nearestTap(z, in[2], out[2]), nearestTap(y, in[3], out[3]), nearestTap(x, in[4], out[4]), 1.0);
    return;
  }
  LinearTap tz = linearTap(z, in[2], out[2], alignCorners);
  LinearTap ty = linearTap(y, in[3], out[3], alignCorners);
  LinearTap tx = linearTap(x, in[4], out[4], alignCorners);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b)
      for (int c = 0; c < 2; ++c) {
        double w = (a ? tz.lambda : 1 - tz.lambda) * (b ? ty.lambda : 1 - ty.lambda) * (c ? tx.lambda : 1 - tx.lambda);
        f(a ? tz.i1 : tz.i0, b ? ty.i1 : ty.i0, c ? tx.i1 : tx.i0, w);
      }
}

}  // namespace

namespace {
// Calls f(xIndex, wIndex, yIndex) for every pair of output voxel and kernel tap
// that reads an input voxel (taps over padding are skipped). Forward, data and
// weight gradients are the same sum seen from its three operands.
template <typename F>
void forEachConvTap(const ConvGeometry& g, const Dims5& xd, const Dims5& wd, const Dims5& yd, F&& f) {
  const int64_t cPerGroup = xd[1] / g.groups, oPerGroup = yd[1] / g.groups;
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t o = 0; o < yd[1]; ++o) {
      const int64_t group = o / oPerGroup;
      for (int64_t oz = 0; oz < yd[2]; ++oz)
        for (int64_t oy = 0; oy < yd[3]; ++oy)
          for (int64_t ox = 0; ox < yd[4]; ++ox)
            for (int64_t ci = 0; ci < cPerGroup; ++ci)
              for (int64_t kz = 0; kz < wd[2]; ++kz)
                for (int64_t ky = 0; ky < wd[3]; ++ky)
                  for (int64_t kx = 0; kx < wd[4]; ++kx) {
                    const int64_t iz = oz * g.stride[0] - g.padding[0] + kz * g.dilation[0];
                    const int64_t iy = oy * g.stride[1] - g.padding[1] + ky * g.dilation[1];
                    const int64_t ix = ox * g.stride[2] - g.padding[2] + kx * g.dilation[2];
                    if (!inside(iz, xd[2]) || !inside(iy, xd[3]) || !inside(ix, xd[4])) continue;
                    f(at(xd, n, group * cPerGroup + ci, iz, iy, ix), at(wd, o, ci, kz, ky, kx),
                      at(yd, n, o, oz, oy, ox));
                  }
    }
}

void storeRounded(const std::vector<double>& acc, Tensor& out) {
  for (int64_t i = 0; i < out.size(); ++i) out.data()[i] = static_cast<float>(acc[i]);
}
}  // namespace

void ReferenceBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias,
                                   Tensor& y) {
  std::vector<double> acc(y.size(), 0.0);
  forEachConvTap(g, dims5(x), dims5(w), dims5(y), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[yi] += static_cast<double>(x.data()[xi]) * w.data()[wi];
  });
  storeRounded(acc, y);
  if (bias) addChannelBias(y, *bias);
}

void ReferenceBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  std::vector<double> acc(dx.size(), 0.0);
  forEachConvTap(g, dims5(dx), dims5(w), dims5(dy), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[xi] += static_cast<double>(dy.data()[yi]) * w.data()[wi];
  });
  storeRounded(acc, dx);
}

void ReferenceBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                                           Tensor* dbias) {
  std::vector<double> acc(dw.size(), 0.0);
  forEachConvTap(g, dims5(x), dims5(dw), dims5(dy), [&](int64_t xi, int64_t wi, int64_t yi) {
    acc[wi] += static_cast<double>(dy.data()[yi]) * x.data()[xi];
  });
  storeRounded(acc, dw);
  if (dbias) channelSum(dy, *dbias);
}

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

namespace {
// Calls f(index into x) for every in-bounds input voxel of output voxel (oz, oy, ox)'s window,
// in scan order (z, then y, then x); returns the number of window taps including padding.
template <typename F>
void forEachWindowTap(const PoolGeometry& g, const Dims5& xd, int64_t n, int64_t c, int64_t oz, int64_t oy,
                      int64_t ox, F&& f) {
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz)
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        int64_t iz = oz * g.stride[0] - g.padding[0] + kz * g.dilation[0];
        int64_t iy = oy * g.stride[1] - g.padding[1] + ky * g.dilation[1];
        int64_t ix = ox * g.stride[2] - g.padding[2] + kx * g.dilation[2];
        if (inside(iz, xd[2]) && inside(iy, xd[3]) && inside(ix, xd[4])) f(at(xd, n, c, iz, iy, ix));
      }
}

// Average-pooling divisor of one window: PyTorch counts padding (but not the
// part of a window past the padded border) when countIncludePad is set.
int64_t avgDivisor(const PoolGeometry& g, const Dims5& xd, int64_t oz, int64_t oy, int64_t ox) {
  int64_t count = 1;
  const int64_t o[3] = {oz, oy, ox};
  for (int a = 0; a < 3; ++a) {
    int64_t start = o[a] * g.stride[a] - g.padding[a];
    int64_t end = start + (g.kernel[a] - 1) * g.dilation[a] + 1;
    int64_t lo = g.countIncludePad ? -g.padding[a] : 0;
    int64_t hi = g.countIncludePad ? xd[2 + a] + g.padding[a] : xd[2 + a];
    int64_t taps = 0;
    for (int64_t k = 0; k < g.kernel[a]; ++k) {
      int64_t i = start + k * g.dilation[a];
      if (i >= lo && i < hi) ++taps;
    }
    (void)end;
    count *= taps;
  }
  return count;
}
}  // namespace

void ReferenceBackend::maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t oz = 0; oz < yd[2]; ++oz)
        for (int64_t oy = 0; oy < yd[3]; ++oy)
          for (int64_t ox = 0; ox < yd[4]; ++ox) {
            float best = -std::numeric_limits<float>::infinity();
            bool seenNaN = false;
            forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) {
              float v = x.data()[i];
              if (seenNaN) return;
              if (std::isnan(v)) {
                seenNaN = true;
                best = v;
              } else if (v > best) {
                best = v;
              }
            });
            y.data()[at(yd, n, c, oz, oy, ox)] = best;
          }
}

void ReferenceBackend::maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(x), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t oz = 0; oz < yd[2]; ++oz)
        for (int64_t oy = 0; oy < yd[3]; ++oy)
          for (int64_t ox = 0; ox < yd[4]; ++ox) {
            int64_t arg = -1;
            float best = -std::numeric_limits<float>::infinity();
            forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) {
              float v = x.data()[i];
              if (arg >= 0 && std::isnan(best)) return;
              if (arg < 0 || v > best || std::isnan(v)) {
                best = v;
                arg = i;
              }
            });
            if (arg >= 0) acc[arg] += dy.data()[at(yd, n, c, oz, oy, ox)];
          }
  storeRounded(acc, dx);
}

void ReferenceBackend::avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t oz = 0; oz < yd[2]; ++oz)
        for (int64_t oy = 0; oy < yd[3]; ++oy)
          for (int64_t ox = 0; ox < yd[4]; ++ox) {
            double acc = 0;
            forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) { acc += x.data()[i]; });
            int64_t divisor = avgDivisor(g, xd, oz, oy, ox);
            y.data()[at(yd, n, c, oz, oy, ox)] = divisor ? static_cast<float>(acc / divisor) : 0.0f;
          }
}

void ReferenceBackend::avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(dx), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t oz = 0; oz < yd[2]; ++oz)
        for (int64_t oy = 0; oy < yd[3]; ++oy)
          for (int64_t ox = 0; ox < yd[4]; ++ox) {
            int64_t divisor = avgDivisor(g, xd, oz, oy, ox);
            if (!divisor) continue;
            double share = dy.data()[at(yd, n, c, oz, oy, ox)] / static_cast<double>(divisor);
            forEachWindowTap(g, xd, n, c, oz, oy, ox, [&](int64_t i) { acc[i] += share; });
          }
  storeRounded(acc, dx);
}

void ReferenceBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  const Dims5 xd = dims5(x), yd = dims5(y);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t z = 0; z < yd[2]; ++z)
        for (int64_t yy = 0; yy < yd[3]; ++yy)
          for (int64_t xx = 0; xx < yd[4]; ++xx) {
            double acc = 0;
            forEachUpsampleTap(mode, alignCorners, xd, yd, z, yy, xx, [&](int64_t iz, int64_t iy, int64_t ix, double w) {
              acc += w * x.data()[at(xd, n, c, iz, iy, ix)];
            });
            y.data()[at(yd, n, c, z, yy, xx)] = static_cast<float>(acc);
          }
}

void ReferenceBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  const Dims5 xd = dims5(dx), yd = dims5(dy);
  std::vector<double> acc(dx.size(), 0.0);
  for (int64_t n = 0; n < yd[0]; ++n)
    for (int64_t c = 0; c < yd[1]; ++c)
      for (int64_t z = 0; z < yd[2]; ++z)
        for (int64_t yy = 0; yy < yd[3]; ++yy)
          for (int64_t xx = 0; xx < yd[4]; ++xx) {
            const double grad = dy.data()[at(yd, n, c, z, yy, xx)];
            forEachUpsampleTap(mode, alignCorners, xd, yd, z, yy, xx, [&](int64_t iz, int64_t iy, int64_t ix, double w) {
              acc[at(xd, n, c, iz, iy, ix)] += w * grad;
            });
          }
  storeRounded(acc, dx);
}

void ReferenceBackend::batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                                             double momentum, Tensor& runningMean, Tensor& runningVar, Tensor& y,
                                             Tensor& saveMean, Tensor& saveInvStd) {
  const NCS d = ncs(x);
  const double count = static_cast<double>(d.n * d.s);
  for (int64_t c = 0; c < d.c; ++c) {
    double mean = 0;
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) mean += x.data()[(n * d.c + c) * d.s + s];
    mean /= count;
    double var = 0;
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) {
        double diff = x.data()[(n * d.c + c) * d.s + s] - mean;
        var += diff * diff;
      }
    const double biasedVar = var / count;
    const double unbiasedVar = count > 1 ? var / (count - 1) : biasedVar;
    const double invStd = 1.0 / std::sqrt(biasedVar + eps);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) {
        int64_t i = (n * d.c + c) * d.s + s;
        y.data()[i] = static_cast<float>((x.data()[i] - mean) * invStd * gamma.data()[c] + beta.data()[c]);
      }
    saveMean.data()[c] = static_cast<float>(mean);
    saveInvStd.data()[c] = static_cast<float>(invStd);
    runningMean.data()[c] = static_cast<float>((1 - momentum) * runningMean.data()[c] + momentum * mean);
    runningVar.data()[c] = static_cast<float>((1 - momentum) * runningVar.data()[c] + momentum * unbiasedVar);
  }
}

void ReferenceBackend::batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                 const Tensor& runningMean, const Tensor& runningVar, double eps,
                                                 Tensor& y) {
  const NCS d = ncs(x);
  for (int64_t c = 0; c < d.c; ++c) {
    const double invStd = 1.0 / std::sqrt(static_cast<double>(runningVar.data()[c]) + eps);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) {
        int64_t i = (n * d.c + c) * d.s + s;
        y.data()[i] =
            static_cast<float>((x.data()[i] - runningMean.data()[c]) * invStd * gamma.data()[c] + beta.data()[c]);
      }
  }
}

void ReferenceBackend::batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                         const Tensor& invStd, bool batchStatistics, const Tensor& dy, Tensor& dx,
                                         Tensor& dgamma, Tensor& dbeta) {
  const NCS d = ncs(x);
  const double count = static_cast<double>(d.n * d.s);
  for (int64_t c = 0; c < d.c; ++c) {
    const double mu = mean.data()[c], is = invStd.data()[c], gm = gamma.data()[c];
    double sumDy = 0, sumDyXhat = 0;
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) {
        int64_t i = (n * d.c + c) * d.s + s;
        sumDy += dy.data()[i];
        sumDyXhat += dy.data()[i] * (x.data()[i] - mu) * is;
      }
    dgamma.data()[c] = static_cast<float>(sumDyXhat);
    dbeta.data()[c] = static_cast<float>(sumDy);
    for (int64_t n = 0; n < d.n; ++n)
      for (int64_t s = 0; s < d.s; ++s) {
        int64_t i = (n * d.c + c) * d.s + s;
        double g = dy.data()[i];
        if (batchStatistics) {
          double xhat = (x.data()[i] - mu) * is;
          g = g - sumDy / count - xhat * sumDyXhat / count;
        }
        dx.data()[i] = static_cast<float>(g * gm * is);
      }
  }
}

void ReferenceBackend::activation(ActivationKind kind, const Tensor& x, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) {
    double v = x.data()[i];
    switch (kind) {
      case ActivationKind::Tanh: v = std::tanh(v); break;
      case ActivationKind::Sigmoid: v = 1.0 / (1.0 + std::exp(-v)); break;
      case ActivationKind::Relu: v = v > 0 ? v : 0.0; break;
    }
    y.data()[i] = static_cast<float>(v);
  }
}

void ReferenceBackend::activationBackward(ActivationKind kind, const Tensor& x, const Tensor&, const Tensor& dy, Tensor& dx) {
  // The oracle derives f'(x) from x itself, independently of the optimized path's use of y.
  for (int64_t i = 0; i < x.size(); ++i) {
    double v = x.data()[i], grad = dy.data()[i];
    switch (kind) {
      case ActivationKind::Tanh: grad *= 1.0 - std::tanh(v) * std::tanh(v); break;
      case ActivationKind::Sigmoid: {
        double s = 1.0 / (1.0 + std::exp(-v));
        grad *= s * (1.0 - s);
        break;
      }
      case ActivationKind::Relu: grad = v > 0 ? grad : 0.0; break;
    }
    dx.data()[i] = static_cast<float>(grad);
  }
}

void ReferenceBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) {
  for (int64_t i = 0; i < a.size(); ++i) {
    double u = a.data()[i], v = b.data()[i];
    y.data()[i] = static_cast<float>(kind == BinaryKind::Add ? u + v : u * v);
  }
}

void ReferenceBackend::scale(const Tensor& x, float factor, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) y.data()[i] = static_cast<float>(static_cast<double>(x.data()[i]) * factor);
}

void ReferenceBackend::sum(const std::vector<const Tensor*>& xs, Tensor& y) {
  for (int64_t i = 0; i < y.size(); ++i) {
    double acc = 0;
    for (const Tensor* t : xs) acc += t->data()[i];
    y.data()[i] = static_cast<float>(acc);
  }
}

void ReferenceBackend::clamp(const Tensor& x, float lo, float hi, Tensor& y) {
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    y.data()[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

void ReferenceBackend::clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) {
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    dx.data()[i] = v >= lo && v <= hi ? dy.data()[i] : 0.0f;
  }
}

double ReferenceBackend::sumOfSquares(const Tensor& x) {
  double acc = 0;
  for (int64_t i = 0; i < x.size(); ++i) acc += static_cast<double>(x.data()[i]) * x.data()[i];
  return acc;
}

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

void ReferenceBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  const std::vector<int64_t> xs = contiguousStrides(x.shape());
  const int r = x.rank();
  std::vector<int64_t> index(r, 0);  // index into y
  for (int64_t flat = 0; flat < y.size(); ++flat) {
    int64_t rest = flat, src = 0;
    for (int a = r - 1; a >= 0; --a) {
      index[a] = rest % y.dim(a);
      rest /= y.dim(a);
    }
    for (int a = 0; a < r; ++a) src += index[a] * xs[perm[a]];
    y.data()[flat] = x.data()[src];
  }
}

void ReferenceBackend::flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) {
  const std::vector<int64_t> strides = contiguousStrides(x.shape());
  const int r = x.rank();
  std::vector<bool> flipped(r, false);
  for (int a : axes) flipped[a] = true;
  for (int64_t flat = 0; flat < y.size(); ++flat) {
    int64_t rest = flat, src = 0;
    for (int a = r - 1; a >= 0; --a) {
      int64_t i = rest % x.dim(a);
      rest /= x.dim(a);
      src += (flipped[a] ? x.dim(a) - 1 - i : i) * strides[a];
    }
    y.data()[flat] = x.data()[src];
  }
}

void ReferenceBackend::copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                                     int64_t count) {
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; ++a) outer *= src.dim(a);
  for (int a = axis + 1; a < src.rank(); ++a) inner *= src.dim(a);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t l = 0; l < count; ++l)
      for (int64_t i = 0; i < inner; ++i) {
        dst.data()[(o * dst.dim(axis) + dstStart + l) * inner + i] = src.data()[(o * src.dim(axis) + srcStart + l) * inner + i];
      }
}

}  // namespace segvol

namespace segvol {
namespace {
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }
}  // namespace

// Recurrent cells, written from their definitions (core/backend.h) in double.
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

namespace segvol {

// Losses, written from their definitions (ops/training.h) with double sums.
double ReferenceBackend::lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels,
                                             const Tensor* mask, const Tensor* classWeights, Tensor& grad) {
  const int64_t n = probs.dim(0), c = probs.dim(1), s = probs.size() / (n * c);
  auto p = [&](int64_t b, int64_t k, int64_t v) { return static_cast<double>(probs.data()[(b * c + k) * s + v]); };
  auto label = [&](int64_t b, int64_t v) { return static_cast<int64_t>(labels.data()[b * s + v]); };
  auto used = [&](int64_t b, int64_t v) { return !mask || mask->data()[b * s + v] != 0.0f; };
  auto weight = [&](int64_t k) { return classWeights ? static_cast<double>(classWeights->data()[k]) : 1.0; };
  for (int64_t i = 0; i < grad.size(); ++i) grad.data()[i] = 0.0f;
  if (kind == LossKind::SquaredError || kind == LossKind::CrossEntropy) {
    double total = 0, norm = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (used(b, v)) norm += weight(label(b, v));
      }
    if (norm <= 0) return 0.0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (!used(b, v)) continue;
        const int64_t y = label(b, v);
        const double w = weight(y);
        for (int64_t k = 0; k < c; ++k) {
          const double target = k == y ? 1.0 : 0.0;
          double g = 0;
          if (kind == LossKind::SquaredError) {
            total += w * (p(b, k, v) - target) * (p(b, k, v) - target);
            g = 2 * w * (p(b, k, v) - target) / norm;
          } else if (k == y) {
            const double q = std::max(p(b, k, v), 1e-7);
            total += -w * std::log(q);
            g = p(b, k, v) > 1e-7 ? -w / (q * norm) : 0.0;
          }
          grad.data()[(b * c + k) * s + v] = static_cast<float>(g);
        }
      }
    return total / norm;
  }
  // Soft Dice / soft IoU per class over all used voxels, weighted mean over classes.
  double loss = 0, weightSum = 0;
  for (int64_t k = 0; k < c; ++k) {
    double inter = 0, sumP = 0, sumT = 0;
    for (int64_t b = 0; b < n; ++b)
      for (int64_t v = 0; v < s; ++v) {
        if (!used(b, v)) continue;
        const double t = label(b, v) == k ? 1.0 : 0.0;
        inter += p(b, k, v) * t;
        sumP += p(b, k, v);
        sumT += t;
      }
    const double w = weight(k), eps = 1e-6;
    weightSum += w;
    if (kind == LossKind::SoftDice) {
      const double den = sumP + sumT + eps;
      loss += w * (2 * inter + eps) / den;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t v = 0; v < s; ++v) {
          if (!used(b, v)) continue;
          const double t = label(b, v) == k ? 1.0 : 0.0;
          grad.data()[(b * c + k) * s + v] = static_cast<float>(w * (2 * t * den - (2 * inter + eps)) / (den * den));
        }
    } else {
      const double uni = sumP + sumT - inter + eps;
      loss += w * (inter + eps) / uni;
      for (int64_t b = 0; b < n; ++b)
        for (int64_t v = 0; v < s; ++v) {
          if (!used(b, v)) continue;
          const double t = label(b, v) == k ? 1.0 : 0.0;
          grad.data()[(b * c + k) * s + v] = static_cast<float>(w * (t * uni - (inter + eps) * (1 - t)) / (uni * uni));
        }
    }
  }
  // L = 1 - score / weightSum, so the gradient is -dscore / weightSum.
  for (int64_t i = 0; i < grad.size(); ++i) grad.data()[i] = static_cast<float>(-grad.data()[i] / weightSum);
  return 1.0 - loss / weightSum;
}

void ReferenceBackend::optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad,
                                       Tensor& state1, Tensor& state2) {
  for (int64_t i = 0; i < param.size(); ++i) {
    const double g = static_cast<double>(grad.data()[i]) + h.weightDecay * param.data()[i];
    double theta = param.data()[i], a = state1.data()[i], b = state2.data()[i];
    switch (kind) {
      case OptimizerKind::RmspropMomentum: {
        a = h.rho * a + (1 - h.rho) * g * g;           // eq. 15
        const double normalised = g / (std::sqrt(a) + h.eps);  // eq. 16
        b = h.rhoM * b + (1 - h.rhoM) * normalised;   // eq. 17
        theta -= h.lr * b;                            // eq. 18
        break;
      }
      case OptimizerKind::SgdMomentum:
        a = h.momentum * a + g;
        theta -= h.lr * a;
        break;
      case OptimizerKind::Adam: {
        a = h.beta1 * a + (1 - h.beta1) * g;
        b = h.beta2 * b + (1 - h.beta2) * g * g;
        const double mHat = a / (1 - std::pow(h.beta1, static_cast<double>(h.step)));
        const double vHat = b / (1 - std::pow(h.beta2, static_cast<double>(h.step)));
        theta -= h.lr * mHat / (std::sqrt(vHat) + h.eps);
        break;
      }
    }
    param.data()[i] = static_cast<float>(theta);
    state1.data()[i] = static_cast<float>(a);
    state2.data()[i] = static_cast<float>(b);
  }
}

}  // namespace segvol

namespace segvol {

Backend& referenceBackend() {
  static ReferenceBackend backend;
  return backend;
}

}  // namespace segvol
