// The backend interface: memory, copies and the op primitives every backend
// implements (CPU/oneDNN always, CUDA/cuDNN when compiled, and the plain
// reference used by tests as the oracle). Callers (native/ops) validate shapes
// and allocate outputs; a backend only computes, writing into given outputs.
//
// Spatial geometry is always given for three axes (D, H, W); a 2D op has
// spatialRank 2 and D entries of kernel 1, stride 1, padding 0, dilation 1, so
// backends can treat (N, C, H, W) as (N, C, 1, H, W).
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace segvol {

using Triple = std::array<int64_t, 3>;  // (D, H, W)

struct ConvGeometry {
  int spatialRank = 2;
  Triple stride{1, 1, 1};
  Triple padding{0, 0, 0};
  Triple dilation{1, 1, 1};
  int64_t groups = 1;
};

struct PoolGeometry {
  int spatialRank = 2;
  Triple kernel{1, 1, 1};
  Triple stride{1, 1, 1};
  Triple padding{0, 0, 0};
  Triple dilation{1, 1, 1};
  bool countIncludePad = true;  // average pooling only, as PyTorch's default
};

enum class UnaryKind { Tanh, Sigmoid, Relu };
enum class BinaryKind { Add, Mul };
enum class UpsampleMode { Nearest, Linear };
enum class LossKind { SquaredError, CrossEntropy, SoftDice, SoftIoU };
enum class OptimizerKind { RmspropMomentum, SgdMomentum, Adam };

struct OptimizerHyper {
  double lr = 1e-2;
  double rho = 0.9;       // RMSprop: running average of squared gradients (rho_MSE)
  double rhoM = 0.9;      // RMSprop: smoothing of the normalised gradient (rho_M)
  double momentum = 0.9;  // SGD
  double beta1 = 0.9, beta2 = 0.999;  // Adam
  double eps = 1e-5;
  double weightDecay = 0;  // L2, added to the gradient
  int64_t step = 1;        // Adam's bias correction: the 1-based update count
};

// A point in a backend's queue of work, for timing ops that run asynchronously.
class TimingMark {
 public:
  virtual ~TimingMark() = default;
};

class Backend;

// Pushes a named range on construction and pops it on destruction (no-op on the CPU).
class ScopedRange {
 public:
  ScopedRange(Backend& backend, const char* name);
  ~ScopedRange();
  ScopedRange(const ScopedRange&) = delete;
  ScopedRange& operator=(const ScopedRange&) = delete;

 private:
  Backend& backend_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // Profiling. A backend whose ops run asynchronously (CUDA) records marks in its
  // queue and measures between them (waiting for both); nullptr means the host
  // clock around a call measures it exactly (CPU).
  virtual std::shared_ptr<TimingMark> timingMark() { return nullptr; }
  virtual double elapsedMs(const TimingMark& start, const TimingMark& end) { return 0; }
  // Named ranges for external profilers (NVTX on CUDA, so Nsight shows segvol's ops).
  virtual void rangePush(const char* name) {}
  virtual void rangePop() {}
  // Waits until every op queued so far has finished (no-op where ops are synchronous).
  virtual void synchronize() {}

  // Memory. deallocate never throws: it runs from destructors and GC finalizers.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) noexcept = 0;
  virtual void copyFromHost(const float* src, Tensor& dst) = 0;  // src: dst.size() floats
  virtual void copyToHost(const Tensor& src, float* dst) = 0;    // dst: src.size() floats
  virtual void copy(const Tensor& src, Tensor& dst) = 0;         // same device, same size
  virtual void fill(Tensor& t, float value) = 0;
  virtual bool allFinite(const Tensor& t) = 0;
  // Index of the first tensor holding a NaN or Inf, or -1. One answer for many
  // tensors: a GPU backend reads back once instead of once per tensor.
  virtual int firstNonFinite(const std::vector<const Tensor*>& ts) {
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!allFinite(*ts[i])) return static_cast<int>(i);
    }
    return -1;
  }

  // Convolution (cross-correlation), as PyTorch's convNd.
  // x: (N, C, [D,] H, W), w: (O, C/groups, [kD,] kH, kW), bias: (O) or null, y: (N, O, [oD,] oH, oW)
  virtual void convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // dy: (N, O, ...out), w: as above, dx: (N, C, ...in) overwritten
  virtual void convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) = 0;
  // x: (N, C, ...in), dy: (N, O, ...out), dw: like w, overwritten; dbias: (O) or null, overwritten
  virtual void convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                                   Tensor* dbias) = 0;
  // y: (N, C, ...) += bias[c]; bias: (C)
  virtual void addChannelBias(Tensor& y, const Tensor& bias) = 0;
  // dy: (N, C, ...) -> dbias: (C), the sum over batch and space (overwritten)
  virtual void channelSum(const Tensor& dy, Tensor& dbias) = 0;

  // Pooling. Max pooling with stride 1 and a dilated window is the max-filter of
  // dense-output ConvNets. Padding never wins a max (it acts as -inf); NaN wins.
  // x: (N, C, ...in), y: (N, C, ...out)
  virtual void maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) = 0;
  // x: (N, C, ...in), dy: (N, C, ...out), dx: (N, C, ...in) overwritten; the
  // gradient goes to the first maximum of each window in scan order.
  virtual void maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) = 0;
  virtual void avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) = 0;
  // dy: (N, C, ...out), dx: (N, C, ...in) overwritten
  virtual void avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) = 0;

  // Upsampling to y's spatial size (nearest, or bi/trilinear), as PyTorch's interpolate.
  // x: (N, C, ...in), y: (N, C, ...out)
  virtual void upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) = 0;
  // dy: (N, C, ...out), dx: (N, C, ...in) overwritten
  virtual void upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) = 0;

  // Batch normalization over (N, ...spatial) per channel.
  // x, y: (N, C, ...); gamma, beta: (C); saveMean, saveInvStd: (C) written;
  // runningMean, runningVar: (C) updated in place with the unbiased variance.
  virtual void batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                                     double momentum, Tensor& runningMean, Tensor& runningVar, Tensor& y,
                                     Tensor& saveMean, Tensor& saveInvStd) = 0;
  // x, y: (N, C, ...); every other tensor (C)
  virtual void batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& runningMean, const Tensor& runningVar, double eps,
                                         Tensor& y) = 0;
  // mean, invStd: (C), the statistics the forward pass normalised with.
  // batchStatistics: the forward pass used the batch's own statistics (training),
  // so the gradient flows through mean and variance too.
  // x, dy, dx: (N, C, ...); gamma, mean, invStd, dgamma, dbeta: (C)
  virtual void batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd,
                                 bool batchStatistics, const Tensor& dy, Tensor& dx, Tensor& dgamma,
                                 Tensor& dbeta) = 0;

  // Elementwise, all tensors the same size.
  virtual void unary(UnaryKind kind, const Tensor& x, Tensor& y) = 0;
  // dx = dy * f'(x), with f' taken from y where that is cheaper (tanh, sigmoid)
  virtual void unaryBackward(UnaryKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) = 0;
  virtual void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) = 0;
  virtual void scale(const Tensor& x, float factor, Tensor& y) = 0;
  virtual void sum(const std::vector<const Tensor*>& xs, Tensor& y) = 0;
  // y = min(max(x, lo), hi). x, y: same size
  virtual void clamp(const Tensor& x, float lo, float hi, Tensor& y) = 0;
  // dx = dy where lo <= x <= hi, else 0 (PyTorch's clamp gradient). x, dy, dx: same size
  virtual void clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) = 0;
  // The sum of x's squared elements in double, the same for a given thread count
  // (gradient-norm clipping). x: any shape
  virtual double sumSquares(const Tensor& x) = 0;

  // Softmax over the channel axis (axis 1). x, y, dy, dx: (N, C, ...)
  virtual void softmaxForward(const Tensor& x, Tensor& y) = 0;
  virtual void softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) = 0;

  // One step of an LSTM cell over a plane, fused: gate sums, nonlinearities,
  // cell and output (gate order i, f, g, o).
  // gates: (N, 4*O, S) in: the input-to-state pre-activation, its bias included;
  //        out: the activations sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
  // recurrent: (N, 4*O, S) the state-to-state convolution, or null when this
  //        plane has no previous one; recurrentBias: (G*4*O) or null (zero).
  //        G > 1 when G directions run as one grouped scan: the batch is then
  //        N*G (sample-major), and batch row b takes the bias of group b % G.
  // cPrev: (N, O, S) or null (no previous cell: c = g * i)
  // peepholes: (3, O, S) or null: Shi et al.'s Hadamard weights w_ci, w_cf, w_co
  //        (i and f see cPrev, o sees the new c); only with G = 1
  // c, h: (N, O, S) out: c = g * i + cPrev * f, h = o * tanh(c)
  virtual void lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias,
                               const Tensor* cPrev, const Tensor* peepholes, Tensor& c, Tensor& h) = 0;
  // The same step backwards.
  // gates: (N, 4*O, S) activations; cPrev: (N, O, S) or null; c: (N, O, S)
  // dh: (N, O, S) gradient of h from outside the scan; dhRecurrent: (N, O, S)
  //     gradient of h through the next step's recurrent convolution, or null
  // peepholes: (3, O, S) or null, as in forward
  // dc: (N, O, S) in: gradient of c from the next step (zeros at the last);
  //     out: gradient of cPrev
  // dgates: (N, 4*O, S) out: gradient of the pre-activations
  virtual void lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                                const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) = 0;

  // One step of an Elman RNN cell: h = act(pre + recurrent + bias).
  // pre: (N, O, S) the input projection, its bias included; recurrent: (N, O, S)
  // or null; bias: (O) or null; h: (N, O, S) out
  virtual void rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) = 0;
  // h: (N, O, S) the step's output; dh, dhRecurrent (or null): (N, O, S);
  // dpre: (N, O, S) out: gradient of the pre-activation
  virtual void rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) = 0;

  // One step of a GRU cell (PyTorch's: gate order r, z, n; the recurrent bias of
  // n inside the reset product): r = sigmoid(gi_r + gh_r + bh_r),
  // z = sigmoid(gi_z + gh_z + bh_z), n = tanh(gi_n + r * (gh_n + bh_n)),
  // h = (1 - z) * n + z * hPrev.
  // gi: (N, 3*O, S) the input projection, its bias included; gh: (N, 3*O, S)
  // the recurrent projection or null (zero); bias: (3*O) or null; hPrev:
  // (N, O, S) or null (zero); act: (N, 4*O, S) out: r, z, n and gh_n + bh_n,
  // what backward needs; h: (N, O, S) out
  virtual void gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                              Tensor& h) = 0;
  // act: (N, 4*O, S) from forward; hPrev: (N, O, S) or null; dh, dhRecurrent
  // (or null): (N, O, S); dhCarry: (N, O, S) in: the direct part of h's gradient
  // from the next step (z * dh there), out: this step's for hPrev; dgi, dgh:
  // (N, 3*O, S) out: gradients of the input and the recurrent projections
  virtual void gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                               Tensor& dhCarry, Tensor& dgi, Tensor& dgh) = 0;

  // Loss and its gradient with respect to the class probabilities.
  // probs: (N, C, ...) softmax outputs; labels: (N, ...) class ids stored as
  // floats; mask: (N, ...) or null, voxels with 0 are ignored; classWeights:
  // (C) or null. grad: (N, C, ...) out. Returns the loss (see ops/training.h).
  virtual double lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                                     const Tensor* classWeights, Tensor& grad) = 0;
  // One optimizer update in place. param, grad, state1, state2: same size;
  // state1/state2: RMSprop (MS, M), SGD (velocity, unused), Adam (m, v).
  virtual void optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad,
                               Tensor& state1, Tensor& state2) = 0;

  // Layout. y's axis i is x's axis perm[i]. x: any rank, y: permuted shape
  virtual void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) = 0;
  // Reverses each listed axis. x, y: same shape
  virtual void flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) = 0;
  // Copies entries [srcStart, srcStart + count) of src's axis into entries
  // [dstStart, dstStart + count) of dst's; every other axis of src and dst agrees.
  // The block concat, narrow and their gradients are made of.
  // src: (..., Ls, ...), dst: (..., Ld, ...), axis counted from 0
  virtual void copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                             int64_t count) = 0;
};

inline ScopedRange::ScopedRange(Backend& backend, const char* name) : backend_(backend) { backend_.rangePush(name); }
inline ScopedRange::~ScopedRange() { backend_.rangePop(); }

}  // namespace segvol
