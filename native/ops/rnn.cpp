#include "rnn.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "checks.h"
#include "compose.h"

namespace segvol::ops {
namespace {

const char* cellName(RnnCell cell) {
  switch (cell) {
    case RnnCell::RnnTanh: return "rnn (tanh)";
    case RnnCell::RnnRelu: return "rnn (relu)";
    case RnnCell::Lstm: return "lstm";
    case RnnCell::Gru: return "gru";
  }
  return "rnn";
}

// A projection is a 1x1 convolution of (rows, features, 1, 1).
ConvGeometry projection() {
  ConvGeometry g;
  g.spatialRank = 2;
  return g;
}
Tensor as4(const Tensor& t) { return t.view({t.dim(0), t.size() / t.dim(0), 1, 1}); }
// Step t of a (T, N, F) tensor as (N, F), and its first n rows.
Tensor stepOf(const Tensor& planes, int64_t t) { return planes.slice(t, 1).view({planes.dim(1), planes.dim(2)}); }
Tensor stepRows(const Tensor& planes, int64_t t, int64_t n) { return stepOf(planes, t).slice(0, n); }

// dst's rows (along `axis`) in the order `order` of src's: dst[j] = src[order[j]] (gather)
// or dst[order[j]] = src[j] (scatter).
Tensor reorder(Backend& be, const Tensor& src, const std::vector<int64_t>& order, int axis, bool scatter) {
  if (order.empty()) return src;
  Tensor dst = Tensor::empty(be, src.shape());
  for (int64_t j = 0; j < static_cast<int64_t>(order.size()); ++j) {
    if (scatter) be.copyAxisRange(src, j, dst, order[j], axis, 1);
    else be.copyAxisRange(src, order[j], dst, j, axis, 1);
  }
  return dst;
}

void checkMatrix(const Tensor& t, int64_t rows, int64_t cols, const std::string& op, const std::string& name,
                 const std::string& layout, Device device) {
  if (t.rank() != 2 || t.dim(0) != rows || t.dim(1) != cols) {
    fail(ErrorCode::Shape, op + ": expected " + name + " of shape (" + std::to_string(rows) + ", " + std::to_string(cols) +
                               ") " + layout + ", received " + shapeToString(t.shape()));
  }
  if (t.device() != device) {
    fail(ErrorCode::Device, op + ": " + name + " is on " + deviceName(t.device()) + " but the input is on " + deviceName(device));
  }
}

struct Sizes {
  int64_t T, N, I, H, P, gates;
};

Sizes checkArguments(RnnCell cell, const Tensor& x, const RnnWeights& w, bool batchFirst,
                     const std::vector<int64_t>& lengths, const Tensor* h0, const Tensor* c0, const std::string& op) {
  checkRank(x, {3}, op, "input", batchFirst ? "(N, T, features) (batchFirst)" : "(T, N, features)");
  checkNotEmpty(x, op, "input");
  Sizes s{};
  s.gates = rnnGateCount(cell);
  s.T = x.dim(batchFirst ? 1 : 0);
  s.N = x.dim(batchFirst ? 0 : 1);
  s.I = x.dim(2);
  if (w.wih.rank() != 2 || w.wih.dim(0) % s.gates != 0 || w.wih.dim(0) == 0) {
    fail(ErrorCode::Shape, op + ": expected weight_ih of shape (" + std::to_string(s.gates) + "*hidden, inputSize) for " +
                               cellName(cell) + ", received " + shapeToString(w.wih.shape()));
  }
  s.H = w.wih.dim(0) / s.gates;
  if (w.whr.defined() && cell != RnnCell::Lstm) {
    fail(ErrorCode::Argument, op + ": a projection (weight_hr) is an LSTM option; " + cellName(cell) + " has none");
  }
  s.P = w.whr.defined() ? w.whr.dim(0) : s.H;
  const std::string gatesText = "(" + std::to_string(s.gates) + "*" + std::to_string(s.H) + " gate rows";
  checkMatrix(w.wih, s.gates * s.H, s.I, op, "weight_ih", gatesText + ", inputSize " + std::to_string(s.I) + " like the input)", x.device());
  checkMatrix(w.whh, s.gates * s.H, s.P, op, "weight_hh", gatesText + ", " + (w.whr.defined() ? "projSize" : "hidden") + ")", x.device());
  if (w.whr.defined()) {
    if (w.whr.rank() != 2 || w.whr.dim(0) >= s.H) {
      fail(ErrorCode::Shape, op + ": expected weight_hr of shape (projSize, hidden) with projSize < hidden " + std::to_string(s.H) +
                                 ", received " + shapeToString(w.whr.shape()));
    }
    checkMatrix(w.whr, s.P, s.H, op, "weight_hr", "(projSize, hidden)", x.device());
  }
  if (w.bih.defined() != w.bhh.defined()) {
    fail(ErrorCode::Argument, op + ": expected both biases (bias_ih, bias_hh) or neither, received only " +
                                  (w.bih.defined() ? "bias_ih" : "bias_hh"));
  }
  if (w.bih.defined()) {
    checkVector(w.bih, s.gates * s.H, op, "bias_ih", "gates*hidden");
    checkVector(w.bhh, s.gates * s.H, op, "bias_hh", "gates*hidden");
    for (const Tensor* b : {&w.bih, &w.bhh}) {
      if (b->device() != x.device()) fail(ErrorCode::Device, op + ": a bias is on another device than the input");
    }
  }
  if (!lengths.empty()) {
    if (static_cast<int64_t>(lengths.size()) != s.N) {
      fail(ErrorCode::Shape, op + ": expected one length per sequence (" + std::to_string(s.N) + "), received " +
                                 std::to_string(lengths.size()));
    }
    for (size_t b = 0; b < lengths.size(); ++b) {
      if (lengths[b] < 1 || lengths[b] > s.T) {
        fail(ErrorCode::Argument, op + ": expected lengths in 1.." + std::to_string(s.T) + " (the sequence axis), received " +
                                      std::to_string(lengths[b]) + " for sequence " + std::to_string(b));
      }
    }
  }
  if (cell == RnnCell::Lstm && (h0 == nullptr) != (c0 == nullptr)) {
    fail(ErrorCode::Argument, op + ": an LSTM takes both h0 and c0 or neither, received only " + (h0 ? "h0" : "c0"));
  }
  if (cell != RnnCell::Lstm && c0) fail(ErrorCode::Argument, op + ": only an LSTM has a cell state c0; " + cellName(cell) + " takes h0 only");
  if (h0) checkMatrix(*h0, s.N, s.P, op, "h0", "(batch, " + std::string(w.whr.defined() ? "projSize" : "hidden") + ")", x.device());
  if (c0) checkMatrix(*c0, s.N, s.H, op, "c0", "(batch, hidden)", x.device());
  return s;
}

// The rows of step t's previous state: for the forward scan, step t - 1's (or the
// initial state at t = 0); for the reverse scan, step t + 1's for the rows that ran
// there and the initial state for the rows that start at t (assembled in scratch).
Tensor previousRows(Backend& be, const Tensor& planes, const Tensor& initial, const std::vector<int64_t>& sizes,
                    int64_t t, bool reverse, Tensor& scratch) {
  const int64_t T = planes.dim(0), rows = sizes[t];
  const int64_t prev = reverse ? t + 1 : t - 1;
  if (prev < 0 || prev >= T) return initial.slice(0, rows);
  const int64_t ran = sizes[prev] < rows ? sizes[prev] : rows;
  if (ran == rows) return stepRows(planes, prev, rows);
  if (ran == 0) return initial.slice(0, rows);
  Tensor out = scratch.slice(0, rows);
  be.copyAxisRange(stepOf(planes, prev), 0, out, 0, 0, ran);
  be.copyAxisRange(initial, ran, out, ran, 0, rows - ran);
  return out;
}

}  // namespace

int rnnGateCount(RnnCell cell) {
  switch (cell) {
    case RnnCell::Lstm: return 4;
    case RnnCell::Gru: return 3;
    default: return 1;
  }
}

size_t RnnSaved::bytes() const {
  size_t total = 0;
  for (const Tensor* t : {&xs, &acts, &c, &hCell, &h}) total += t->defined() ? t->bytes() : 0;
  return total;
}

RnnForward rnnForward(Implementation impl, RnnCell cell, const Tensor& x, const RnnWeights& w, bool reverse,
                      bool batchFirst, const std::vector<int64_t>& lengths, const Tensor* h0, const Tensor* c0) {
  const std::string op = cellName(cell);
  const Sizes z = checkArguments(cell, x, w, batchFirst, lengths, h0, c0, op);
  Backend& be = backendOf(impl, op, {&x});
  checkAllFinite(be, {{&w.wih, "weight_ih"}, {&w.whh, "weight_hh"}, {w.bih.defined() ? &w.bih : nullptr, "bias_ih"},
                      {w.bhh.defined() ? &w.bhh : nullptr, "bias_hh"}, {w.whr.defined() ? &w.whr : nullptr, "weight_hr"}},
                 op);
  const int64_t T = z.T, N = z.N, H = z.H, P = z.P, GH = z.gates * H;
  const bool lstm = cell == RnnCell::Lstm, gru = cell == RnnCell::Gru;

  auto s = std::make_shared<RnnSaved>();
  s->cell = cell;
  s->reverse = reverse;
  s->batchFirst = batchFirst;
  s->xShape = x.shape();
  s->hasBias = w.bih.defined();
  s->hasInitialState = h0 != nullptr;
  s->batchSizes.assign(T, N);
  if (!lengths.empty()) {
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
    bool identity = true;
    for (int64_t j = 0; j < N; ++j) identity = identity && order[j] == j;
    if (!identity) s->order = order;
    for (int64_t t = 0; t < T; ++t) {
      s->batchSizes[t] = std::count_if(lengths.begin(), lengths.end(), [&](int64_t l) { return l > t; });
    }
  }
  const std::vector<int64_t>& sizes = s->batchSizes;
  const bool ragged = sizes.back() < N;

  s->xs = reorder(be, batchFirst ? permuted(be, x, {1, 0, 2}) : x, s->order, 1, false);
  s->weights = w;
  if (!s->hasBias) {
    s->weights.bih = Tensor::zeros(be, {GH});
    s->weights.bhh = Tensor::zeros(be, {GH});
  }
  const RnnWeights& W = s->weights;
  s->h0 = h0 ? reorder(be, *h0, s->order, 0, false) : Tensor::zeros(be, {N, P});
  if (lstm) s->c0 = c0 ? reorder(be, *c0, s->order, 0, false) : Tensor::zeros(be, {N, H});

  const ConvGeometry g = projection();
  const Tensor wih = as4(W.wih);
  // The input projection of every step at once: (T*N, I) x (GH, I)^T + bih.
  Tensor pre = Tensor::empty(be, {T, N, GH});
  Tensor preRows = as4(pre.view({T * N, GH}));
  be.convForward(g, as4(s->xs.view({T * N, z.I})), wih, &W.bih, preRows);

  s->h = Tensor::empty(be, {T, N, P});
  if (lstm) {
    s->acts = pre;  // the cell kernel turns the pre-activations into activations in place
    s->c = Tensor::empty(be, {T, N, H});
    s->hCell = W.whr.defined() ? Tensor::empty(be, {T, N, H}) : s->h;
  } else if (gru) {
    s->acts = Tensor::empty(be, {T, N, 4 * H});
  }
  if (ragged) {
    // Rows past their length stay 0 (outputs, and the reverse scan's start from the initial state).
    be.fill(s->h, 0.0f);
    if (lstm) be.fill(s->c, 0.0f);
    if (lstm && W.whr.defined()) be.fill(s->hCell, 0.0f);
  }
  // The per-step projection h (rows, P) x weight_hh^T runs as the data gradient of a 1x1
  // convolution with weight_hh transposed, (P, GH): a plain product of row-major
  // matrices, which GEMMs run faster for few rows than the product with a transpose.
  Tensor whhT = Tensor::empty(be, {P, GH});
  be.permute(W.whh, {1, 0}, whhT);
  const Tensor whhT4 = as4(whhT);
  Tensor recurrent = Tensor::empty(be, {N, GH});
  Tensor hScratch = Tensor::empty(be, {N, P});
  Tensor cScratch = lstm ? Tensor::empty(be, {N, H}) : Tensor();
  const Tensor whr = W.whr.defined() ? as4(W.whr) : Tensor();
  for (int64_t step = 0; step < T; ++step) {
    const int64_t t = reverse ? T - 1 - step : step, rows = sizes[t];
    if (rows == 0) continue;
    Tensor hPrev = previousRows(be, s->h, s->h0, sizes, t, reverse, hScratch);
    Tensor rec = recurrent.slice(0, rows);
    Tensor rec4 = as4(rec);
    be.convBackwardData(g, as4(hPrev), whhT4, rec4);
    Tensor h = stepRows(s->h, t, rows);
    if (lstm) {
      Tensor cPrev = previousRows(be, s->c, s->c0, sizes, t, reverse, cScratch);
      Tensor gates = stepRows(s->acts, t, rows);
      Tensor cell = stepRows(s->c, t, rows);
      Tensor hc = stepRows(s->hCell, t, rows);
      be.lstmStepForward(gates, &rec, &W.bhh, &cPrev, nullptr, cell, hc);
      if (W.whr.defined()) {
        Tensor h4 = as4(h);
        be.convForward(g, as4(hc), whr, nullptr, h4);
      }
    } else if (gru) {
      Tensor act = stepRows(s->acts, t, rows);
      be.gruStepForward(stepRows(pre, t, rows), &rec, &W.bhh, &hPrev, act, h);
    } else {
      be.rnnStepForward(cell == RnnCell::RnnRelu, stepRows(pre, t, rows), &rec, &W.bhh, h);
    }
  }

  RnnForward out;
  // The final state of each row: at its last step (forward), or at step 0 (reverse).
  auto finalState = [&](const Tensor& planes, int64_t width) {
    Tensor last = Tensor::empty(be, {N, width});
    if (reverse) {
      be.copy(stepOf(planes, 0), last);
    } else {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t ending = sizes[t] - (t + 1 < T ? sizes[t + 1] : 0);
        if (ending > 0) be.copyAxisRange(stepOf(planes, t), sizes[t] - ending, last, sizes[t] - ending, 0, ending);
      }
    }
    return reorder(be, last, s->order, 0, true);
  };
  out.hN = finalState(s->h, P);
  if (lstm) out.cN = finalState(s->c, H);
  Tensor y = reorder(be, s->h, s->order, 1, true);
  out.y = batchFirst ? permuted(be, y, {1, 0, 2}) : y;
  out.saved = s;
  return out;
}

