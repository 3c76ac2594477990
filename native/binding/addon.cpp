// Module entry: exports the tensor functions and every op, forward and backward.
// Each function only converts arguments and results; checks and compute live in
// native/ops and the backends.
#include <napi.h>

#include "../core/math_mode.h"
#include "../core/profiler.h"
#include "../registry/registry.h"
#include "../cpu/cpu_backend.h"
#include "../ops/ops.h"
#include "async.h"
#include "convert.h"
#include "metrics.h"
#include "recurrent.h"
#include "training.h"
#include "tensor_handle.h"

namespace segvol::binding {
namespace {

Napi::Value wrapOrNull(Napi::Env env, const Tensor& t) {
  return t.defined() ? Napi::Value(TensorHandle::wrap(env, t)) : env.Null();
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Napi::Env env = info.Env();
    auto statuses = backendStatuses();
    Napi::Array out = Napi::Array::New(env, statuses.size());
    for (size_t i = 0; i < statuses.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", statuses[i].name);
      o.Set("available", statuses[i].available);
      o.Set("reason", statuses[i].reason);
      o.Set("detail", statuses[i].detail);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return Napi::Value(out);
  });
}

Napi::Value PrimitiveCacheStatsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    PrimitiveCacheStats s = CpuBackend::primitiveCacheStats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("hits", static_cast<double>(s.hits));
    o.Set("misses", static_cast<double>(s.misses));
    o.Set("entries", static_cast<double>(s.entries));
    return Napi::Value(o);
  });
}

Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    profilingStart();
    return info.Env().Undefined();
  });
}

// (device) -> undefined, once the device has finished every queued op
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    backendFor(deviceArg(info[0], "synchronize")).synchronize();
    return info.Env().Undefined();
  });
}

// (mode: 'fp32' | 'tf32') -> undefined
Napi::Value SetConvMath(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const std::string mode = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if (mode != "fp32" && mode != "tf32") {
      fail(ErrorCode::Argument, "setConvMath: expected 'fp32' or 'tf32', received '" + mode + "'");
    }
    setConvMath(mode == "tf32" ? ConvMath::Tf32 : ConvMath::Fp32);
    return info.Env().Undefined();
  });
}

Napi::Value GetConvMath(const Napi::CallbackInfo& info) {
  return guard(info, [&] { return Napi::String::New(info.Env(), convMath() == ConvMath::Tf32 ? "tf32" : "fp32"); });
}

// -> [{ op, backend, shapes, count, totalMs, flops }]
Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Napi::Env env = info.Env();
    auto records = profilingStop();
    Napi::Array out = Napi::Array::New(env, records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", records[i].op);
      o.Set("backend", records[i].backend);
      o.Set("shapes", records[i].shapes);
      o.Set("count", static_cast<double>(records[i].count));
      o.Set("totalMs", records[i].totalMs);
      o.Set("flops", records[i].flops);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return Napi::Value(out);
  });
}

// tensorFromArray(data: Float32Array, shape: number[], device)
Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      fail(ErrorCode::Argument, "Tensor.fromArray: expected data to be a Float32Array");
    }
    Napi::Float32Array data = info[0].As<Napi::Float32Array>();
    Shape shape = intArrayArg(info[1], "Tensor.fromArray", "shape");
    Device device = deviceArg(info[2], "Tensor.fromArray");
    for (int64_t s : shape) {
      if (s < 0) {
        fail(ErrorCode::Shape, "Tensor.fromArray: expected non-negative sizes, received " + shapeToString(shape));
      }
    }
    if (shape.empty() || shape.size() > static_cast<size_t>(kMaxRank)) {
      fail(ErrorCode::Shape, "Tensor.fromArray: expected a rank between 1 and 5, received " + shapeToString(shape));
    }
    if (static_cast<int64_t>(data.ElementLength()) != elementCount(shape)) {
      fail(ErrorCode::Shape, "Tensor.fromArray: shape " + shapeToString(shape) + " holds " +
                                 std::to_string(elementCount(shape)) + " values, but the data has " +
                                 std::to_string(data.ElementLength()) + "; pass data of exactly that length");
    }
    Backend& backend = backendFor(device);
    Tensor t = Tensor::empty(backend, shape);
    backend.copyFromHost(data.Data(), t);
    return Napi::Value(TensorHandle::wrap(info.Env(), t));
  });
}

