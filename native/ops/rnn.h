// The dense recurrent layers of one direction, as PyTorch's torch.nn.RNN, LSTM
// and GRU compute them (one layer, one direction per call; the layer stacks and
// directions are composed above). Orchestration only, like clstm.cpp: the
// projections are backend convolutions with 1x1 kernels on (rows, features, 1, 1)
// views, so every backend shares it, and each step is one fused cell kernel.
//
//   forward:  one batched projection of all steps' inputs; per step the
//             recurrent projection of the active rows and the cell kernel;
//   backward: BPTT per step (the cell kernel backwards, then the recurrent
//             projection's data gradient), then the weight gradients of all
//             steps in one call each and the input gradient in one call.
//
// Variable-length sequences: the batch is ordered by length, longest first
// (inside the op; callers see their order), so the rows still running at step t
// are a prefix of the batch and every per-step call works on a contiguous view.
// Outputs past a sequence's length are 0; its final state is the one at its
// last step (the reverse direction starts there).
#pragma once
#include <memory>
#include <vector>

#include "clstm.h"

namespace segvol::ops {

enum class RnnCell { RnnTanh, RnnRelu, Lstm, Gru };

// Gates of the input and recurrent projections: 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n).
int rnnGateCount(RnnCell cell);

struct RnnWeights {
  Tensor wih;  // (gates*H, I)
  Tensor whh;  // (gates*H, P), P = the projection size (LSTM with projSize) or H
  Tensor bih;  // (gates*H) or undefined (no biases)
  Tensor bhh;  // (gates*H) or undefined (with bih)
  Tensor whr;  // (P, H): LSTM's projection of h, or undefined
};

struct RnnGrads {
  Tensor dwih, dwhh, dbih, dbhh, dwhr;  // like the weights; biases and projection when present
};

struct RnnSaved final : SavedState {
  RnnCell cell = RnnCell::Lstm;
  bool reverse = false, batchFirst = false;
  bool hasBias = false, hasInitialState = false;
  Shape xShape;
  Tensor xs;     // (T, N, I) the input in scan layout, batch in length order
  Tensor acts;   // (T, N, 4H) LSTM gate activations, GRU r, z, n, gh_n + bh_n; undefined for RNN
  Tensor c;      // (T, N, H) LSTM cells
  Tensor hCell;  // (T, N, H) LSTM with projection: o * tanh(c) before the projection
  Tensor h;      // (T, N, P) outputs, 0 past each length
  RnnWeights weights;  // with zero biases filled in when there are none
  Tensor h0, c0;  // (N, P), (N, H) in length order (zeros without an initial state)
  std::vector<int64_t> batchSizes;  // per step: rows still running
  std::vector<int64_t> order;       // row j of the length order is input row order[j]; empty: the identity
  size_t bytes() const override;
  const char* kind() const override { return "rnn"; }
};

struct RnnForward {
  Tensor y;   // (T, N, P) or (N, T, P) with batchFirst
  Tensor hN;  // (N, P) each sequence's final state
  Tensor cN;  // (N, H), LSTM
  std::shared_ptr<RnnSaved> saved;
};

struct RnnBackward {
  Tensor dx;  // like x
  RnnGrads grads;
  Tensor dh0, dc0;  // when an initial state was given
};

// x: (T, N, I) or (N, T, I) with batchFirst; lengths: N entries in 1..T, or empty
// (all T); h0: (N, P) or null; c0: (N, H) or null (LSTM: both or neither).
RnnForward rnnForward(Implementation impl, RnnCell cell, const Tensor& x, const RnnWeights& w, bool reverse,
                      bool batchFirst, const std::vector<int64_t>& lengths, const Tensor* h0, const Tensor* c0);
// dy: like y, or null; dhN: (N, P) or null; dcN: (N, H) or null
RnnBackward rnnBackward(Implementation impl, const RnnSaved& saved, const Tensor* dy, const Tensor* dhN,
                        const Tensor* dcN);

}  // namespace segvol::ops