RnnBackward rnnBackward(Implementation impl, const RnnSaved& s, const Tensor* dy, const Tensor* dhN, const Tensor* dcN) {
  const std::string op = std::string(cellName(s.cell)) + " backward";
  const RnnCell cell = s.cell;
  const bool lstm = cell == RnnCell::Lstm, gru = cell == RnnCell::Gru;
  const RnnWeights& W = s.weights;
  const int64_t T = s.xs.dim(0), N = s.xs.dim(1), I = s.xs.dim(2), P = s.h.dim(2);
  const int64_t GH = W.wih.dim(0), H = GH / rnnGateCount(cell);
  Backend& be = backendOf(impl, op, {&s.xs});
  Shape yShape = s.xShape;
  yShape[2] = P;
  if (dy) {
    checkOutputGradient(*dy, yShape, op);
    if (dy->device() != s.xs.device()) fail(ErrorCode::Device, op + ": the output gradient is on another device than the input");
  }
  if (dhN) checkMatrix(*dhN, N, P, op, "the gradient of hN", "(batch, hidden or projSize)", s.xs.device());
  if (dcN) checkMatrix(*dcN, N, H, op, "the gradient of cN", "(batch, hidden)", s.xs.device());
  const std::vector<int64_t>& sizes = s.batchSizes;
  const bool ragged = sizes.back() < N;
  const ConvGeometry g = projection();
  const Tensor wih = as4(W.wih), whh = as4(W.whh);

  Tensor dys;
  if (dy) dys = reorder(be, s.batchFirst ? permuted(be, *dy, {1, 0, 2}) : *dy, s.order, 1, false);
  else dys = Tensor::zeros(be, {T, N, P});
  // Gradients of the projections' outputs, per step; 0 in rows past their length.
  Tensor dgIn = Tensor::empty(be, {T, N, GH});
  Tensor dgRec = gru ? Tensor::empty(be, {T, N, GH}) : dgIn;
  if (ragged) {
    be.fill(dgIn, 0.0f);
    if (gru) be.fill(dgRec, 0.0f);
  }
  Tensor dhOut;  // LSTM with projection: the gradient of each step's projected h
  if (W.whr.defined()) {
    dhOut = Tensor::empty(be, {T, N, P});
    if (ragged) be.fill(dhOut, 0.0f);
  }
  Tensor dhRec = Tensor::zeros(be, {N, P});   // through the next step's recurrent projection
  Tensor dc = lstm ? Tensor::zeros(be, {N, H}) : Tensor();
  Tensor carry = gru ? Tensor::zeros(be, {N, H}) : Tensor();  // GRU's direct path z * dh
  const Tensor dhNSorted = dhN ? reorder(be, *dhN, s.order, 0, false) : Tensor();
  const Tensor dcNSorted = dcN ? reorder(be, *dcN, s.order, 0, false) : Tensor();
  if (s.reverse) {
    // Every row's last step is step 0, the first one backward.
    if (dhN) be.copy(dhNSorted, dhRec);
    if (dcN) be.copy(dcNSorted, dc);
  }
  Tensor hScratch = Tensor::empty(be, {N, P});
  Tensor cScratch = lstm ? Tensor::empty(be, {N, H}) : Tensor();
  Tensor dhCell = W.whr.defined() ? Tensor::empty(be, {N, H}) : Tensor();
  const Tensor whr = W.whr.defined() ? as4(W.whr) : Tensor();
  for (int64_t step = T - 1; step >= 0; --step) {
    const int64_t t = s.reverse ? T - 1 - step : step, rows = sizes[t];
    if (rows == 0) continue;
    if (!s.reverse) {
      // Rows whose last step is t: their final state's gradient enters here (those rows are untouched so far).
      const int64_t ending = rows - (t + 1 < T ? sizes[t + 1] : 0);
      if (ending > 0 && dhN) be.copyAxisRange(dhNSorted, rows - ending, dhRec, rows - ending, 0, ending);
      if (ending > 0 && dcN) be.copyAxisRange(dcNSorted, rows - ending, dc, rows - ending, 0, ending);
    }
    Tensor dh = stepRows(dys, t, rows);
    Tensor dhr = dhRec.slice(0, rows);
    Tensor dgI = stepRows(dgIn, t, rows), dgR = stepRows(dgRec, t, rows);
    if (lstm) {
      Tensor cPrev = previousRows(be, s.c, s.c0, sizes, t, s.reverse, cScratch);
      Tensor dcRows = dc.slice(0, rows);
      if (W.whr.defined()) {
        // h = whr (o * tanh(c)): the cell sees the gradient through the projection.
        Tensor total = stepRows(dhOut, t, rows);
        be.binary(BinaryKind::Add, dh, dhr, total);
        Tensor dcell = dhCell.slice(0, rows);
        Tensor dcell4 = as4(dcell);
        be.convBackwardData(g, as4(total), whr, dcell4);
        be.lstmStepBackward(stepRows(s.acts, t, rows), &cPrev, stepRows(s.c, t, rows), dcell, nullptr, nullptr, dcRows, dgI);
      } else {
        be.lstmStepBackward(stepRows(s.acts, t, rows), &cPrev, stepRows(s.c, t, rows), dh, &dhr, nullptr, dcRows, dgI);
      }
    } else if (gru) {
      Tensor hPrev = previousRows(be, s.h, s.h0, sizes, t, s.reverse, hScratch);
      Tensor carryRows = carry.slice(0, rows);
      be.gruStepBackward(stepRows(s.acts, t, rows), &hPrev, dh, &dhr, carryRows, dgI, dgR);
    } else {
      be.rnnStepBackward(cell == RnnCell::RnnRelu, stepRows(s.h, t, rows), dh, &dhr, dgI);
    }
    Tensor dhr4 = as4(dhr);
    be.convBackwardData(g, as4(dgR), whh, dhr4);
  }

  RnnBackward out;
  // Weight gradients over all steps, one call each.
  const Tensor dgInRows = as4(dgIn.view({T * N, GH})), dgRecRows = as4(dgRec.view({T * N, GH}));
  out.grads.dwih = Tensor::empty(be, {GH, I, 1, 1});
  Tensor dbih = Tensor::empty(be, {GH});
  be.convBackwardWeights(g, as4(s.xs.view({T * N, I})), dgInRows, out.grads.dwih, &dbih);
  out.grads.dwih = out.grads.dwih.view({GH, I});
  // Every step has a recurrent term (from the initial state at a row's first step), so
  // bias_hh's gradient sums all steps; only the GRU's differs from bias_ih's.
  Tensor dbhh = Tensor::empty(be, {GH});
  if (gru) be.channelSum(dgRecRows, dbhh);
  else be.copy(dbih, dbhh);
  // weight_hh meets, at each step, the previous step's h: h[t-1] with dg[t] (forward),
  // h[t+1] with dg[t] (reverse; rows starting at t see zeros there and take h0 below).
  out.grads.dwhh = Tensor::zeros(be, {GH, P, 1, 1});
  if (T > 1) {
    Tensor hPrevs = (s.reverse ? s.h.slice(1, T - 1) : s.h.slice(0, T - 1)).view({(T - 1) * N, P});
    Tensor dgs = (s.reverse ? dgRec.slice(0, T - 1) : dgRec.slice(1, T - 1)).view({(T - 1) * N, GH});
    be.convBackwardWeights(g, as4(hPrevs), as4(dgs), out.grads.dwhh, nullptr);
  }
  if (s.hasInitialState) {
    // The initial state meets the gradient of each row's first step.
    Tensor dgFirst = Tensor::empty(be, {N, GH});
    if (!s.reverse) {
      be.copy(stepOf(dgRec, 0), dgFirst);
    } else {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t starting = sizes[t] - (t + 1 < T ? sizes[t + 1] : 0);
        if (starting > 0) be.copyAxisRange(stepOf(dgRec, t), sizes[t] - starting, dgFirst, sizes[t] - starting, 0, starting);
      }
    }
    Tensor dwh0 = Tensor::empty(be, {GH, P, 1, 1});
    be.convBackwardWeights(g, as4(s.h0), as4(dgFirst), dwh0, nullptr);
    be.binary(BinaryKind::Add, out.grads.dwhh, dwh0, out.grads.dwhh);
  }
  out.grads.dwhh = out.grads.dwhh.view({GH, P});
  if (s.hasBias) {
    out.grads.dbih = dbih;
    out.grads.dbhh = dbhh;
  }
  if (W.whr.defined()) {
    out.grads.dwhr = Tensor::empty(be, {P, H, 1, 1});
    be.convBackwardWeights(g, as4(s.hCell.view({T * N, H})), as4(dhOut.view({T * N, P})), out.grads.dwhr, nullptr);
    out.grads.dwhr = out.grads.dwhr.view({P, H});
  }
  Tensor dxs = Tensor::empty(be, {T, N, I});
  Tensor dxRows = as4(dxs.view({T * N, I}));
  be.convBackwardData(g, dgInRows, wih, dxRows);
  Tensor dx = reorder(be, dxs, s.order, 1, true);
  out.dx = s.batchFirst ? permuted(be, dx, {1, 0, 2}) : dx;
  if (s.hasInitialState) {
    if (gru) be.binary(BinaryKind::Add, dhRec, carry, dhRec);
    out.dh0 = reorder(be, dhRec, s.order, 0, true);
    if (lstm) out.dc0 = reorder(be, dc, s.order, 0, true);
  }
  return out;
}

}  // namespace segvol::ops