// tensorFull(shape: number[], value, device): allocated and filled natively, so a
// shape too large for memory fails with ERR_MEMORY or ERR_SHAPE, not a JS RangeError.
Napi::Value TensorFull(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Shape shape = intArrayArg(info[0], "Tensor.full", "shape");
    const double value = numberArg(info[1], "Tensor.full", "value");
    Backend& backend = backendFor(deviceArg(info[2], "Tensor.full"));
    Tensor t = Tensor::empty(backend, shape);
    backend.fill(t, static_cast<float>(value));
    return Napi::Value(TensorHandle::wrap(info.Env(), t));
  });
}

// memoryStats() -> { cpu: { storages, bytes }, cuda: { storages, bytes } }
Napi::Value MemoryStatsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Napi::Object out = Napi::Object::New(info.Env());
    for (Device device : {Device::Cpu, Device::Cuda}) {
      MemoryStats s = memoryStats(device);
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("tensors", static_cast<double>(TensorHandle::live(device)));
      o.Set("storages", static_cast<double>(s.storages));
      o.Set("bytes", static_cast<double>(s.bytes));
      o.Set("peakBytes", static_cast<double>(s.peakBytes));
      out.Set(deviceName(device), o);
    }
    return Napi::Value(out);
  });
}

// resetPeakMemory(device): the peak restarts from the bytes live now
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    resetPeakMemory(deviceArg(info[0], "resetPeakMemory"));
    return info.Env().Undefined();
  });
}

Napi::Value TensorShape(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.shape", "the tensor");
    Napi::Array out = Napi::Array::New(info.Env(), t.rank());
    for (int i = 0; i < t.rank(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(t.dim(i)));
    return Napi::Value(out);
  });
}

Napi::Value TensorDevice(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(Napi::String::New(info.Env(), deviceName(tensorArg(info, 0, "Tensor.device", "the tensor").device())));
  });
}

Napi::Value TensorToArray(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.toArray", "the tensor");
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t.size()));
    if (t.size()) t.backend().copyToHost(t, out.Data());
    return Napi::Value(out);
  });
}

Napi::Value TensorTo(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.to", "the tensor");
    return Napi::Value(TensorHandle::wrap(info.Env(), ops::copyTo(t, deviceArg(info[1], "Tensor.to"))));
  });
}

Napi::Value TensorReshape(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.reshape", "the tensor");
    Shape shape = intArrayArg(info[1], "Tensor.reshape", "shape");
    if (shape.empty() || shape.size() > static_cast<size_t>(kMaxRank)) {
      fail(ErrorCode::Shape, "Tensor.reshape: expected a rank between 1 and 5, received " + shapeToString(shape));
    }
    return Napi::Value(TensorHandle::wrap(info.Env(), t.view(shape)));
  });
}

Napi::Value TensorDispose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsObject()) fail(ErrorCode::Argument, "Tensor.dispose: expected a tensor handle");
    TensorHandle::Unwrap(info[0].As<Napi::Object>())->dispose();
    return info.Env().Undefined();
  });
}

Napi::Value TensorIsDisposed(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsObject()) fail(ErrorCode::Argument, "Tensor.disposed: expected a tensor handle");
    return Napi::Value(Napi::Boolean::New(info.Env(), TensorHandle::Unwrap(info[0].As<Napi::Object>())->disposed()));
  });
}

Napi::Value convGrads(Napi::Env env, const ops::ConvGrads& g) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dx", wrapOrNull(env, g.dx));
  o.Set("dw", wrapOrNull(env, g.dw));
  o.Set("db", wrapOrNull(env, g.dbias));
  return o;
}

int spatialRankFromInput(const Tensor& x) { return x.rank() - 2; }

// conv(impl, x, w, bias|null, geometry)
Napi::Value Conv(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& x = tensorArg(info, 1, "conv", "input");
    const Tensor& w = tensorArg(info, 2, "conv", "weight");
    const Tensor* b = optionalTensorArg(info, 3, "conv", "bias");
    ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(x), "conv");
    return wrapOrNull(info.Env(), ops::convForward(implementationArg(info, 0), x, w, b, g));
  });
}

