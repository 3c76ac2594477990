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

Tensor maxPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g) {
  checkPoolGeometry(x, g, "maxPool");
  Backend& backend = backendOf(impl, "maxPool", {&x});
  Tensor y = Tensor::empty(backend, poolOutputShape(x, g, "maxPool"));
  backend.maxPoolForward(g, x, y);
  return y;
}

Tensor maxPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g) {
  checkPoolGeometry(x, g, "maxPoolBackward");
  const Shape expected = poolOutputShape(x, g, "maxPoolBackward");
  if (dy.shape() != expected) {
    fail(ErrorCode::Shape, "maxPoolBackward: expected the output gradient of shape " + shapeToString(expected) +
                               ", received " + shapeToString(dy.shape()));
  }
  Backend& backend = backendOf(impl, "maxPoolBackward", {&x, &dy});
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.maxPoolBackward(g, x, dy, dx);
  return dx;
}

Tensor avgPoolForward(Implementation impl, const Tensor& x, const PoolGeometry& g) {
  checkPoolGeometry(x, g, "avgPool");
  Backend& backend = backendOf(impl, "avgPool", {&x});
  Tensor y = Tensor::empty(backend, poolOutputShape(x, g, "avgPool"));
  backend.avgPoolForward(g, x, y);
  return y;
}

Tensor avgPoolBackward(Implementation impl, const Tensor& x, const Tensor& dy, const PoolGeometry& g) {
  checkPoolGeometry(x, g, "avgPoolBackward");
  const Shape expected = poolOutputShape(x, g, "avgPoolBackward");
  if (dy.shape() != expected) {
    fail(ErrorCode::Shape, "avgPoolBackward: expected the output gradient of shape " + shapeToString(expected) +
                               ", received " + shapeToString(dy.shape()));
  }
  Backend& backend = backendOf(impl, "avgPoolBackward", {&x, &dy});
  Tensor dx = Tensor::empty(backend, x.shape());
  backend.avgPoolBackward(g, dy, dx);
  return dx;
}

}  // namespace segvol::ops
