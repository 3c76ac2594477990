// One LSTM cell step as an op of its own, for networks that compose their
// recurrence from ops (the consistent ConvLSTM's CConvLSTM): the gate
// pre-activations in, h and c out, one pass over the planes each way (the
// backends' fused lstm_cell kernels), instead of about ten element-wise ops.
//
//   i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (pre + recurrent), split along axis 1
//   c = g * i + cPrev * f        (c = g * i without cPrev)
//   h = o * tanh(c)
#pragma once
#include "../core/backend.h"
#include "../registry/registry.h"

namespace segvol::ops {

struct LstmCellForward {
  Tensor acts;  // (N, 4*O, ...): the gate activations (i, f, g, o), what backward needs
  Tensor c;     // (N, O, ...)
  Tensor h;     // (N, O, ...)
};

struct LstmCellBackward {
  Tensor dgates;  // (N, 4*O, ...): gradient of the pre-activations (and of recurrent)
  Tensor dcPrev;  // (N, O, ...), or undefined without cPrev
};

// pre: (N, 4*O, ...) gate pre-activations; recurrent: the same shape, added to pre, or null;
// cPrev: (N, O, ...) or null
LstmCellForward lstmCellForward(Implementation impl, const Tensor& pre, const Tensor* recurrent, const Tensor* cPrev);

// acts, c: from forward; cPrev: forward's, or null; dh, dc: gradients of h and c (null: zero)
LstmCellBackward lstmCellBackward(Implementation impl, const Tensor& acts, const Tensor* cPrev, const Tensor& c,
                                  const Tensor* dh, const Tensor* dc);

}  // namespace segvol::ops
