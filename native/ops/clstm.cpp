#include "clstm.h"

#include <cstdlib>
#include <string>

#include "checks.h"

namespace segvol::ops {
namespace {

// Permutations between the volume (N, C, D, H, W) and the scan layout
// (T, N, C, A, B) of each axis; a plane keeps its two axes in NCDHW order.
const std::array<std::vector<int>, 3> kToScan = {{{2, 0, 1, 3, 4}, {3, 0, 1, 2, 4}, {4, 0, 1, 2, 3}}};
const std::array<std::vector<int>, 3> kFromScan = {{{1, 2, 0, 3, 4}, {1, 2, 3, 0, 4}, {1, 2, 3, 4, 0}}};
const char* const kDirectionNames[6] = {"+D", "-D", "+H", "-H", "+W", "-W"};

ConvGeometry planeGeometry(const ClstmWeights& w) {
  ConvGeometry g;
  g.spatialRank = 2;
  g.padding = {0, (w.wx.dim(2) - 1) / 2, (w.wx.dim(3) - 1) / 2};
  return g;
}

// Plane (A, B) of a direction for a volume of this shape.
std::pair<int64_t, int64_t> planeOf(const Shape& x, int direction) {
  const int axis = direction / 2;
  const std::array<int64_t, 3> spatial = {x[2], x[3], x[4]};
  std::vector<int64_t> rest;
  for (int a = 0; a < 3; ++a) {
    if (a != axis) rest.push_back(spatial[a]);
  }
  return {rest[0], rest[1]};
}

void checkWeights(const Tensor& x, const ClstmWeights& w, int direction, const std::string& op) {
  const std::string dir = std::string("direction ") + std::to_string(direction) + " (" + kDirectionNames[direction] + ")";
  if (w.wx.rank() != 4 || w.wx.dim(0) % 4 != 0 || w.wx.dim(0) == 0) {
    fail(ErrorCode::Shape, op + ": expected wx of " + dir + " with shape (4*O, C, k, k), received " +
                               shapeToString(w.wx.shape()));
  }
  const int64_t o4 = w.wx.dim(0), o = o4 / 4, c = x.dim(1), ka = w.wx.dim(2), kb = w.wx.dim(3);
  if (w.wx.dim(1) != c) {
    fail(ErrorCode::Shape, op + ": expected wx of " + dir + " with " + std::to_string(c) +
                               " input channels like the volume " + shapeToString(x.shape()) + ", received wx " +
                               shapeToString(w.wx.shape()));
  }
  if (ka % 2 == 0 || kb % 2 == 0) {
    fail(ErrorCode::Shape, op + ": expected an odd kernel size ('same' padding keeps the plane size), received " +
                               std::to_string(ka) + "x" + std::to_string(kb) + " in wx of " + dir);
  }
  const auto [a, b] = planeOf(x.shape(), direction);
  if (ka > a || kb > b) {
    fail(ErrorCode::Shape, op + ": the kernel " + std::to_string(ka) + "x" + std::to_string(kb) +
                               " is larger than the " + std::to_string(a) + "x" + std::to_string(b) + " planes that " +
                               dir + " scans in the volume " + shapeToString(x.shape()) +
                               "; use a smaller kernel or a larger volume");
  }
  const Shape whShape = {o4, o, ka, kb};
  if (w.wh.shape() != whShape) {
    fail(ErrorCode::Shape, op + ": expected wh of " + dir + " with shape " + shapeToString(whShape) + ", received " +
                               shapeToString(w.wh.shape()));
  }
  checkVector(w.bx, o4, op, std::string("bx of ") + dir, "4*O, gates i, f, g, o");
  checkVector(w.bh, o4, op, std::string("bh of ") + dir, "4*O, gates i, f, g, o");
  if (w.peep.defined()) {
    const Shape peepShape = {3, o, a, b};
    if (w.peep.shape() != peepShape) {
      fail(ErrorCode::Shape, op + ": expected the peepholes of " + dir + " with shape " + shapeToString(peepShape) +
                                 " (w_ci, w_cf, w_co over the " + std::to_string(a) + "x" + std::to_string(b) +
                                 " plane), received " + shapeToString(w.peep.shape()));
    }
    if (w.peep.device() != x.device()) {
      fail(ErrorCode::Device, op + ": the peepholes of " + dir + " are on " + deviceName(w.peep.device()) +
                                  " but the volume is on " + deviceName(x.device()));
    }
  }
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&w.wx, "wx"}, {&w.bx, "bx"}, {&w.wh, "wh"}, {&w.bh, "bh"}}) {
    if (t->device() != x.device()) {
      fail(ErrorCode::Device, op + ": " + name + " of " + dir + " is on " + deviceName(t->device()) +
                                  " but the volume is on " + deviceName(x.device()));
    }
  }
}

