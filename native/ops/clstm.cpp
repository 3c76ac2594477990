// The C-LSTM scan and the PyraMiD-LSTM layer: checks, layouts (volume <->
// scan layout) and the grouping of directions; the planes of a scan are
// computed by clstm_planes.cpp.
#include "clstm.h"

#include <cstdlib>
#include <string>

#include "checks.h"
#include "clstm_planes.h"
#include "compose.h"

namespace segvol::ops {
namespace {

// Permutations between the volume (N, C, D, H, W) and the scan layout
// (T, N, C, A, B) of each axis; a plane keeps its two axes in NCDHW order.
const std::array<std::vector<int>, 3> kToScan = {{{2, 0, 1, 3, 4}, {3, 0, 1, 2, 4}, {4, 0, 1, 2, 3}}};
const std::array<std::vector<int>, 3> kFromScan = {{{1, 2, 0, 3, 4}, {1, 2, 3, 0, 4}, {1, 2, 3, 4, 0}}};
const char* const kDirectionNames[6] = {"+D", "-D", "+H", "-H", "+W", "-W"};

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
