// The C-LSTM scan (one direction of PyraMiD-LSTM, or a ConvLSTM over slices)
// and the PyraMiD-LSTM layer (six directions, summed), conventions in
// docs/conventions.md. Orchestration only: the convolutions and the
// fused gate kernels are backend primitives, so every backend shares this file.
//
// A direction's scan works in "scan layout" (T, N, C, A, B): T the scan axis,
// (A, B) the plane. The input-to-state convolution of all planes is one batched
// convolution (T*N planes as batch); only the state-to-state convolution runs
// per step. Backward is full BPTT; its weight gradients are again batched calls.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "ops.h"

namespace segvol::ops {

struct ClstmWeights {
  Tensor wx;  // (4*O, C, kA, kB)
  Tensor bx;  // (4*O)
  Tensor wh;  // (4*O, O, kA, kB)
  Tensor bh;  // (4*O)
  Tensor peep;  // (3, O, A, B) Shi et al.'s peepholes w_ci, w_cf, w_co, or undefined (a single scan only)
};

struct ClstmGrads {
  Tensor dwx, dbx, dwh, dbh;
  Tensor dpeep;  // with peepholes
};

// What a forward pass keeps for its backward pass. Opaque to JS.
struct SavedState {
  virtual ~SavedState() = default;
  virtual size_t bytes() const = 0;
  virtual const char* kind() const = 0;
};

// Planes of one direction in scan layout, kept for backward.
struct ScanPlanes {
  Tensor gates;  // (T, N, 4*O, A, B) activations i, f, g, o; undefined when backward recomputes them
  Tensor c;      // (T, N, O, A, B)
  Tensor h;      // (T, N, O, A, B)
  size_t bytes() const { return (gates.defined() ? gates.bytes() : 0) + c.bytes() + h.bytes(); }
};

// What a training forward pass keeps, and how directions are grouped.
struct ScanSchedule {
  // Keep h and c only (2O per voxel and direction instead of 6O); backward
  // recomputes the gates from them, bit for bit, at the cost of the forward
  // convolutions once more.
  bool recompute = false;
  // The most directions one grouped scan may hold (1..6); 0: the backend's default.
  int groupLimit = 0;
};

struct ScanSaved final : SavedState {
  int direction = 0;
  Shape xShape;
  Tensor xs;  // (T, N, C, A, B) the input in scan layout
  ScanPlanes planes;
  ClstmWeights weights;
  Tensor h0, c0;  // (N, O, A, B) or undefined
  bool zeroState = false;  // no h0/c0, but the scan starts from a zero state: bh enters the first plane
  size_t bytes() const override { return xs.bytes() + planes.bytes(); }
  const char* kind() const override { return "clstmScan"; }
};

struct ScanForward {
  Tensor h;       // (N, O, D, H, W)
  Tensor hLast;   // (N, O, A, B) state after the last plane of the scan
  Tensor cLast;   // (N, O, A, B)
  std::shared_ptr<ScanSaved> saved;
};

struct ScanBackward {
  Tensor dx;  // (N, C, D, H, W)
  ClstmGrads grads;
  Tensor dh0, dc0;  // (N, O, A, B), when an initial state was given
};

// x: (N, C, D, H, W); direction 0..5 = +D, -D, +H, -H, +W, -W; h0, c0: (N, O, A, B) or null (both or neither).
// Without h0, the first plane has no recurrent term at all (PyraMiD-LSTM's convention), or with
// zeroState the term of a zero state, bh (the same as h0 = c0 = 0, without their convolution).
ScanForward clstmScanForward(Implementation impl, const Tensor& x, const ClstmWeights& w, int direction,
                             const Tensor* h0, const Tensor* c0, bool recompute = false, bool zeroState = false);
// dh: (N, O, D, H, W) or null (no gradient from the outputs); dhLast, dcLast: (N, O, A, B) or null
ScanBackward clstmScanBackward(Implementation impl, const ScanSaved& saved, const Tensor* dh, const Tensor* dhLast,
                               const Tensor* dcLast);

// Directions that ran as one scan (one, or several of the same scan shape,
// stacked along channels; see clstm.cpp), with their planes in that layout.
struct ScanGroup {
  std::vector<int> directions;
  ClstmWeights weights;  // stacked along the output axis when grouped
  ScanPlanes planes;
};

struct PyramidSaved final : SavedState {
  Shape xShape;
  Tensor x;  // the input itself (shared, not copied)
  std::vector<ScanGroup> groups;  // empty after an inference-only forward pass
  std::array<ClstmWeights, 6> weights;
  // The activations kept for backward: every group's planes.
  size_t bytes() const override;
  const char* kind() const override { return "pyramidLstm"; }
};

struct PyramidForward {
  Tensor y;  // (N, O, D, H, W): the sum of the six directions' h
  std::shared_ptr<PyramidSaved> saved;
};

struct PyramidBackward {
  Tensor dx;  // (N, C, D, H, W)
  std::array<ClstmGrads, 6> grads;
};

// keepForBackward = false (inference) keeps no planes, so the peak memory is one scan group's.
PyramidForward pyramidLstmForward(Implementation impl, const Tensor& x, const std::array<ClstmWeights, 6>& w,
                                  bool keepForBackward = true, ScanSchedule schedule = {});
// dy: (N, O, D, H, W)
PyramidBackward pyramidLstmBackward(Implementation impl, const PyramidSaved& saved, const Tensor& dy);

}  // namespace segvol::ops
