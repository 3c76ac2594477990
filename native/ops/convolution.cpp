#include <string>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {
namespace {

void checkGeometry(const ConvGeometry& g, const std::string& op) {
  for (int a = 0; a < 3; ++a) {
    if (g.stride[a] < 1 || g.dilation[a] < 1 || g.padding[a] < 0) {
      fail(ErrorCode::Argument, op + ": expected stride >= 1, dilation >= 1 and padding >= 0, received stride " +
                                    std::to_string(g.stride[a]) + ", dilation " + std::to_string(g.dilation[a]) +
                                    ", padding " + std::to_string(g.padding[a]));
    }
  }
  if (g.groups < 1) {
    fail(ErrorCode::Argument, op + ": expected groups >= 1, received " + std::to_string(g.groups));
  }
}

// The checks shared by convolution and its transpose. `inner` is the channel
// count the weight's second axis is multiplied by groups to match.
void checkConvOperands(const std::string& op, const Tensor& x, const Tensor& w, const ConvGeometry& g,
                       bool transposed) {
  checkRank(x, {4, 5}, op, "input", "(N, C, [D,] H, W)");
  checkNotEmpty(x, op, "input");
  if (w.rank() != x.rank()) {
    fail(ErrorCode::Shape, op + ": expected weight of rank " + std::to_string(x.rank()) + " like the input " +
                               shapeToString(x.shape()) + ", received " + shapeToString(w.shape()) +
                               (transposed ? "; weight is (C, O/groups, [kD,] kH, kW)"
                                           : "; weight is (O, C/groups, [kD,] kH, kW)"));
  }
  if (g.spatialRank != spatialRankOf(x)) {
    fail(ErrorCode::Argument, op + ": geometry is for " + std::to_string(g.spatialRank) + "D but the input " +
                                  shapeToString(x.shape()) + " is " + std::to_string(spatialRankOf(x)) + "D");
  }
  checkGeometry(g, op);
  checkNotEmpty(w, op, "weight");
  const int64_t c = x.dim(1);
  if (c % g.groups != 0) {
    fail(ErrorCode::Shape, op + ": expected input channels divisible by groups = " + std::to_string(g.groups) +
                               ", received " + std::to_string(c) + " channels in " + shapeToString(x.shape()));
  }
  if (transposed) {
    if (w.dim(0) != c) {
      fail(ErrorCode::Shape, op + ": expected weight's first axis to equal the input channels " + std::to_string(c) +
                                 " (weight is (C, O/groups, k...)), received weight " + shapeToString(w.shape()) +
                                 " for input " + shapeToString(x.shape()));
    }
  } else {
    if (w.dim(1) * g.groups != c) {
      fail(ErrorCode::Shape, op + ": expected weight's second axis = input channels / groups = " +
                                 std::to_string(c / g.groups) + ", received weight " + shapeToString(w.shape()) +
                                 " for input " + shapeToString(x.shape()) +
                                 "; the weight must be (O, C/groups, k...) with C the input's channel count");
    }
    if (w.dim(0) % g.groups != 0) {
      fail(ErrorCode::Shape, op + ": expected output channels " + std::to_string(w.dim(0)) +
                                 " divisible by groups = " + std::to_string(g.groups));
    }
  }
}

void checkBias(const std::string& op, const Tensor* bias, int64_t outChannels) {
  if (bias) checkVector(*bias, outChannels, op, "bias", "one value per output channel");
}

// Output shape of a convolution of x, or ERR_SHAPE when the dilated kernel does not fit.
Shape convOutputShape(const std::string& op, const Tensor& x, const Tensor& w, const ConvGeometry& g) {
  Shape out = {x.dim(0), w.dim(0)};
  for (int a = 0; a < g.spatialRank; ++a) {
    const int ga = geometryAxis(g.spatialRank, a);
    const int64_t in = x.dim(2 + a), extent = (w.dim(2 + a) - 1) * g.dilation[ga] + 1;
    const int64_t padded = in + 2 * g.padding[ga];
    if (extent > padded) {
      fail(ErrorCode::Shape, op + ": the kernel's extent " + std::to_string(extent) + " (kernel " +
                                 std::to_string(w.dim(2 + a)) + ", dilation " + std::to_string(g.dilation[ga]) +
                                 ") exceeds the padded input " + std::to_string(padded) + " along axis " +
                                 axisName(g.spatialRank, a) + " of " + shapeToString(x.shape()) +
                                 "; use a larger input, more padding, or a smaller kernel or dilation");
    }
    out.push_back((padded - extent) / g.stride[ga] + 1);
  }
  return out;
}

Shape transposedOutputShape(const std::string& op, const Tensor& x, const Tensor& w, const ConvGeometry& g,
                            const Triple& outputPadding) {
  Shape out = {x.dim(0), w.dim(1) * g.groups};
  for (int a = 0; a < g.spatialRank; ++a) {
    const int ga = geometryAxis(g.spatialRank, a);
    if (outputPadding[ga] < 0 || (outputPadding[ga] >= g.stride[ga] && outputPadding[ga] >= g.dilation[ga])) {
      fail(ErrorCode::Argument, op + ": expected 0 <= outputPadding < stride or < dilation along axis " +
                                    axisName(g.spatialRank, a) + ", received outputPadding " +
                                    std::to_string(outputPadding[ga]) + " with stride " +
                                    std::to_string(g.stride[ga]));
    }
    const int64_t size = (x.dim(2 + a) - 1) * g.stride[ga] - 2 * g.padding[ga] +
                         (w.dim(2 + a) - 1) * g.dilation[ga] + outputPadding[ga] + 1;
    if (size < 1) {
      fail(ErrorCode::Shape, op + ": the output would have " + std::to_string(size) + " voxels along axis " +
                                 axisName(g.spatialRank, a) + " for input " + shapeToString(x.shape()) +
                                 "; reduce the padding");
    }
    out.push_back(size);
  }
  return out;
}

}  // namespace

