// Bindings of the elementwise ops (native/ops/elementwise.cpp): activations,
// arithmetic, clamping and the sum of squares.
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

ActivationKind activationKindArg(const Napi::Value& v, const char* op) {
  return choiceArg<ActivationKind>(v, op, "activation", "activation ",
                                   {{"tanh", ActivationKind::Tanh}, {"sigmoid", ActivationKind::Sigmoid}, {"relu", ActivationKind::Relu}});
}

}  // namespace

// activation(impl, kind, x)
Napi::Value Activation(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    ActivationKind kind = activationKindArg(info[1], "activation");
    return wrapOrNull(info.Env(), ops::activation(implementationArg(info, 0), kind, tensorArg(info, 2, "activation", "input")));
  });
}

// activationBackward(impl, kind, x, y, dy)
Napi::Value ActivationBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "activationBackward";
    ActivationKind kind = activationKindArg(info[1], name);
    return wrapOrNull(info.Env(), ops::activationBackward(implementationArg(info, 0), kind, tensorArg(info, 2, name, "input"),
                                                          tensorArg(info, 3, name, "output"),
                                                          tensorArg(info, 4, name, "output gradient")));
  });
}

namespace {
// add / mul (impl, a, b)
Napi::Value binary(const Napi::CallbackInfo& info, BinaryKind kind) {
  return guard(info, [&] {
    const char* name = binaryName(kind);
    return wrapOrNull(info.Env(), ops::binary(implementationArg(info, 0), kind, tensorArg(info, 1, name, "a"),
                                              tensorArg(info, 2, name, "b")));
  });
}
}  // namespace

Napi::Value Add(const Napi::CallbackInfo& info) { return binary(info, BinaryKind::Add); }
Napi::Value Mul(const Napi::CallbackInfo& info) { return binary(info, BinaryKind::Mul); }

// scale(impl, x, factor)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::scale(implementationArg(info, 0), tensorArg(info, 1, "scale", "input"),
                                             numberArg(info[2], "scale", "factor")));
  });
}

// sum(impl, tensors[])
Napi::Value Sum(const Napi::CallbackInfo& info) {
  return guard(info, [&] { return wrapOrNull(info.Env(), ops::sum(implementationArg(info, 0), tensorListArg(info[1], "sum"))); });
}

// clamp(impl, x, lo, hi)
Napi::Value Clamp(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::clamp(implementationArg(info, 0), tensorArg(info, 1, "clamp", "input"),
                                             numberArg(info[2], "clamp", "lo"), numberArg(info[3], "clamp", "hi")));
  });
}

// clampBackward(impl, x, lo, hi, dy)
Napi::Value ClampBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "clampBackward";
    return wrapOrNull(info.Env(), ops::clampBackward(implementationArg(info, 0), tensorArg(info, 1, name, "input"),
                                                     numberArg(info[2], name, "lo"), numberArg(info[3], name, "hi"),
                                                     tensorArg(info, 4, name, "output gradient")));
  });
}

// roundToPrecision(impl, x, format: 'bf16' | 'fp16')
Napi::Value RoundToPrecision(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "roundToPrecision";
    const std::string format = stringArg(info[2], name, "format");
    if (format != "bf16" && format != "fp16") {
      fail(ErrorCode::Argument, std::string(name) + ": expected format 'bf16' or 'fp16', received '" + format + "'");
    }
    return wrapOrNull(info.Env(), ops::roundToFormat(implementationArg(info, 0), tensorArg(info, 1, name, "input"),
                                                     format == "bf16" ? FloatFormat::Bf16 : FloatFormat::Fp16));
  });
}

// sumOfSquares(impl, tensors[]) -> number
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const double total = ops::sumOfSquares(implementationArg(info, 0), tensorListArg(info[1], "sumOfSquares"));
    return Napi::Value(Napi::Number::New(info.Env(), total));
  });
}

}  // namespace segvol::binding
