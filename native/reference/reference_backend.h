// The reference backend: the readable oracle the tests compare every optimized
// and CUDA op against. Plain nested loops over (N, C, D, H, W), double
// accumulation, no threads, no tricks; speed does not matter here.
#pragma once
#include "../cpu/host_backend.h"

namespace segvol {

class ReferenceBackend final : public HostBackend {
 public:
  std::string name() const override { return "reference"; }

  void convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) override;
  void convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                           Tensor* dbias) override;
  void addChannelBias(Tensor& y, const Tensor& bias) override;
  void channelSum(const Tensor& dy, Tensor& dbias) override;

  void maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) override;
  void avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) override;

  void upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) override;
  void upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) override;

  void batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, double momentum,
                             Tensor& runningMean, Tensor& runningVar, Tensor& y, Tensor& saveMean,
                             Tensor& saveInvStd) override;
  void batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 const Tensor& runningMean, const Tensor& runningVar, double eps,
                                 Tensor& y) override;
  void batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd,
                         bool batchStatistics, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                         Tensor& dbeta) override;

  void unary(UnaryKind kind, const Tensor& x, Tensor& y) override;
  void unaryBackward(UnaryKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) override;
  void scale(const Tensor& x, float factor, Tensor& y) override;
  void sum(const std::vector<const Tensor*>& xs, Tensor& y) override;
  void clamp(const Tensor& x, float lo, float hi, Tensor& y) override;
  void clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) override;
  double sumSquares(const Tensor& x) override;

  void softmaxForward(const Tensor& x, Tensor& y) override;
  void softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) override;

  void lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias, const Tensor* cPrev,
                       const Tensor* peepholes, Tensor& c, Tensor& h) override;
  void lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                        const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) override;
  void rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) override;
  void rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) override;
  void gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                      Tensor& h) override;
  void gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                       Tensor& dhCarry, Tensor& dgi, Tensor& dgh) override;

  double lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                             const Tensor* classWeights, Tensor& grad) override;
  void optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad, Tensor& state1,
                       Tensor& state2) override;

  void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) override;
  void flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) override;
  void copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                     int64_t count) override;
};

// The process's reference backend.
Backend& referenceBackend();

}  // namespace segvol
