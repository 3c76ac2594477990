// The optimized CPU backend: convolutions through oneDNN primitives (cached by
// shape), every other op as OpenMP-parallel C++. One .cpp per op family.
#pragma once
#include <cstdint>

#include "host_backend.h"

namespace segvol {

struct PrimitiveCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t entries = 0;
};

class CpuBackend final : public HostBackend {
 public:
  std::string name() const override { return "cpu"; }

  // convolution.cpp
  void convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) override;
  void convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                           Tensor* dbias) override;
  void addChannelBias(Tensor& y, const Tensor& bias) override;
  void channelSum(const Tensor& dy, Tensor& dbias) override;
  static PrimitiveCacheStats primitiveCacheStats();
  static std::string onednnVersion();

  // pooling.cpp
  void maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) override;
  void avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) override;

  // upsample.cpp
  void upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) override;
  void upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) override;

  // batch_norm.cpp
  void batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, double momentum,
                             Tensor& runningMean, Tensor& runningVar, Tensor& y, Tensor& saveMean,
                             Tensor& saveInvStd) override;
  void batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                 const Tensor& runningMean, const Tensor& runningVar, double eps,
                                 Tensor& y) override;
  void batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd,
                         bool batchStatistics, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                         Tensor& dbeta) override;

  // elementwise.cpp
  void unary(UnaryKind kind, const Tensor& x, Tensor& y) override;
  void unaryBackward(UnaryKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) override;
  void scale(const Tensor& x, float factor, Tensor& y) override;
  void sum(const std::vector<const Tensor*>& xs, Tensor& y) override;
  void clamp(const Tensor& x, float lo, float hi, Tensor& y) override;
  void clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) override;
  double sumSquares(const Tensor& x) override;

  // softmax.cpp
  void softmaxForward(const Tensor& x, Tensor& y) override;
  void softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) override;

  // lstm_cell.cpp
  void lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias, const Tensor* cPrev,
                       const Tensor* peepholes, Tensor& c, Tensor& h) override;
  void lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                        const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) override;

  // recurrent_cells.cpp
  void rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) override;
  void rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) override;
  void gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                      Tensor& h) override;
  void gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                       Tensor& dhCarry, Tensor& dgi, Tensor& dgh) override;

  // training.cpp
  double lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                             const Tensor* classWeights, Tensor& grad) override;
  void optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad, Tensor& state1,
                       Tensor& state2) override;

  // layout.cpp
  void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) override;
  void flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) override;
  void copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                     int64_t count) override;
};

// Elementwise loops below this many elements stay on one thread: forking costs more.
constexpr int64_t kParallelThreshold = 1 << 15;

// The process's one CPU backend (its oneDNN primitive cache is shared by all callers).
Backend& cpuBackend();

}  // namespace segvol
