// The planes of one C-LSTM scan, forward and backward (BPTT), from backend
// primitives: one batched input convolution, then per plane the recurrent
// convolution and the fused cell step (see clstm_planes.h).
#include "clstm_planes.h"

#include <array>

namespace segvol::ops {
namespace {

ConvGeometry planeGeometry(const ClstmWeights& w) {
  ConvGeometry g;
  g.spatialRank = 2;
  g.padding = {0, (w.wx.dim(2) - 1) / 2, (w.wx.dim(3) - 1) / 2};
  return g;
}

// The peepholes' gradients, summed over steps and samples: w_ci and w_cf meet the
// previous cell of each plane, w_co its own. planes: one scan (G = 1); dgates:
// (T, N, 4*O, A, B); c0: (N, O, A, B) or null (zeros before the first plane).
Tensor peepholeGrads(Backend& be, const ScanPlanes& p, const Tensor& dgates, const Tensor* c0, bool reverse) {
  const int64_t T = p.c.dim(0), N = p.c.dim(1), O = p.c.dim(2), S = p.c.size() / (T * N * O);
  Tensor cPrevs = Tensor::empty(be, {T, N, O, S});
  const int64_t first = reverse ? T - 1 : 0;
  if (T > 1) {
    // Plane t's previous cell is plane t - 1's (forward) or t + 1's (reverse).
    Tensor earlier = p.c.slice(reverse ? 1 : 0, T - 1).view({T - 1, N, O, S});
    Tensor into = cPrevs.slice(reverse ? 0 : 1, T - 1);
    be.copy(earlier, into);
  }
  Tensor firstPrev = cPrevs.slice(first, 1);
  if (c0) be.copy(*c0, firstPrev); else be.fill(firstPrev, 0.0f);
  Tensor dpeep = Tensor::empty(be, {3, O * S});
  Tensor dgatesRows = dgates.view({T * N, 4 * O, S});
  Tensor block = Tensor::empty(be, {T * N, O, S});
  Tensor product = Tensor::empty(be, {T * N, O, S});
  const std::array<std::pair<int64_t, const Tensor*>, 3> terms = {{{0, &cPrevs}, {1, &cPrevs}, {3, &p.c}}};
  for (int q = 0; q < 3; ++q) {
    be.copyAxisRange(dgatesRows, terms[q].first * O, block, 0, 1, O);
    be.binary(BinaryKind::Mul, block, terms[q].second->view({T * N, O, S}), product);
    Tensor row = dpeep.slice(q, 1).view({O * S});
    be.channelSum(product.view({T * N, O * S, 1}), row);
  }
  return dpeep.view(p.c.shape().size() == 5 ? Shape{3, O, p.c.dim(3), p.c.dim(4)} : Shape{3, O, S});
}

}  // namespace

ScanPlanes scanForwardPlanes(Backend& be, const Tensor& xs, const ClstmWeights& w, bool reverse, const Tensor* h0,
                             const Tensor* c0, bool keepGates, bool zeroState) {
  const int64_t T = xs.dim(0), N = xs.dim(1), GC = xs.dim(2), A = xs.dim(3), B = xs.dim(4);
  const int64_t GO4 = w.wx.dim(0), O = w.wh.dim(1), G = GO4 / (4 * O);
  ConvGeometry g = planeGeometry(w);
  g.groups = G;
  ScanPlanes p{Tensor::empty(be, {T, N, GO4, A, B}), Tensor::empty(be, {T, N, G * O, A, B}),
               Tensor::empty(be, {T, N, G * O, A, B})};
  Tensor gatesBatch = p.gates.view({T * N, GO4, A, B});
  be.convForward(g, xs.view({T * N, GC, A, B}), w.wx, &w.bx, gatesBatch);
  Tensor recurrentConv = Tensor::empty(be, {N, GO4, A, B});
  Tensor recurrent = recurrentConv.view({N * G, 4 * O, A, B});
  const Tensor* peep = w.peep.defined() ? &w.peep : nullptr;
  // Convolutions see (N, G*channels); the cell kernel sees the same memory as (N*G, channels).
  const Shape convState = {N, G * O, A, B}, cellState = {N * G, O, A, B}, cellGates = {N * G, 4 * O, A, B};
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s, prev = reverse ? t + 1 : t - 1;
    Tensor gates = p.gates.slice(t, 1).view(cellGates);
    Tensor c = p.c.slice(t, 1).view(cellState);
    Tensor h = p.h.slice(t, 1).view(cellState);
    Tensor hPrevPlane, cPrevPlane;
    const Tensor* hPrev = h0;
    const Tensor* cPrev = c0;
    if (s > 0) {
      hPrevPlane = p.h.slice(prev, 1).view(convState);
      cPrevPlane = p.c.slice(prev, 1).view(cellState);
      hPrev = &hPrevPlane;
      cPrev = &cPrevPlane;
    }
    if (hPrev) {
      be.convForward(g, *hPrev, w.wh, nullptr, recurrentConv);
      be.lstmStepForward(gates, &recurrent, &w.bh, cPrev, peep, c, h);
    } else {
      // zeroState: the state before the scan is zero, so its recurrent term is bh alone.
      be.lstmStepForward(gates, nullptr, zeroState ? &w.bh : nullptr, nullptr, peep, c, h);
    }
  }
  if (!keepGates) p.gates.release();
  return p;
}


