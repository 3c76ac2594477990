#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {
namespace {
void checkPoolGeometry(const Tensor& x, const PoolGeometry& g, const std::string& op) {
  checkRank(x, {4, 5}, op, "input", "(N, C, [D,] H, W)");
  checkNotEmpty(x, op, "input");
  if (g.spatialRank != spatialRankOf(x)) {
    fail(ErrorCode::Argument, op + ": geometry is for " + std::to_string(g.spatialRank) + "D but the input " +
                                  shapeToString(x.shape()) + " is " + std::to_string(spatialRankOf(x)) + "D");
  }
  for (int a = 0; a < 3; ++a) {
    if (g.kernel[a] < 1 || g.stride[a] < 1 || g.dilation[a] < 1 || g.padding[a] < 0) {
      fail(ErrorCode::Argument, op + ": expected kernel >= 1, stride >= 1, dilation >= 1 and padding >= 0, received kernel " +
                                    std::to_string(g.kernel[a]) + ", stride " + std::to_string(g.stride[a]) +
                                    ", dilation " + std::to_string(g.dilation[a]) + ", padding " +
                                    std::to_string(g.padding[a]));
    }
    // As PyTorch: a window must always hold at least one real voxel.
    if (2 * g.padding[a] > g.kernel[a]) {
      fail(ErrorCode::Argument, op + ": expected padding at most half the kernel, received padding " +
                                    std::to_string(g.padding[a]) + " for kernel " + std::to_string(g.kernel[a]));
    }
  }
}
}  // namespace

Shape poolOutputShape(const Tensor& x, const PoolGeometry& g, const char* op) {
  Shape out = {x.dim(0), x.dim(1)};
  for (int a = 0; a < g.spatialRank; ++a) {
    const int ga = geometryAxis(g.spatialRank, a);
    const int64_t extent = (g.kernel[ga] - 1) * g.dilation[ga] + 1, padded = x.dim(2 + a) + 2 * g.padding[ga];
    if (extent > padded) {
      fail(ErrorCode::Shape, std::string(op) + ": the window's extent " + std::to_string(extent) +
                                 " exceeds the padded input " + std::to_string(padded) + " along axis " +
                                 axisName(g.spatialRank, a) + " of " + shapeToString(x.shape()) +
                                 "; use a smaller window or dilation, or a larger input");
    }
    out.push_back((padded - extent) / g.stride[ga] + 1);
  }
  return out;
}

namespace {
using PoolForwardFn = void (Backend::*)(const PoolGeometry&, const Tensor&, Tensor&);

Tensor poolForward(Implementation impl, const Tensor& x, const PoolGeometry& g, const char* op, PoolForwardFn run) {
  checkPoolGeometry(x, g, op);
  Backend& backend = backendOf(impl, op, {&x});
  Tensor y = Tensor::empty(backend, poolOutputShape(x, g, op));
  (backend.*run)(g, x, y);
  return y;
}

// Checks shared by both pooling gradients; returns the backend to run on.
Backend& checkPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g,
                           const char* op) {
  checkPoolGeometry(x, g, op);
  checkOutputGradient(dy, poolOutputShape(x, g, op), op);
  return backendOf(impl, op, {&x, &dy});
}
}  // namespace

Tensor maxPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g) {
  return poolForward(impl, x, g, "maxPool", &Backend::maxPoolForward);
}

Tensor avgPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g) {
  return poolForward(impl, x, g, "avgPool", &Backend::avgPoolForward);
}

Tensor maxPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g) {
  Backend& backend = checkPoolBackward(impl, x, dy, g, "maxPoolBackward");
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.maxPoolBackward(g, x, dy, dx);
  return dx;
}

Tensor avgPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g) {
  Backend& backend = checkPoolBackward(impl, x, dy, g, "avgPoolBackward");
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.avgPoolBackward(g, dy, dx);
  return dx;
}

}  // namespace segvol::ops