// convBackward(impl, x, w, dy, geometry, needInput, needWeight, needBias)
Napi::Value ConvBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& x = tensorArg(info, 1, "convBackward", "input");
    const Tensor& w = tensorArg(info, 2, "convBackward", "weight");
    const Tensor& dy = tensorArg(info, 3, "convBackward", "output gradient");
    ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(x), "convBackward");
    return convGrads(info.Env(), ops::convBackward(implementationArg(info, 0), x, w, dy, g,
                                                   boolArg(info[5], "convBackward", "needInput"),
                                                   boolArg(info[6], "convBackward", "needWeight"),
                                                   boolArg(info[7], "convBackward", "needBias")));
  });
}

// convAsync(impl, x, w, bias|null, geometry) -> Promise of the output. The work holds its
// own references to the tensors, so the caller may dispose them meanwhile.
Napi::Value ConvAsync(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Implementation impl = implementationArg(info, 0);
    const Tensor x = tensorArg(info, 1, "conv", "input");
    const Tensor w = tensorArg(info, 2, "conv", "weight");
    const Tensor* b = optionalTensorArg(info, 3, "conv", "bias");
    const Tensor bias = b ? *b : Tensor();
    const ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(x), "conv");
    return Napi::Value(PromiseWorker<Tensor>::start(
        info.Env(), [=] { return ops::convForward(impl, x, w, bias.defined() ? &bias : nullptr, g); },
        [](Napi::Env env, Tensor& y) { return Napi::Value(TensorHandle::wrap(env, y)); }));
  });
}

// convBackwardAsync(impl, x, w, dy, geometry, needInput, needWeight, needBias) -> Promise of { dx, dw, db }
Napi::Value ConvBackwardAsync(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Implementation impl = implementationArg(info, 0);
    const Tensor x = tensorArg(info, 1, "convBackward", "input");
    const Tensor w = tensorArg(info, 2, "convBackward", "weight");
    const Tensor dy = tensorArg(info, 3, "convBackward", "output gradient");
    const ConvGeometry g = convGeometryArg(info[4], spatialRankFromInput(x), "convBackward");
    const bool needInput = boolArg(info[5], "convBackward", "needInput");
    const bool needWeight = boolArg(info[6], "convBackward", "needWeight");
    const bool needBias = boolArg(info[7], "convBackward", "needBias");
    return Napi::Value(PromiseWorker<ops::ConvGrads>::start(
        info.Env(), [=] { return ops::convBackward(impl, x, w, dy, g, needInput, needWeight, needBias); },
        [](Napi::Env env, ops::ConvGrads& grads) { return convGrads(env, grads); }));
  });
}

// convTranspose(impl, x, w, bias|null, geometry, outputPadding)
Napi::Value ConvTranspose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& x = tensorArg(info, 1, "convTranspose", "input");
    const Tensor& w = tensorArg(info, 2, "convTranspose", "weight");
    const Tensor* b = optionalTensorArg(info, 3, "convTranspose", "bias");
    const int sr = spatialRankFromInput(x);
    ConvGeometry g = convGeometryArg(info[4], sr, "convTranspose");
    Triple op = tripleFrom(intArrayArg(info[5], "convTranspose", "outputPadding"), sr, 0, "convTranspose", "outputPadding");
    return wrapOrNull(info.Env(), ops::convTransposeForward(implementationArg(info, 0), x, w, b, g, op));
  });
}

// convTransposeBackward(impl, x, w, dy, geometry, outputPadding, needInput, needWeight, needBias)
Napi::Value ConvTransposeBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "convTransposeBackward";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& w = tensorArg(info, 2, name, "weight");
    const Tensor& dy = tensorArg(info, 3, name, "output gradient");
    const int sr = spatialRankFromInput(x);
    ConvGeometry g = convGeometryArg(info[4], sr, name);
    Triple op = tripleFrom(intArrayArg(info[5], name, "outputPadding"), sr, 0, name, "outputPadding");
    return convGrads(info.Env(), ops::convTransposeBackward(implementationArg(info, 0), x, w, dy, g, op,
                                                            boolArg(info[6], name, "needInput"),
                                                            boolArg(info[7], name, "needWeight"),
                                                            boolArg(info[8], name, "needBias")));
  });
}

