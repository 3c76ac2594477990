// The CUDA backend class. Convolutions through cuDNN (convolution.cu), every
// other op as a CUDA kernel, one .cu file per op family, each the twin of the
// CPU op of the same name (test/cuda.test.ts compares them).
#pragma once
#include "../core/backend.h"

namespace segvol {

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::Cuda; }

  // profiling.cu
  std::shared_ptr<TimingMark> timingMark() override;
  double elapsedMs(const TimingMark& start, const TimingMark& end) override;
  void rangePush(const char* name) override;
  void rangePop() override;
  void synchronize() override;

  // memory.cu
  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) noexcept override;
  void copyFromHost(const float* src, Tensor& dst) override;
  void copyToHost(const Tensor& src, float* dst) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& t, float value) override;
  bool allFinite(const Tensor& t) override;
  int firstNonFinite(const std::vector<const Tensor*>& ts) override;

  // convolution.cu
  void convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) override;
  void convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) override;
  void addChannelBias(Tensor& y, const Tensor& bias) override;
  void channelSum(const Tensor& dy, Tensor& dbias) override;

  // pooling.cu (pooling, max-filter, upsampling), batch_norm.cu, loss.cu
  void maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) override;
  void avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override;
  void avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) override;
  void upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) override;
  void upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) override;
  void batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, double momentum,
                             Tensor& runningMean, Tensor& runningVar, Tensor& y, Tensor& saveMean, Tensor& saveInvStd) override;
  void batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& runningMean,
                                 const Tensor& runningVar, double eps, Tensor& y) override;
  void batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd, bool batchStatistics,
                         const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta) override;
  double lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                             const Tensor* classWeights, Tensor& grad) override;

  // elementwise.cu
  void unary(UnaryKind kind, const Tensor& x, Tensor& y) override;
  void unaryBackward(UnaryKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) override;
  void scale(const Tensor& x, float factor, Tensor& y) override;
  void sum(const std::vector<const Tensor*>& xs, Tensor& y) override;
  void clamp(const Tensor& x, float lo, float hi, Tensor& y) override;
  void clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) override;
  double sumSquares(const Tensor& x) override;
  void optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad, Tensor& state1,
                       Tensor& state2) override;

  // softmax.cu
  void softmaxForward(const Tensor& x, Tensor& y) override;
  void softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) override;

  // lstm_cell.cu
  void lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias, const Tensor* cPrev,
                       const Tensor* peepholes, Tensor& c, Tensor& h) override;
  void lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh, const Tensor* dhRecurrent,
                        const Tensor* peepholes, Tensor& dc, Tensor& dgates) override;

  // recurrent_cells.cu
  void rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) override;
  void rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) override;
  void gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                      Tensor& h) override;
  void gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                       Tensor& dhCarry, Tensor& dgi, Tensor& dgh) override;

  // layout.cu
  void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) override;
  void flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) override;
  void copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                     int64_t count) override;
};

}  // namespace segvol