// Every weight of the listed directions finite, in one check (one read-back on a GPU).
void checkWeightsFinite(Backend& backend, const ClstmWeights* w, const int* directions, int count, const std::string& op) {
  std::vector<std::pair<const Tensor*, std::string>> named;
  for (int i = 0; i < count; ++i) {
    const std::string dir = std::string(" of direction ") + std::to_string(directions[i]) + " (" + kDirectionNames[directions[i]] + ")";
    named.push_back({&w[i].wx, "wx" + dir});
    named.push_back({&w[i].bx, "bx" + dir});
    named.push_back({&w[i].wh, "wh" + dir});
    named.push_back({&w[i].bh, "bh" + dir});
    if (w[i].peep.defined()) named.push_back({&w[i].peep, "the peepholes" + dir});
  }
  checkAllFinite(backend, named, op);
}

void checkVolume(const Tensor& x, const std::string& op) {
  checkRank(x, {5}, op, "input", "(N, C, D, H, W)");
  checkNotEmpty(x, op, "input");
}

// Forward over all planes of one scan. xs: (T, N, G*C, A, B); w: weights of G
// directions stacked along the output axis (wx (G*4O, C, k, k), wh (G*4O, O, k, k)).
// G > 1 runs G same-shaped directions as one grouped scan (grouped convolutions,
// the cell kernel on N*G rows), every member forward in its own time order.
// keepGates false: the gates are a transient of the scan, freed at its end (backward recomputes them).
ScanPlanes scanForwardPlanes(Backend& be, const Tensor& xs, const ClstmWeights& w, bool reverse, const Tensor* h0,
                             const Tensor* c0, bool keepGates = true, bool zeroState = false) {
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

struct PlaneGrads {
  Tensor dxs;  // (T, N, G*C, A, B), when asked for
  ClstmGrads grads;  // stacked like the weights
  Tensor dh0, dc0;
};

// BPTT over all planes of one (possibly grouped) scan. dys: (T, N, G*O, A, B)
// gradient of every plane's h; initial states only for G = 1.
PlaneGrads scanBackwardPlanes(Backend& be, const Tensor& xs, const ScanPlanes& p, const ClstmWeights& w, bool reverse,
                              const Tensor& dys, const Tensor* dhLast, const Tensor* dcLast, const Tensor* h0,
                              const Tensor* c0, bool needInput, bool zeroState = false) {
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

Tensor permuted(Backend& be, const Tensor& x, const std::vector<int>& perm) {
  Shape out;
  for (int a : perm) out.push_back(x.dim(a));
  Tensor y = Tensor::empty(be, out);
  be.permute(x, perm, y);
  return y;
}

void checkState(const Tensor* h0, const Tensor* c0, const Shape& expected, Device device, const std::string& op) {
  if ((h0 == nullptr) != (c0 == nullptr)) {
    fail(ErrorCode::Argument, op + ": expected both h0 and c0 or neither, received only " + (h0 ? "h0" : "c0"));
  }
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{h0, "h0"}, {c0, "c0"}}) {
    if (!t) continue;
    if (t->shape() != expected) {
      fail(ErrorCode::Shape, op + ": expected " + name + " of shape " + shapeToString(expected) +
                                 " (N, O, plane), received " + shapeToString(t->shape()));
    }
    if (t->device() != device) fail(ErrorCode::Device, op + ": " + name + " is on another device than the volume");
  }
}

}  // namespace

ScanForward clstmScanForward(Implementation impl, const Tensor& x, const ClstmWeights& w, int direction,
                             const Tensor* h0, const Tensor* c0, bool recompute, bool zeroState) {
  const std::string op = "clstmScan";
  checkVolume(x, op);
  if (direction < 0 || direction > 5) {
    fail(ErrorCode::Argument, op + ": expected direction 0..5 (+D, -D, +H, -H, +W, -W), received " +
                                  std::to_string(direction));
  }
  Backend& be = backendFor(x.device(), impl);
  checkWeights(x, w, direction, op);
  checkWeightsFinite(be, &w, &direction, 1, op);
  const auto [A, B] = planeOf(x.shape(), direction);
  const int64_t O = w.wx.dim(0) / 4, N = x.dim(0);
  checkState(h0, c0, {N, O, A, B}, x.device(), op);

  auto saved = std::make_shared<ScanSaved>();
  saved->direction = direction;
  saved->xShape = x.shape();
  saved->weights = w;
  if (h0) {
    saved->h0 = *h0;
    saved->c0 = *c0;
  }
  const int axis = direction / 2;
  const bool reverse = direction % 2 == 1;
  saved->xs = permuted(be, x, kToScan[axis]);
  saved->zeroState = zeroState && !h0;
  saved->planes = scanForwardPlanes(be, saved->xs, w, reverse, h0, c0, !recompute, saved->zeroState);
  const int64_t T = saved->xs.dim(0), last = reverse ? 0 : T - 1;
  ScanForward out;
  out.h = permuted(be, saved->planes.h, kFromScan[axis]);
  out.hLast = saved->planes.h.slice(last, 1).view({N, O, A, B});
  out.cLast = saved->planes.c.slice(last, 1).view({N, O, A, B});
  out.saved = saved;
  return out;
}

