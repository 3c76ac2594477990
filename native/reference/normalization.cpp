// Batch normalization, per channel, in double.
#include "loops.h"

namespace segvol {
using namespace ref;

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

}  // namespace segvol
