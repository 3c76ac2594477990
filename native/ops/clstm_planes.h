// The planes of one C-LSTM scan, forward and backward, in scan layout
// (T, N, C, A, B); shared by the single scan and the PyraMiD-LSTM layer's
// (possibly grouped) scans in clstm.cpp. Internal to native/ops.
#pragma once
#include "clstm.h"

namespace segvol::ops {

// Forward over all planes of one scan. xs: (T, N, G*C, A, B); w: weights of G
// directions stacked along the output axis (wx (G*4O, C, k, k), wh (G*4O, O, k, k)).
// G > 1 runs G same-shaped directions as one grouped scan (grouped convolutions,
// the cell kernel on N*G rows), every member forward in its own time order.
// keepGates false: the gates are a transient of the scan, freed at its end (backward recomputes them).
ScanPlanes scanForwardPlanes(Backend& be, const Tensor& xs, const ClstmWeights& w, bool reverse, const Tensor* h0,
                             const Tensor* c0, bool keepGates = true, bool zeroState = false);

struct PlaneGrads {
  Tensor dxs;  // (T, N, G*C, A, B), when asked for
  ClstmGrads grads;  // stacked like the weights
  Tensor dh0, dc0;
};

// BPTT over all planes of one (possibly grouped) scan. dys: (T, N, G*O, A, B)
// gradient of every plane's h; initial states only for G = 1.
PlaneGrads scanBackwardPlanes(Backend& be, const Tensor& xs, const ScanPlanes& p, const ClstmWeights& w, bool reverse,
                              const Tensor& dys, const Tensor* dhLast, const Tensor* dcLast, const Tensor* h0,
                              const Tensor* c0, bool needInput, bool zeroState = false);

}  // namespace segvol::ops