// pixelwise(impl, x, w, bias|null)
Napi::Value Pixelwise(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& x = tensorArg(info, 1, "pixelwise", "input");
    const Tensor& w = tensorArg(info, 2, "pixelwise", "weight");
    const Tensor* b = optionalTensorArg(info, 3, "pixelwise", "bias");
    return wrapOrNull(info.Env(), ops::pixelwiseForward(implementationArg(info, 0), x, w, b));
  });
}

// pixelwiseBackward(impl, x, w, dy, needInput, needWeight, needBias)
Napi::Value PixelwiseBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "pixelwiseBackward";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& w = tensorArg(info, 2, name, "weight");
    const Tensor& dy = tensorArg(info, 3, name, "output gradient");
    return convGrads(info.Env(), ops::pixelwiseBackward(implementationArg(info, 0), x, w, dy,
                                                        boolArg(info[4], name, "needInput"),
                                                        boolArg(info[5], name, "needWeight"),
                                                        boolArg(info[6], name, "needBias")));
  });
}

// maxPool / avgPool (impl, x, geometry)
template <bool Max>
Napi::Value Pool(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = Max ? "maxPool" : "avgPool";
    const Tensor& x = tensorArg(info, 1, name, "input");
    PoolGeometry g = poolGeometryArg(info[2], spatialRankFromInput(x), name);
    Implementation impl = implementationArg(info, 0);
    return wrapOrNull(info.Env(), Max ? ops::maxPoolForward(impl, x, g) : ops::avgPoolForward(impl, x, g));
  });
}

// maxPoolBackward / avgPoolBackward (impl, x, dy, geometry)
template <bool Max>
Napi::Value PoolBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = Max ? "maxPoolBackward" : "avgPoolBackward";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& dy = tensorArg(info, 2, name, "output gradient");
    PoolGeometry g = poolGeometryArg(info[3], spatialRankFromInput(x), name);
    Implementation impl = implementationArg(info, 0);
    return wrapOrNull(info.Env(), Max ? ops::maxPoolBackward(impl, x, dy, g) : ops::avgPoolBackward(impl, x, dy, g));
  });
}

UpsampleMode upsampleModeArg(const Napi::Value& v, const char* op) {
  std::string mode = stringArg(v, op, "mode");
  if (mode == "nearest") return UpsampleMode::Nearest;
  if (mode == "linear") return UpsampleMode::Linear;
  fail(ErrorCode::Argument, std::string(op) + ": expected mode 'nearest' or 'linear', received '" + mode + "'");
}

// upsample(impl, x, size, mode, alignCorners)
Napi::Value Upsample(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& x = tensorArg(info, 1, "upsample", "input");
    return wrapOrNull(info.Env(), ops::upsampleForward(implementationArg(info, 0), x,
                                                       intArrayArg(info[2], "upsample", "size"),
                                                       upsampleModeArg(info[3], "upsample"),
                                                       boolArg(info[4], "upsample", "alignCorners")));
  });
}

// upsampleBackward(impl, dy, inputSize, mode, alignCorners)
Napi::Value UpsampleBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "upsampleBackward";
    const Tensor& dy = tensorArg(info, 1, name, "output gradient");
    return wrapOrNull(info.Env(), ops::upsampleBackward(implementationArg(info, 0), dy,
                                                        intArrayArg(info[2], name, "inputSize"),
                                                        upsampleModeArg(info[3], name), boolArg(info[4], name, "alignCorners")));
  });
}

// batchNorm(impl, x, gamma, beta, runningMean, runningVar, training, momentum, eps) -> { y, mean, invStd }
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "batchNorm";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& gamma = tensorArg(info, 2, name, "gamma");
    const Tensor& beta = tensorArg(info, 3, name, "beta");
    Tensor& runningMean = TensorHandle::unwrap(info[4], name, "runningMean");
    Tensor& runningVar = TensorHandle::unwrap(info[5], name, "runningVar");
    auto r = ops::batchNormForward(implementationArg(info, 0), x, gamma, beta, runningMean, runningVar,
                                   boolArg(info[6], name, "training"), numberArg(info[7], name, "momentum"),
                                   numberArg(info[8], name, "eps"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("y", wrapOrNull(info.Env(), r.y));
    o.Set("mean", wrapOrNull(info.Env(), r.mean));
    o.Set("invStd", wrapOrNull(info.Env(), r.invStd));
    return Napi::Value(o);
  });
}