ScanBackward clstmScanBackward(Implementation impl, const ScanSaved& saved, const Tensor* dh, const Tensor* dhLast,
                               const Tensor* dcLast) {
  const std::string op = "clstmScanBackward";
  Backend& be = backendFor(saved.xs.device(), impl);
  const int axis = saved.direction / 2;
  const int64_t N = saved.xShape[0], O = saved.weights.wx.dim(0) / 4;
  const auto [A, B] = planeOf(saved.xShape, saved.direction);
  Shape hShape = saved.xShape;
  hShape[1] = O;
  Tensor dys;
  if (dh) {
    if (dh->shape() != hShape) {
      fail(ErrorCode::Shape, op + ": expected the output gradient of shape " + shapeToString(hShape) +
                                 " (the forward output's), received " + shapeToString(dh->shape()));
    }
    dys = permuted(be, *dh, kToScan[axis]);
  } else {
    Shape scanShape;
    for (int a : kToScan[axis]) scanShape.push_back(hShape[a]);
    dys = Tensor::zeros(be, scanShape);
  }
  const Shape stateShape = {N, O, A, B};
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{dhLast, "dhLast"}, {dcLast, "dcLast"}}) {
    if (t && t->shape() != stateShape) {
      fail(ErrorCode::Shape, op + ": expected " + name + " of shape " + shapeToString(stateShape) + ", received " +
                                 shapeToString(t->shape()));
    }
  }
  const Tensor* h0 = saved.h0.defined() ? &saved.h0 : nullptr;
  const Tensor* c0 = saved.c0.defined() ? &saved.c0 : nullptr;
  PlaneGrads g = scanBackwardPlanes(be, saved.xs, saved.planes, saved.weights, saved.direction % 2 == 1, dys, dhLast,
                                    dcLast, h0, c0, true, saved.zeroState);
  ScanBackward out;
  out.dx = permuted(be, g.dxs, kFromScan[axis]);
  out.grads = g.grads;
  out.dh0 = g.dh0;
  out.dc0 = g.dc0;
  return out;
}

size_t PyramidSaved::bytes() const {
  size_t total = 0;
  for (const ScanGroup& g : groups) total += g.planes.bytes();
  return total;
}

