// Losses and optimizer updates, checked and dispatched like every op.
//
// Losses take class probabilities p (N, C, ...) (a softmax output) and labels
// (N, ...) holding class ids; mask (N, ...) zeros ignore voxels; class weights
// w (C) default to 1. Over the used voxels i with label y_i:
//   squaredError: sum_i w_{y_i} sum_c (p_ic - [c = y_i])^2 / sum_i w_{y_i}   (the PyraMiD-LSTM paper)
//   crossEntropy: sum_i w_{y_i} (-log max(p_{i y_i}, 1e-7)) / sum_i w_{y_i}  (PyTorch's weighted mean)
//   softDice:     1 - sum_c w_c (2 I_c + e) / (P_c + T_c + e) / sum_c w_c
//   softIoU:      1 - sum_c w_c (I_c + e) / (P_c + T_c - I_c + e) / sum_c w_c
// with I_c = sum_i p_ic [y_i = c], P_c = sum_i p_ic, T_c = sum_i [y_i = c], e = 1e-6.
#pragma once
#include "ops.h"

namespace segvol::ops {

struct LossResult {
  double loss;
  Tensor grad;  // (N, C, ...) d loss / d probs
};

LossResult loss(Implementation impl, LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                const Tensor* classWeights);

// Updates param, state1 and state2 in place.
void optimizerUpdate(Implementation impl, OptimizerKind kind, const OptimizerHyper& h, Tensor& param,
                     const Tensor& grad, Tensor& state1, Tensor& state2);

}  // namespace segvol::ops
