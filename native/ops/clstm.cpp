#include "clstm.h"

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

void checkWeights(Backend& backend, const Tensor& x, const ClstmWeights& w, int direction, const std::string& op) {
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
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&w.wx, "wx"}, {&w.bx, "bx"}, {&w.wh, "wh"}, {&w.bh, "bh"}}) {
    if (t->device() != x.device()) {
      fail(ErrorCode::Device, op + ": " + name + " of " + dir + " is on " + deviceName(t->device()) +
                                  " but the volume is on " + deviceName(x.device()));
    }
    checkFinite(backend, *t, op, std::string(name) + " of " + dir);
  }
}

void checkVolume(const Tensor& x, const std::string& op) {
  checkRank(x, {5}, op, "input", "(N, C, D, H, W)");
  checkNotEmpty(x, op, "input");
}

// Forward over all planes of one direction; xs: (T, N, C, A, B).
ScanPlanes scanForwardPlanes(Backend& be, const Tensor& xs, const ClstmWeights& w, bool reverse, const Tensor* h0,
                             const Tensor* c0) {
  const int64_t T = xs.dim(0), N = xs.dim(1), C = xs.dim(2), A = xs.dim(3), B = xs.dim(4);
  const int64_t O4 = w.wx.dim(0), O = O4 / 4;
  const ConvGeometry g = planeGeometry(w);
  ScanPlanes p{Tensor::empty(be, {T, N, O4, A, B}), Tensor::empty(be, {T, N, O, A, B}), Tensor::empty(be, {T, N, O, A, B})};
  Tensor gatesBatch = p.gates.view({T * N, O4, A, B});
  be.convForward(g, xs.view({T * N, C, A, B}), w.wx, &w.bx, gatesBatch);
  Tensor recurrent = Tensor::empty(be, {N, O4, A, B});
  const Shape stateShape = {N, O, A, B}, gateShape = {N, O4, A, B};
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s, prev = reverse ? t + 1 : t - 1;
    Tensor gates = p.gates.slice(t, 1).view(gateShape);
    Tensor c = p.c.slice(t, 1).view(stateShape);
    Tensor h = p.h.slice(t, 1).view(stateShape);
    Tensor hPrevPlane, cPrevPlane;
    const Tensor* hPrev = h0;
    const Tensor* cPrev = c0;
    if (s > 0) {
      hPrevPlane = p.h.slice(prev, 1).view(stateShape);
      cPrevPlane = p.c.slice(prev, 1).view(stateShape);
      hPrev = &hPrevPlane;
      cPrev = &cPrevPlane;
    }
    if (hPrev) {
      be.convForward(g, *hPrev, w.wh, nullptr, recurrent);
      be.lstmStepForward(gates, &recurrent, &w.bh, cPrev, c, h);
    } else {
      be.lstmStepForward(gates, nullptr, nullptr, nullptr, c, h);
    }
  }
  return p;
}

struct PlaneGrads {
  Tensor dxs;  // (T, N, C, A, B), when asked for
  ClstmGrads grads;
  Tensor dh0, dc0;
};

// BPTT over all planes of one direction. dys: (T, N, O, A, B) gradient of every plane's h.
PlaneGrads scanBackwardPlanes(Backend& be, const Tensor& xs, const ScanPlanes& p, const ClstmWeights& w, bool reverse,
                              const Tensor& dys, const Tensor* dhLast, const Tensor* dcLast, const Tensor* h0,
                              const Tensor* c0, bool needInput) {
  const int64_t T = xs.dim(0), N = xs.dim(1), C = xs.dim(2), A = xs.dim(3), B = xs.dim(4);
  const int64_t O4 = w.wx.dim(0), O = O4 / 4;
  const ConvGeometry g = planeGeometry(w);
  const Shape stateShape = {N, O, A, B}, gateShape = {N, O4, A, B};
  Tensor dgates = Tensor::empty(be, {T, N, O4, A, B});
  Tensor dc = Tensor::empty(be, stateShape);
  if (dcLast) be.copy(*dcLast, dc); else be.fill(dc, 0.0f);
  Tensor dhRecurrent = Tensor::empty(be, stateShape);
  bool haveRecurrent = dhLast != nullptr;
  if (dhLast) be.copy(*dhLast, dhRecurrent);
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = reverse ? T - 1 - s : s, prev = reverse ? t + 1 : t - 1;
    Tensor cPrevPlane;
    const Tensor* cPrev = c0;
    if (s > 0) {
      cPrevPlane = p.c.slice(prev, 1).view(stateShape);
      cPrev = &cPrevPlane;
    }
    Tensor dg = dgates.slice(t, 1).view(gateShape);
    be.lstmStepBackward(p.gates.slice(t, 1).view(gateShape), cPrev, p.c.slice(t, 1).view(stateShape),
                        dys.slice(t, 1).view(stateShape), haveRecurrent ? &dhRecurrent : nullptr, dc, dg);
    haveRecurrent = s > 0 || h0;
    if (haveRecurrent) be.convBackwardData(g, dg, w.wh, dhRecurrent);
  }

  PlaneGrads out;
  out.grads.dwx = Tensor::empty(be, w.wx.shape());
  out.grads.dbx = Tensor::empty(be, {O4});
  be.convBackwardWeights(g, xs.view({T * N, C, A, B}), dgates.view({T * N, O4, A, B}), out.grads.dwx, &out.grads.dbx);

  // The recurrent weights see every step that had a previous plane: one batched call.
  out.grads.dwh = Tensor::empty(be, w.wh.shape());
  out.grads.dbh = Tensor::empty(be, {O4});
  if (T > 1) {
    Tensor hPrevs = (reverse ? p.h.slice(1, T - 1) : p.h.slice(0, T - 1)).view({(T - 1) * N, O, A, B});
    Tensor dgs = (reverse ? dgates.slice(0, T - 1) : dgates.slice(1, T - 1)).view({(T - 1) * N, O4, A, B});
    be.convBackwardWeights(g, hPrevs, dgs, out.grads.dwh, &out.grads.dbh);
  } else {
    be.fill(out.grads.dwh, 0.0f);
    be.fill(out.grads.dbh, 0.0f);
  }
  if (h0) {
    const int64_t first = reverse ? T - 1 : 0;
    Tensor dg = dgates.slice(first, 1).view(gateShape);
    Tensor dwh0 = Tensor::empty(be, w.wh.shape()), dbh0 = Tensor::empty(be, {O4});
    be.convBackwardWeights(g, *h0, dg, dwh0, &dbh0);
    be.binary(BinaryKind::Add, out.grads.dwh, dwh0, out.grads.dwh);
    be.binary(BinaryKind::Add, out.grads.dbh, dbh0, out.grads.dbh);
    out.dh0 = dhRecurrent;  // the gradient that reached the state before the first plane
    out.dc0 = dc;
  }
  if (needInput) {
    out.dxs = Tensor::empty(be, {T, N, C, A, B});
    Tensor dxsBatch = out.dxs.view({T * N, C, A, B});
    be.convBackwardData(g, dgates.view({T * N, O4, A, B}), w.wx, dxsBatch);
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
                             const Tensor* h0, const Tensor* c0) {
  const std::string op = "clstmScan";
  checkVolume(x, op);
  if (direction < 0 || direction > 5) {
    fail(ErrorCode::Argument, op + ": expected direction 0..5 (+D, -D, +H, -H, +W, -W), received " +
                                  std::to_string(direction));
  }
  Backend& be = backendFor(x.device(), impl);
  checkWeights(be, x, w, direction, op);
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
  saved->planes = scanForwardPlanes(be, saved->xs, w, reverse, h0, c0);
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
                                    dcLast, h0, c0, true);
  ScanBackward out;
  out.dx = permuted(be, g.dxs, kFromScan[axis]);
  out.grads = g.grads;
  out.dh0 = g.dh0;
  out.dc0 = g.dc0;
  return out;
}