namespace {

// Scan shape (T, A, B) of a direction.
std::array<int64_t, 3> scanShapeOf(const Shape& x, int direction) {
  const auto [a, b] = planeOf(x, direction);
  return {x[2 + direction / 2], a, b};
}

// How many directions a grouped scan may hold. CUDA: 6 (one launch per step
// does the work of up to six, which small planes need to fill a GPU). CPU: the
// +/- pair when the input has fewer than 8 channels, else one direction at a
// time. Measured on 2 cores, forward + backward of 8x64x64, k=7: C=5, O=16 pairs
// 427-435 ms vs 462-488 single (the grouped input convolution fills oneDNN's
// 8-channel blocks better); C=25, O=32 pairs 1916-2284 ms vs 1796-1894 single.
// SEGVOL_SCAN_GROUPS (1..6) overrides it, for tests and benchmarks.
int scanGroupLimit(const Backend& be, int64_t inputChannels) {
  if (const char* env = std::getenv("SEGVOL_SCAN_GROUPS")) {
    const int v = std::atoi(env);
    if (v >= 1 && v <= 6) return v;
  }
  if (be.device() == Device::Cuda) return 6;
  return inputChannels < 8 ? 2 : 1;
}

// The directions that run together: a +/- pair of an axis always has one scan
// shape; pairs of different axes join when their shapes match too (H == W, say).
std::vector<std::vector<int>> scanGroups(const Shape& x, int limit) {
  std::vector<std::vector<int>> groups;
  for (int axis = 0; axis < 3; ++axis) {
    const int plus = 2 * axis, minus = plus + 1;
    if (limit < 2) {
      groups.push_back({plus});
      groups.push_back({minus});
      continue;
    }
    bool joined = false;
    for (auto& group : groups) {
      if (scanShapeOf(x, group[0]) == scanShapeOf(x, plus) && static_cast<int>(group.size()) + 2 <= limit) {
        group.push_back(plus);
        group.push_back(minus);
        joined = true;
        break;
      }
    }
    if (!joined) groups.push_back({plus, minus});
  }
  return groups;
}

// v: (N, K, D, H, W) in the group's scan layout (T, N, G*K, A, B): member j's
// channels hold v re-laid along its axis, time-reversed for a minus direction
// of a grouped scan (so every member scans forward in grouped time). A group of
// one keeps its own time order (the scan runs it backwards instead) and takes v
// in its axis' scan layout from `byAxis`, re-laid once for the +/- directions.
Tensor stackForGroup(Backend& be, const Tensor& v, const std::vector<int>& dirs, std::array<Tensor, 3>& byAxis) {
  const int64_t G = static_cast<int64_t>(dirs.size());
  const int firstAxis = dirs[0] / 2;
  if (G == 1) {
    // Groups come axis by axis: an earlier axis' copy is not needed again.
    for (int a = 0; a < 3; ++a) {
      if (a != firstAxis) byAxis[a].release();
    }
    Tensor& relaid = byAxis[firstAxis];
    if (!relaid.defined()) relaid = permuted(be, v, kToScan[firstAxis]);
    return relaid;
  }
  Shape scan;
  for (int a : kToScan[firstAxis]) scan.push_back(v.dim(a));
  const int64_t T = scan[0], N = scan[1], K = scan[2], A = scan[3], B = scan[4];
  Tensor stacked = Tensor::empty(be, {G, T * N, K * A * B});
  for (int64_t j = 0; j < G; ++j) {
    Tensor slot = stacked.slice(j, 1).view(scan);
    const int axis = dirs[j] / 2;
    if (dirs[j] % 2 == 0) {
      be.permute(v, kToScan[axis], slot);
    } else {
      // The + direction of this axis was stacked just before: flip its copy.
      be.flip(stacked.slice(j - 1, 1).view(scan), {0}, slot);
    }
  }
  Tensor out = Tensor::empty(be, {T * N, G, K * A * B});
  be.permute(stacked, {1, 0, 2}, out);
  return out.view({T, N, G * K, A, B});
}

// Adds the members' parts of a scan-layout tensor (T, N, G*K, A, B) to acc
// (N, K, D, H, W; created on first use), each back in volume layout and, for the
// minus directions of a grouped scan, back in their own time order.
void addUnstacked(Backend& be, const Tensor& grouped, const std::vector<int>& dirs, Tensor& acc) {
  const int64_t G = static_cast<int64_t>(dirs.size());
  const int64_t T = grouped.dim(0), N = grouped.dim(1), K = grouped.dim(2) / G, A = grouped.dim(3), B = grouped.dim(4);
  const Shape part = {T, N, K, A, B};
  Tensor split = grouped;
  if (G > 1) {
    split = Tensor::empty(be, {G, T * N, K * A * B});
    be.permute(grouped.view({T * N, G, K * A * B}), {1, 0, 2}, split);
  }
  for (int64_t j = 0; j < G; ++j) {
    Tensor member = G > 1 ? split.slice(j, 1).view(part) : grouped;
    if (G > 1 && dirs[j] % 2 == 1) {
      Tensor forward = Tensor::empty(be, part);
      be.flip(member, {0}, forward);
      member = forward;
    }
    Tensor volume = permuted(be, member, kFromScan[dirs[j] / 2]);
    if (acc.defined()) be.binary(BinaryKind::Add, acc, volume, acc); else acc = volume;
  }
}

// The group's weights stacked along the output axis (member j's rows j*4O ...).
ClstmWeights stackWeights(Backend& be, const std::array<ClstmWeights, 6>& w, const std::vector<int>& dirs) {
  if (dirs.size() == 1) return w[dirs[0]];
  const int64_t G = static_cast<int64_t>(dirs.size());
  auto stack = [&](Tensor ClstmWeights::*field) {
    const Tensor& first = w[dirs[0]].*field;
    Shape shape = first.shape();
    const int64_t rows = shape[0];
    shape[0] *= G;
    Tensor out = Tensor::empty(be, shape);
    for (int64_t j = 0; j < G; ++j) {
      Tensor dst = out.slice(j * rows, rows);
      be.copy(w[dirs[j]].*field, dst);
    }
    return out;
  };
  return {stack(&ClstmWeights::wx), stack(&ClstmWeights::bx), stack(&ClstmWeights::wh), stack(&ClstmWeights::bh), Tensor()};
}

}  // namespace

