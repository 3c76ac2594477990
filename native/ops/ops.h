// The op layer between callers (binding, later models) and backends: checks
// every shape and option before any compute, allocates outputs on the inputs'
// device, and dispatches to the backend that serves it. Backends never see
// unchecked input.
#pragma once
#include <optional>
#include <vector>

#include "../core/backend.h"
#include "../registry/registry.h"

namespace segvol::ops {

// ---- convolution.cpp
// x: (N, C, [D,] H, W), w: (O, C/groups, [kD,] kH, kW), bias: (O) or null -> (N, O, ...out)
Tensor convForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeometry& g);
struct ConvGrads {
  Tensor dx, dw, dbias;  // undefined when not asked for
};
// dy: (N, O, ...out)
ConvGrads convBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeometry& g,
                       bool needInput, bool needWeight, bool needBias);
// Transposed convolution, as PyTorch's conv_transposeNd.
// x: (N, C, ...), w: (C, O/groups, [kD,] kH, kW), bias: (O) or null -> (N, O, ...out)
Tensor convTransposeForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias,
                            const ConvGeometry& g, const Triple& outputPadding);
ConvGrads convTransposeBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy,
                                const ConvGeometry& g, const Triple& outputPadding, bool needInput, bool needWeight,
                                bool needBias);
// Pixel-wise fully connected layer (a 1x1(x1) convolution).
// x: (N, C, ...), w: (F, C), bias: (F) or null -> (N, F, ...)
Tensor pixelwiseForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias);
ConvGrads pixelwiseBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy, bool needInput,
                            bool needWeight, bool needBias);

// ---- pooling.cpp
// x: (N, C, [D,] H, W) -> (N, C, ...out)
Tensor maxPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g);
Tensor maxPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g);
Tensor avgPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g);
Tensor avgPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g);
Shape poolOutputShape(const Tensor& x, const PoolGeometry& g, const char* op);

// ---- upsample.cpp
// x: (N, C, [D,] H, W) -> (N, C, ...size); size has one entry per spatial axis
Tensor upsampleForward(Implementation impl, const Tensor& x, const std::vector<int64_t>& size, UpsampleMode mode,
                       bool alignCorners);
// dy: (N, C, ...size) -> dx: (N, C, ...inputSpatial)
Tensor upsampleBackward(Implementation impl, const Tensor& dy, const std::vector<int64_t>& inputSpatial,
                        UpsampleMode mode, bool alignCorners);

// ---- normalization.cpp
struct BatchNormForward {
  Tensor y, mean, invStd;  // mean/invStd: (C), the statistics used (batch or running)
};
// x: (N, C, ...), gamma, beta, runningMean, runningVar: (C). Training mode
// normalises with batch statistics and updates the running ones in place.
BatchNormForward batchNormForward(Implementation impl, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  Tensor& runningMean, Tensor& runningVar, bool training, double momentum,
                                  double eps);
struct BatchNormGrads {
  Tensor dx, dgamma, dbeta;
};
BatchNormGrads batchNormBackward(Implementation impl, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                 const Tensor& invStd, bool training, const Tensor& dy);

// ---- elementwise.cpp (same-shaped tensors of any rank)
Tensor activation(Implementation impl, ActivationKind kind, const Tensor& x);
// y: the forward output (tanh and sigmoid derive their slope from it)
Tensor activationBackward(Implementation impl, ActivationKind kind, const Tensor& x, const Tensor& y, const Tensor& dy);
Tensor binary(Implementation impl, BinaryKind kind, const Tensor& a, const Tensor& b);
Tensor scale(Implementation impl, const Tensor& x, double factor);
Tensor sum(Implementation impl, const std::vector<const Tensor*>& xs);
// min(max(x, lo), hi), and its gradient (dy where lo <= x <= hi)
Tensor clamp(Implementation impl, const Tensor& x, double lo, double hi);
Tensor clampBackward(Implementation impl, const Tensor& x, double lo, double hi, const Tensor& dy);
// x rounded to the nearest value of format (the values it would have stored in 16 bits), as float32
Tensor roundToFormat(Implementation impl, const Tensor& x, FloatFormat format);
// The sum of squares of every element of every tensor (all on one device), in double.
double sumOfSquares(Implementation impl, const std::vector<const Tensor*>& xs);

// ---- softmax.cpp: over the channel axis of (N, C, ...)
Tensor softmaxForward(Implementation impl, const Tensor& x);
Tensor softmaxBackward(Implementation impl, const Tensor& y, const Tensor& dy);

// ---- layout.cpp
Tensor permute(Implementation impl, const Tensor& x, const std::vector<int>& perm);
Tensor flip(Implementation impl, const Tensor& x, const std::vector<int>& axes);
// Joins tensors along an axis; every other axis must agree. xs: (..., L_i, ...) -> (..., sum L_i, ...)
Tensor concat(Implementation impl, const std::vector<const Tensor*>& xs, int axis);
// Entries [start, start + length) of an axis: x (..., L, ...) -> (..., length, ...)
Tensor narrow(Implementation impl, const Tensor& x, int axis, int64_t start, int64_t length);
// The gradient of narrow: dy (..., length, ...) placed at start in zeros of inputShape.
Tensor narrowBackward(Implementation impl, const Tensor& dy, const Shape& inputShape, int axis, int64_t start);
Tensor copyTo(const Tensor& x, Device device);

// ---- loss.cpp
// Losses take class probabilities p (N, C, ...) (a softmax output) and labels
// (N, ...) holding class ids; mask (N, ...) zeros ignore voxels; class weights
// w (C) default to 1. Over the used voxels i with label y_i:
//   squaredError: sum_i w_{y_i} sum_c (p_ic - [c = y_i])^2 / sum_i w_{y_i}   (the PyraMiD-LSTM paper)
//   crossEntropy: sum_i w_{y_i} (-log max(p_{i y_i}, 1e-7)) / sum_i w_{y_i}  (PyTorch's weighted mean)
//   softDice:     1 - sum_c w_c (2 I_c + e) / (P_c + T_c + e) / sum_c w_c
//   softIoU:      1 - sum_c w_c (I_c + e) / (P_c + T_c - I_c + e) / sum_c w_c
// with I_c = sum_i p_ic [y_i = c], P_c = sum_i p_ic, T_c = sum_i [y_i = c], e = 1e-6.
struct LossResult {
  double loss;
  Tensor grad;  // (N, C, ...) d loss / d probs
};
LossResult loss(Implementation impl, LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                const Tensor* classWeights);

// ---- optimizer.cpp: updates param, state1 and state2 in place.
void optimizerUpdate(Implementation impl, OptimizerKind kind, const OptimizerHyper& h, Tensor& param,
                     const Tensor& grad, Tensor& state1, Tensor& state2);

}  // namespace segvol::ops