size_t PyramidSaved::bytes() const {
  size_t total = 0;
  for (const Tensor& t : xs) total += t.bytes();
  for (const ScanPlanes& p : planes) total += p.bytes();
  return total;
}

PyramidForward pyramidLstmForward(Implementation impl, const Tensor& x, const std::array<ClstmWeights, 6>& w) {
  const std::string op = "pyramidLstm";
  checkVolume(x, op);
  Backend& be = backendFor(x.device(), impl);
  for (int d = 0; d < 6; ++d) {
    checkWeights(be, x, w[d], d, op);
    if (w[d].wx.shape() != w[0].wx.shape()) {
      fail(ErrorCode::Shape, op + ": expected all six directions' wx of one shape " + shapeToString(w[0].wx.shape()) +
                                 ", received " + shapeToString(w[d].wx.shape()) + " for direction " + std::to_string(d));
    }
  }
  auto saved = std::make_shared<PyramidSaved>();
  saved->xShape = x.shape();
  saved->weights = w;
  PyramidForward out;
  for (int axis = 0; axis < 3; ++axis) {
    saved->xs[axis] = permuted(be, x, kToScan[axis]);
    for (int sign = 0; sign < 2; ++sign) {
      const int d = 2 * axis + sign;
      saved->planes[d] = scanForwardPlanes(be, saved->xs[axis], w[d], sign == 1, nullptr, nullptr);
    }
    // Sum the axis' two directions in scan layout, then one permutation back.
    Tensor both = Tensor::empty(be, saved->planes[2 * axis].h.shape());
    be.binary(BinaryKind::Add, saved->planes[2 * axis].h, saved->planes[2 * axis + 1].h, both);
    Tensor h = permuted(be, both, kFromScan[axis]);
    if (out.y.defined()) be.binary(BinaryKind::Add, out.y, h, out.y); else out.y = h;
  }
  out.saved = saved;
  return out;
}

PyramidBackward pyramidLstmBackward(Implementation impl, const PyramidSaved& saved, const Tensor& dy) {
  const std::string op = "pyramidLstmBackward";
  Shape yShape = saved.xShape;
  yShape[1] = saved.weights[0].wx.dim(0) / 4;
  checkOutputGradient(dy, yShape, op);
  Backend& be = backendFor(dy.device(), impl);
  PyramidBackward out;
  for (int axis = 0; axis < 3; ++axis) {
    Tensor dys = permuted(be, dy, kToScan[axis]);  // shared by the axis' two directions
    Tensor dxs;
    for (int sign = 0; sign < 2; ++sign) {
      const int d = 2 * axis + sign;
      PlaneGrads g = scanBackwardPlanes(be, saved.xs[axis], saved.planes[d], saved.weights[d], sign == 1, dys,
                                        nullptr, nullptr, nullptr, nullptr, true);
      out.grads[d] = g.grads;
      if (dxs.defined()) be.binary(BinaryKind::Add, dxs, g.dxs, dxs); else dxs = g.dxs;
    }
    Tensor dx = permuted(be, dxs, kFromScan[axis]);
    if (out.dx.defined()) be.binary(BinaryKind::Add, out.dx, dx, out.dx); else out.dx = dx;
  }
  return out;
}

}  // namespace segvol::ops