PyramidForward pyramidLstmForward(Implementation impl, const Tensor& x, const std::array<ClstmWeights, 6>& w,
                                  bool keepForBackward, ScanSchedule schedule) {
  const std::string op = "pyramidLstm";
  checkVolume(x, op);
  Backend& be = backendFor(x.device(), impl);
  for (int d = 0; d < 6; ++d) {
    checkWeights(x, w[d], d, op);
    if (w[d].wx.shape() != w[0].wx.shape()) {
      fail(ErrorCode::Shape, op + ": expected all six directions' wx of one shape " + shapeToString(w[0].wx.shape()) +
                                 ", received " + shapeToString(w[d].wx.shape()) + " for direction " + std::to_string(d));
    }
  }
  const int all[6] = {0, 1, 2, 3, 4, 5};
  checkWeightsFinite(be, w.data(), all, 6, op);
  ScopedRange range(be, "pyramidLstm");
  auto saved = std::make_shared<PyramidSaved>();
  saved->xShape = x.shape();
  saved->x = x;  // referenced, not copied: backward re-lays it
  saved->weights = w;
  if (schedule.groupLimit < 0 || schedule.groupLimit > 6) {
    fail(ErrorCode::Argument, op + ": expected a scan group limit 1..6 (0: the backend's default), received " + std::to_string(schedule.groupLimit));
  }
  PyramidForward out;
  std::array<Tensor, 3> xsByAxis;
  const int limit = schedule.groupLimit > 0 ? schedule.groupLimit : scanGroupLimit(be, x.dim(1));
  for (const std::vector<int>& dirs : scanGroups(x.shape(), limit)) {
    ScopedRange scanRange(be, dirs.size() == 1 ? kDirectionNames[dirs[0]] : "grouped scan");
    Tensor xs = stackForGroup(be, x, dirs, xsByAxis);
    ClstmWeights weights = stackWeights(be, w, dirs);
    const bool reverse = dirs.size() == 1 && dirs[0] % 2 == 1;
    ScanPlanes planes = scanForwardPlanes(be, xs, weights, reverse, nullptr, nullptr, keepForBackward && !schedule.recompute);
    addUnstacked(be, planes.h, dirs, out.y);
    // Inference drops each group's planes once its output is summed: the peak is one group's.
    if (keepForBackward) saved->groups.push_back({dirs, weights, planes});
  }
  out.saved = saved;
  return out;
}

PyramidBackward pyramidLstmBackward(Implementation impl, const PyramidSaved& saved, const Tensor& dy) {
  const std::string op = "pyramidLstmBackward";
  Shape yShape = saved.xShape;
  yShape[1] = saved.weights[0].wx.dim(0) / 4;
  checkOutputGradient(dy, yShape, op);
  if (saved.groups.empty()) {
    fail(ErrorCode::Argument, op + ": the forward pass kept nothing for backward (it ran for inference); "
                                   "run the forward pass for training, e.g. model.forward(x, { keepTape: true })");
  }
  Backend& be = backendFor(dy.device(), impl);
  ScopedRange range(be, "pyramidLstmBackward");
  PyramidBackward out;
  std::array<Tensor, 3> xsByAxis, dysByAxis;
  for (const ScanGroup& group : saved.groups) {
    const std::vector<int>& dirs = group.directions;
    const int64_t G = static_cast<int64_t>(dirs.size()), O4 = group.weights.wx.dim(0) / G;
    Tensor xs = stackForGroup(be, saved.x, dirs, xsByAxis);
    Tensor dys = stackForGroup(be, dy, dirs, dysByAxis);
    const bool reverse = G == 1 && dirs[0] % 2 == 1;
    PlaneGrads g = scanBackwardPlanes(be, xs, group.planes, group.weights, reverse, dys, nullptr, nullptr, nullptr,
                                      nullptr, true);
    for (int64_t j = 0; j < G; ++j) {
      // Views into the stacked gradients: member j's rows.
      ClstmGrads& d = out.grads[dirs[j]];
      d.dwx = g.grads.dwx.slice(j * O4, O4);
      d.dbx = g.grads.dbx.slice(j * O4, O4);
      d.dwh = g.grads.dwh.slice(j * O4, O4);
      d.dbh = g.grads.dbh.slice(j * O4, O4);
    }
    addUnstacked(be, g.dxs, dirs, out.dx);
  }
  return out;
}

}  // namespace segvol::ops