Tensor convForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias, const ConvGeometry& g) {
  const std::string op = "conv";
  checkConvOperands(op, x, w, g, false);
  checkBias(op, bias, w.dim(0));
  Backend& backend = backendOf(impl, op, {&x, &w, bias});
  checkAllFinite(backend, {{&w, "weight"}, {bias, "bias"}}, op);
  Tensor y = Tensor::empty(backend, convOutputShape(op, x, w, g));
  backend.convForward(g, x, w, bias, y);
  return y;
}

ConvGrads convBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy, const ConvGeometry& g,
                       bool needInput, bool needWeight, bool needBias) {
  const std::string op = "convBackward";
  checkConvOperands(op, x, w, g, false);
  checkOutputGradient(dy, convOutputShape(op, x, w, g), op);
  Backend& backend = backendOf(impl, op, {&x, &w, &dy});
  ConvGrads grads;
  if (needInput) {
    grads.dx = Tensor::empty(backend, x.shape());
    backend.convBackwardData(g, dy, w, grads.dx);
  }
  if (needBias) grads.dbias = Tensor::empty(backend, {w.dim(0)});
  if (needWeight) {
    grads.dw = Tensor::empty(backend, w.shape());
    backend.convBackwardWeights(g, x, dy, grads.dw, needBias ? &grads.dbias : nullptr);
  } else if (needBias) {
    backend.channelSum(dy, grads.dbias);
  }
  return grads;
}

// A transposed convolution is the data gradient of the convolution whose input
// it produces: forward = conv backward-data, its backward-data = conv forward,
// its weight gradient = conv backward-weights with the roles of x and dy swapped.
Tensor convTransposeForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias,
                            const ConvGeometry& g, const Triple& outputPadding) {
  const std::string op = "convTranspose";
  checkConvOperands(op, x, w, g, true);
  checkBias(op, bias, w.dim(1) * g.groups);
  Backend& backend = backendOf(impl, op, {&x, &w, bias});
  checkAllFinite(backend, {{&w, "weight"}, {bias, "bias"}}, op);
  Tensor y = Tensor::empty(backend, transposedOutputShape(op, x, w, g, outputPadding));
  backend.convBackwardData(g, x, w, y);
  if (bias) backend.addChannelBias(y, *bias);
  return y;
}

ConvGrads convTransposeBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy,
                                const ConvGeometry& g, const Triple& outputPadding, bool needInput, bool needWeight,
                                bool needBias) {
  const std::string op = "convTransposeBackward";
  checkConvOperands(op, x, w, g, true);
  checkOutputGradient(dy, transposedOutputShape(op, x, w, g, outputPadding), op);
  Backend& backend = backendOf(impl, op, {&x, &w, &dy});
  ConvGrads grads;
  if (needInput) {
    grads.dx = Tensor::empty(backend, x.shape());
    backend.convForward(g, dy, w, nullptr, grads.dx);
  }
  if (needWeight) {
    grads.dw = Tensor::empty(backend, w.shape());
    backend.convBackwardWeights(g, dy, x, grads.dw, nullptr);
  }
  if (needBias) {
    grads.dbias = Tensor::empty(backend, {dy.dim(1)});
    backend.channelSum(dy, grads.dbias);
  }
  return grads;
}

namespace {
// A (F, C) weight seen as the (F, C, 1, 1[, 1]) kernel of a 1x1 convolution.
Tensor pixelwiseKernel(const Tensor& x, const Tensor& w, const std::string& op) {
  checkRank(x, {4, 5}, op, "input", "(N, C, [D,] H, W)");
  if (w.rank() != 2 || w.dim(1) != x.dim(1)) {
    fail(ErrorCode::Shape, op + ": expected weight of shape (F, " + std::to_string(x.dim(1)) +
                               ") for an input with " + std::to_string(x.dim(1)) + " channels, received " +
                               shapeToString(w.shape()));
  }
  Shape kernel = {w.dim(0), w.dim(1)};
  for (int a = 2; a < x.rank(); ++a) kernel.push_back(1);
  return w.view(kernel);
}
ConvGeometry pointwise(const Tensor& x) {
  ConvGeometry g;
  g.spatialRank = spatialRankOf(x);
  return g;
}
}  // namespace

Tensor pixelwiseForward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor* bias) {
  return convForward(impl, x, pixelwiseKernel(x, w, "pixelwise"), bias, pointwise(x));
}

ConvGrads pixelwiseBackward(Implementation impl, const Tensor& x, const Tensor& w, const Tensor& dy, bool needInput,
                            bool needWeight, bool needBias) {
  ConvGrads grads = convBackward(impl, x, pixelwiseKernel(x, w, "pixelwiseBackward"), dy, pointwise(x), needInput,
                                 needWeight, needBias);
  if (grads.dw.defined()) grads.dw = grads.dw.view(w.shape());
  return grads;
}

}  // namespace segvol::ops