// batchNormBackward(impl, x, gamma, mean, invStd, training, dy) -> { dx, dgamma, dbeta }
Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "batchNormBackward";
    auto g = ops::batchNormBackward(implementationArg(info, 0), tensorArg(info, 1, name, "input"),
                                    tensorArg(info, 2, name, "gamma"), tensorArg(info, 3, name, "mean"),
                                    tensorArg(info, 4, name, "invStd"), boolArg(info[5], name, "training"),
                                    tensorArg(info, 6, name, "output gradient"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("dx", wrapOrNull(info.Env(), g.dx));
    o.Set("dgamma", wrapOrNull(info.Env(), g.dgamma));
    o.Set("dbeta", wrapOrNull(info.Env(), g.dbeta));
    return Napi::Value(o);
  });
}

ActivationKind activationKindArg(const Napi::Value& v, const char* op) {
  std::string kind = stringArg(v, op, "activation");
  if (kind == "tanh") return ActivationKind::Tanh;
  if (kind == "sigmoid") return ActivationKind::Sigmoid;
  if (kind == "relu") return ActivationKind::Relu;
  fail(ErrorCode::Argument, std::string(op) + ": expected activation 'tanh', 'sigmoid' or 'relu', received '" + kind + "'");
}

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

template <BinaryKind Kind>
Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = Kind == BinaryKind::Add ? "add" : "mul";
    return wrapOrNull(info.Env(), ops::binary(implementationArg(info, 0), Kind, tensorArg(info, 1, name, "a"),
                                              tensorArg(info, 2, name, "b")));
  });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::scale(implementationArg(info, 0), tensorArg(info, 1, "scale", "input"),
                                             numberArg(info[2], "scale", "factor")));
  });
}

std::vector<const Tensor*> tensorListArg(const Napi::Value& v, const char* op) {
  if (!v.IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected an array of tensors");
  Napi::Array array = v.As<Napi::Array>();
  std::vector<const Tensor*> xs;
  for (uint32_t i = 0; i < array.Length(); ++i) xs.push_back(&TensorHandle::unwrap(array.Get(i), op, "each tensor"));
  return xs;
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

// sumOfSquares(impl, tensors[]) -> number
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(Napi::Number::New(info.Env(), ops::sumOfSquares(implementationArg(info, 0), tensorListArg(info[1], "sumOfSquares"))));
  });
}

// concat(impl, tensors[], axis)
Napi::Value Concat(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::concat(implementationArg(info, 0), tensorListArg(info[1], "concat"),
                                              static_cast<int>(intArg(info[2], "concat", "axis"))));
  });
}

// narrow(impl, x, axis, start, length)
Napi::Value Narrow(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::narrow(implementationArg(info, 0), tensorArg(info, 1, "narrow", "input"),
                                              static_cast<int>(intArg(info[2], "narrow", "axis")),
                                              intArg(info[3], "narrow", "start"), intArg(info[4], "narrow", "length")));
  });
}

// narrowBackward(impl, dy, inputShape, axis, start)
Napi::Value NarrowBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "narrowBackward";
    return wrapOrNull(info.Env(), ops::narrowBackward(implementationArg(info, 0), tensorArg(info, 1, name, "output gradient"),
                                                      intArrayArg(info[2], name, "inputShape"),
                                                      static_cast<int>(intArg(info[3], name, "axis")),
                                                      intArg(info[4], name, "start")));
  });
}

// firstNonFinite(tensors[]) -> index of the first tensor holding a NaN or Inf, or -1.
// Tensors are grouped by device so a GPU reads back once per call.
Napi::Value FirstNonFinite(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    std::vector<const Tensor*> xs = tensorListArg(info[0], "firstNonFinite");
    int first = -1;
    for (Device device : {Device::Cpu, Device::Cuda}) {
      std::vector<const Tensor*> group;
      std::vector<int> index;
      for (size_t i = 0; i < xs.size(); ++i) {
        if (xs[i]->device() == device && xs[i]->size() > 0) {
          group.push_back(xs[i]);
          index.push_back(static_cast<int>(i));
        }
      }
      if (group.empty()) continue;
      const int k = backendFor(device).firstNonFinite(group);
      if (k >= 0 && (first < 0 || index[k] < first)) first = index[k];
    }
    return Napi::Value(Napi::Number::New(info.Env(), first));
  });
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::softmaxForward(implementationArg(info, 0), tensorArg(info, 1, "softmax", "input")));
  });
}