PlaneGrads scanBackwardPlanes(Backend& be, const Tensor& xs, const ScanPlanes& p, const ClstmWeights& w, bool reverse,
                              const Tensor& dys, const Tensor* dhLast, const Tensor* dcLast, const Tensor* h0,
                              const Tensor* c0, bool needInput, bool zeroState) {
  const int64_t T = xs.dim(0), N = xs.dim(1), GC = xs.dim(2), A = xs.dim(3), B = xs.dim(4);
  const int64_t GO4 = w.wx.dim(0), O = w.wh.dim(1), G = GO4 / (4 * O);
  ConvGeometry g = planeGeometry(w);
  g.groups = G;
  const Shape convState = {N, G * O, A, B}, convGates = {N, GO4, A, B};
  const Shape cellState = {N * G, O, A, B}, cellGates = {N * G, 4 * O, A, B};
  Tensor dgates = Tensor::empty(be, {T, N, GO4, A, B});
  // Without saved gates, plane t's are recomputed just before its step backward:
  // the input convolution of all planes goes into dgates (plane t's slot is read
  // before its gradient overwrites it), then per step the recurrent term and the
  // cell kernel, as in forward (the same calls, so the same values).
  const bool recompute = !p.gates.defined();
  const Tensor* peep = w.peep.defined() ? &w.peep : nullptr;
  Tensor gatesNow, cScratch, hScratch, recurrentConv;
  if (recompute) {
    Tensor preactivations = dgates.view({T * N, GO4, A, B});
    be.convForward(g, xs.view({T * N, GC, A, B}), w.wx, &w.bx, preactivations);
    gatesNow = Tensor::empty(be, cellGates);
    cScratch = Tensor::empty(be, cellState);
    hScratch = Tensor::empty(be, cellState);
    recurrentConv = Tensor::empty(be, convGates);
  }
  Tensor dc = Tensor::empty(be, cellState);
  if (dcLast) be.copy(*dcLast, dc); else be.fill(dc, 0.0f);
  Tensor dhRecurrentConv = Tensor::empty(be, convState);
  Tensor dhRecurrent = dhRecurrentConv.view(cellState);
  bool haveRecurrent = dhLast != nullptr;
  if (dhLast) be.copy(*dhLast, dhRecurrent);
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s, prev = reverse ? t + 1 : t - 1;
    Tensor cPrevPlane;
    const Tensor* cPrev = c0;
    if (s > 0) {
      cPrevPlane = p.c.slice(prev, 1).view(cellState);
      cPrev = &cPrevPlane;
    }
    Tensor dg = dgates.slice(t, 1).view(cellGates);
    Tensor gates;
    if (recompute) {
      be.copy(dg, gatesNow);
      const Tensor* hPrev = h0;
      Tensor hPrevPlane;
      if (s > 0) {
        hPrevPlane = p.h.slice(prev, 1).view(convState);
        hPrev = &hPrevPlane;
      }
      if (hPrev) {
        be.convForward(g, *hPrev, w.wh, nullptr, recurrentConv);
        Tensor recurrent = recurrentConv.view(cellGates);
        be.lstmStepForward(gatesNow, &recurrent, &w.bh, cPrev, peep, cScratch, hScratch);
      } else {
        be.lstmStepForward(gatesNow, nullptr, zeroState ? &w.bh : nullptr, nullptr, peep, cScratch, hScratch);
      }
      gates = gatesNow;
    } else {
      gates = p.gates.slice(t, 1).view(cellGates);
    }
    be.lstmStepBackward(gates, cPrev, p.c.slice(t, 1).view(cellState), dys.slice(t, 1).view(cellState),
                        haveRecurrent ? &dhRecurrent : nullptr, peep, dc, dg);
    haveRecurrent = s > 0 || h0;
    if (haveRecurrent) be.convBackwardData(g, dgates.slice(t, 1).view(convGates), w.wh, dhRecurrentConv);
  }

  PlaneGrads out;
  out.grads.dwx = Tensor::empty(be, w.wx.shape());
  out.grads.dbx = Tensor::empty(be, {GO4});
  be.convBackwardWeights(g, xs.view({T * N, GC, A, B}), dgates.view({T * N, GO4, A, B}), out.grads.dwx, &out.grads.dbx);

  // The recurrent weights see every step that had a previous plane: one batched call.
  out.grads.dwh = Tensor::empty(be, w.wh.shape());
  out.grads.dbh = Tensor::empty(be, {GO4});
  if (T > 1) {
    Tensor hPrevs = (reverse ? p.h.slice(1, T - 1) : p.h.slice(0, T - 1)).view({(T - 1) * N, G * O, A, B});
    Tensor dgs = (reverse ? dgates.slice(0, T - 1) : dgates.slice(1, T - 1)).view({(T - 1) * N, GO4, A, B});
    be.convBackwardWeights(g, hPrevs, dgs, out.grads.dwh, &out.grads.dbh);
  } else {
    be.fill(out.grads.dwh, 0.0f);
    be.fill(out.grads.dbh, 0.0f);
  }
  if (zeroState && !h0) {
    // bh also entered the first plane.
    Tensor dbFirst = Tensor::empty(be, {GO4});
    be.channelSum(dgates.slice(reverse ? T - 1 : 0, 1).view(convGates), dbFirst);
    be.binary(BinaryKind::Add, out.grads.dbh, dbFirst, out.grads.dbh);
  }
  if (h0) {
    const int64_t first = reverse ? T - 1 : 0;
    Tensor dg = dgates.slice(first, 1).view(convGates);
    Tensor dwh0 = Tensor::empty(be, w.wh.shape()), dbh0 = Tensor::empty(be, {GO4});
    be.convBackwardWeights(g, *h0, dg, dwh0, &dbh0);
    be.binary(BinaryKind::Add, out.grads.dwh, dwh0, out.grads.dwh);
    be.binary(BinaryKind::Add, out.grads.dbh, dbh0, out.grads.dbh);
    out.dh0 = dhRecurrent;  // the gradient that reached the state before the first plane
    out.dc0 = dc;
  }
  if (peep) out.grads.dpeep = peepholeGrads(be, p, dgates, c0, reverse);
  if (needInput) {
    out.dxs = Tensor::empty(be, {T, N, GC, A, B});
    Tensor dxsBatch = out.dxs.view({T * N, GC, A, B});
    be.convBackwardData(g, dgates.view({T * N, GO4, A, B}), w.wx, dxsBatch);
  }
  return out;
}

}  // namespace segvol::ops
