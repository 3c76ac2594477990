// Bindings of the convolution family (native/ops/convolution.cpp): convolutions
// (sync, or a Promise computed on the compute thread), transposed convolutions
// and the pixel-wise fully connected layer, forward and backward.
#include "../ops/ops.h"
#include "async.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

// The operands every op of the family takes first: (impl, x, w, bias|null, ...) forward,
// (impl, x, w, dy, ...) backward. Held by value, so async work keeps them alive.
struct Operands {
  Tensor x, w, third;  // third: the bias (undefined when null) or the output gradient
};
Operands forwardOperands(const Napi::CallbackInfo& info, const char* op) {
  return {tensorArg(info, 1, op, "input"), tensorArg(info, 2, op, "weight"), heldTensorArg(info, 3, op, "bias")};
}
Operands backwardOperands(const Napi::CallbackInfo& info, const char* op) {
  return {tensorArg(info, 1, op, "input"), tensorArg(info, 2, op, "weight"), tensorArg(info, 3, op, "output gradient")};
}

// The gradients asked for: needInput, needWeight, needBias from info[first..first + 2].
struct Needs {
  bool input, weight, bias;
};
Needs needsArg(const Napi::CallbackInfo& info, size_t first, const char* op) {
  return {boolArg(info[first], op, "needInput"), boolArg(info[first + 1], op, "needWeight"),
          boolArg(info[first + 2], op, "needBias")};
}

// { dx, dw, db }, null where not asked for
Napi::Value convGrads(Napi::Env env, ops::ConvGrads& g) {
  return tensorsObject(env, {{"dx", &g.dx}, {"dw", &g.dw}, {"db", &g.dbias}});
}

Napi::Value tensorResult(Napi::Env env, Tensor& y) { return wrapOrNull(env, y); }

int spatialRankFromInput(const Tensor& x) { return x.rank() - 2; }

// A transposed convolution's geometry (info[4]) and outputPadding (info[5]).
struct TransposeGeometry {
  ConvGeometry g;
  Triple outputPadding;
};
TransposeGeometry transposeGeometryArg(const Napi::CallbackInfo& info, const Tensor& x, const char* op) {
  const int sr = spatialRankFromInput(x);
  ConvGeometry g = convGeometryArg(info[4], sr, op);
  return {g, tripleFrom(intArrayArg(info[5], op, "outputPadding"), sr, 0, op, "outputPadding")};
}

// conv(impl, x, w, bias|null, geometry), or convAsync: the same as a Promise. The
// work holds its own references to the tensors, so the caller may dispose them meanwhile.
Napi::Value conv(const Napi::CallbackInfo& info, bool async) {
  return guard(info, [&] {
    const Operands a = forwardOperands(info, "conv");
    const ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(a.x), "conv");
    const Implementation impl = implementationArg(info, 0);
    return runMaybeAsync(
        info.Env(), async, [=] { return ops::convForward(impl, a.x, a.w, definedOrNull(a.third), g); }, tensorResult);
  });
}

// convBackward(impl, x, w, dy, geometry, needInput, needWeight, needBias) -> { dx, dw, db },
// or convBackwardAsync: the same as a Promise
Napi::Value convBackward(const Napi::CallbackInfo& info, bool async) {
  return guard(info, [&] {
    const char* name = "convBackward";
    const Operands a = backwardOperands(info, name);
    const ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(a.x), name);
    const Implementation impl = implementationArg(info, 0);
    const Needs need = needsArg(info, 5, name);
    return runMaybeAsync(
        info.Env(), async,
        [=] { return ops::convBackward(impl, a.x, a.w, a.third, g, need.input, need.weight, need.bias); }, convGrads);
  });
}

}  // namespace

Napi::Value Conv(const Napi::CallbackInfo& info) { return conv(info, false); }
Napi::Value ConvAsync(const Napi::CallbackInfo& info) { return conv(info, true); }
Napi::Value ConvBackward(const Napi::CallbackInfo& info) { return convBackward(info, false); }
Napi::Value ConvBackwardAsync(const Napi::CallbackInfo& info) { return convBackward(info, true); }

// convTranspose(impl, x, w, bias|null, geometry, outputPadding)
Napi::Value ConvTranspose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "convTranspose";
    const Operands a = forwardOperands(info, name);
    const TransposeGeometry t = transposeGeometryArg(info, a.x, name);
    return wrapOrNull(info.Env(), ops::convTransposeForward(implementationArg(info, 0), a.x, a.w, definedOrNull(a.third),
                                                            t.g, t.outputPadding));
  });
}

// convTransposeBackward(impl, x, w, dy, geometry, outputPadding, needInput, needWeight, needBias)
Napi::Value ConvTransposeBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "convTransposeBackward";
    const Operands a = backwardOperands(info, name);
    const TransposeGeometry t = transposeGeometryArg(info, a.x, name);
    const Needs need = needsArg(info, 6, name);
    auto grads = ops::convTransposeBackward(implementationArg(info, 0), a.x, a.w, a.third, t.g, t.outputPadding,
                                            need.input, need.weight, need.bias);
    return convGrads(info.Env(), grads);
  });
}

// pixelwise(impl, x, w, bias|null)
Napi::Value Pixelwise(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Operands a = forwardOperands(info, "pixelwise");
    return wrapOrNull(info.Env(), ops::pixelwiseForward(implementationArg(info, 0), a.x, a.w, definedOrNull(a.third)));
  });
}

// pixelwiseBackward(impl, x, w, dy, needInput, needWeight, needBias)
Napi::Value PixelwiseBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "pixelwiseBackward";
    const Operands a = backwardOperands(info, name);
    const Needs need = needsArg(info, 4, name);
    auto grads = ops::pixelwiseBackward(implementationArg(info, 0), a.x, a.w, a.third, need.input, need.weight, need.bias);
    return convGrads(info.Env(), grads);
  });
}

}  // namespace segvol::binding