// softmaxBackward(impl, y, dy)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "softmaxBackward";
    return wrapOrNull(info.Env(), ops::softmaxBackward(implementationArg(info, 0), tensorArg(info, 1, name, "output"),
                                                       tensorArg(info, 2, name, "output gradient")));
  });
}

std::vector<int> axesArg(const Napi::Value& v, const char* op, const char* name) {
  std::vector<int> out;
  for (int64_t a : intArrayArg(v, op, name)) out.push_back(static_cast<int>(a));
  return out;
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::permute(implementationArg(info, 0), tensorArg(info, 1, "permute", "input"),
                                               axesArg(info[2], "permute", "perm")));
  });
}

Napi::Value Flip(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::flip(implementationArg(info, 0), tensorArg(info, 1, "flip", "input"),
                                            axesArg(info[2], "flip", "axes")));
  });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TensorHandle::define(env, exports);
  auto fn = [&](const char* name, Napi::Function::Callback cb) { exports.Set(name, Napi::Function::New(env, cb, name)); };
  fn("backends", Backends);
  fn("primitiveCacheStats", PrimitiveCacheStatsFn);
  fn("profileStart", ProfileStart);
  fn("setConvMath", SetConvMath);
  fn("synchronize", Synchronize);
  fn("getConvMath", GetConvMath);
  fn("profileStop", ProfileStop);
  fn("tensorFromArray", TensorFromArray);
  fn("tensorFull", TensorFull);
  fn("memoryStats", MemoryStatsFn);
  fn("resetPeakMemory", ResetPeakMemory);
  fn("tensorShape", TensorShape);
  fn("tensorDevice", TensorDevice);
  fn("tensorToArray", TensorToArray);
  fn("tensorTo", TensorTo);
  fn("tensorReshape", TensorReshape);
  fn("tensorDispose", TensorDispose);
  fn("tensorIsDisposed", TensorIsDisposed);
  fn("conv", Conv);
  fn("convBackward", ConvBackward);
  fn("convAsync", ConvAsync);
  fn("convBackwardAsync", ConvBackwardAsync);
  fn("convTranspose", ConvTranspose);
  fn("convTransposeBackward", ConvTransposeBackward);
  fn("pixelwise", Pixelwise);
  fn("pixelwiseBackward", PixelwiseBackward);
  fn("maxPool", Pool<true>);
  fn("maxPoolBackward", PoolBackward<true>);
  fn("avgPool", Pool<false>);
  fn("avgPoolBackward", PoolBackward<false>);
  fn("upsample", Upsample);
  fn("upsampleBackward", UpsampleBackward);
  fn("batchNorm", BatchNorm);
  fn("batchNormBackward", BatchNormBackward);
  fn("activation", Activation);
  fn("activationBackward", ActivationBackward);
  fn("add", Binary<BinaryKind::Add>);
  fn("mul", Binary<BinaryKind::Mul>);
  fn("scale", Scale);
  fn("sum", Sum);
  fn("softmax", Softmax);
  fn("softmaxBackward", SoftmaxBackward);
  fn("permute", Permute);
  fn("flip", Flip);
  fn("concat", Concat);
  fn("clamp", Clamp);
  fn("clampBackward", ClampBackward);
  fn("sumOfSquares", SumOfSquares);
  fn("narrow", Narrow);
  fn("narrowBackward", NarrowBackward);
  fn("firstNonFinite", FirstNonFinite);
  defineRecurrent(env, exports);
  defineTraining(env, exports);
  defineMetrics(env, exports);
  return exports;
}

}  // namespace segvol::binding

static Napi::Object InitSegvol(Napi::Env env, Napi::Object exports) { return segvol::binding::Init(env, exports); }

NODE_API_MODULE(segvol, InitSegvol)
