// Bindings of the C-LSTM scan and the PyraMiD-LSTM layer. The layer has sync and
// Promise (thread pool) forms; arguments are converted on the main thread, the
// compute holds its own references to every tensor, so disposing an input while
// the work runs is safe.
#include "recurrent.h"

#include "../ops/clstm.h"
#include "async.h"
#include "convert.h"
#include "saved_handle.h"
#include "tensor_handle.h"

namespace segvol::binding {
namespace {

ops::ClstmWeights weightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected weights { wx, bx, wh, bh }");
  Napi::Object o = v.As<Napi::Object>();
  return {TensorHandle::unwrap(o.Get("wx"), op, "wx"), TensorHandle::unwrap(o.Get("bx"), op, "bx"),
          TensorHandle::unwrap(o.Get("wh"), op, "wh"), TensorHandle::unwrap(o.Get("bh"), op, "bh")};
}

std::array<ops::ClstmWeights, 6> sixWeightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 6) {
    fail(ErrorCode::Argument, std::string(op) + ": expected an array of six direction weights (+D, -D, +H, -H, +W, -W)");
  }
  std::array<ops::ClstmWeights, 6> out;
  for (uint32_t d = 0; d < 6; ++d) out[d] = weightsArg(v.As<Napi::Array>().Get(d), op);
  return out;
}

Napi::Value orNull(Napi::Env env, const Tensor& t) {
  return t.defined() ? Napi::Value(TensorHandle::wrap(env, t)) : env.Null();
}

Napi::Object gradsObject(Napi::Env env, const ops::ClstmGrads& g) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dwx", orNull(env, g.dwx));
  o.Set("dbx", orNull(env, g.dbx));
  o.Set("dwh", orNull(env, g.dwh));
  o.Set("dbh", orNull(env, g.dbh));
  return o;
}

Napi::Value pyramidForwardResult(Napi::Env env, ops::PyramidForward& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("y", TensorHandle::wrap(env, r.y));
  o.Set("saved", SavedHandle::wrap(env, r.saved));
  return o;
}

Napi::Value pyramidBackwardResult(Napi::Env env, ops::PyramidBackward& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dx", TensorHandle::wrap(env, r.dx));
  Napi::Array grads = Napi::Array::New(env, 6);
  for (uint32_t d = 0; d < 6; ++d) grads.Set(d, gradsObject(env, r.grads[d]));
  o.Set("grads", grads);
  return o;
}

// clstmScan(impl, x, weights, direction, h0|null, c0|null) -> { h, hLast, cLast, saved }
Napi::Value ClstmScan(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScan";
    const Tensor& x = tensorArg(info, 1, op, "input");
    ops::ClstmWeights w = weightsArg(info[2], op);
    const int direction = static_cast<int>(intArg(info[3], op, "direction"));
    const bool recompute = info.Length() > 6 && boolArg(info[6], op, "recompute");
    auto r = ops::clstmScanForward(implementationArg(info, 0), x, w, direction, optionalTensorArg(info, 4, op, "h0"),
                                   optionalTensorArg(info, 5, op, "c0"), recompute);
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("h", TensorHandle::wrap(env, r.h));
    o.Set("hLast", TensorHandle::wrap(env, r.hLast));
    o.Set("cLast", TensorHandle::wrap(env, r.cLast));
    o.Set("saved", SavedHandle::wrap(env, r.saved));
    return Napi::Value(o);
  });
}

// clstmScanBackward(impl, saved, dh|null, dhLast|null, dcLast|null) -> { dx, dwx, dbx, dwh, dbh, dh0, dc0 }
Napi::Value ClstmScanBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScanBackward";
    auto saved = SavedHandle::unwrap<ops::ScanSaved>(info[1], op);
    auto r = ops::clstmScanBackward(implementationArg(info, 0), *saved, optionalTensorArg(info, 2, op, "dh"),
                                    optionalTensorArg(info, 3, op, "dhLast"), optionalTensorArg(info, 4, op, "dcLast"));
    Napi::Env env = info.Env();
    Napi::Object o = gradsObject(env, r.grads);
    o.Set("dx", orNull(env, r.dx));
    o.Set("dh0", orNull(env, r.dh0));
    o.Set("dc0", orNull(env, r.dc0));
    return Napi::Value(o);
  });
}

// pyramidLstm(impl, x, weights[6], async, keepForBackward, recompute, groupLimit) -> { y, saved } or a Promise of it
Napi::Value PyramidLstm(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "pyramidLstm";
    const Implementation impl = implementationArg(info, 0);
    const Tensor x = tensorArg(info, 1, op, "input");
    const auto w = sixWeightsArg(info[2], op);
    const bool keep = boolArg(info[4], op, "keepForBackward");
    ops::ScanSchedule schedule;
    schedule.recompute = boolArg(info[5], op, "recompute");
    schedule.groupLimit = static_cast<int>(intArg(info[6], op, "groupLimit"));
    if (boolArg(info[3], op, "async")) {
      return Napi::Value(PromiseWorker<ops::PyramidForward>::start(
          info.Env(), [=] { return ops::pyramidLstmForward(impl, x, w, keep, schedule); }, pyramidForwardResult));
    }
    auto r = ops::pyramidLstmForward(impl, x, w, keep, schedule);
    return pyramidForwardResult(info.Env(), r);
  });
}

// pyramidLstmBackward(impl, saved, dy, async) -> { dx, grads[6] } or a Promise of it
Napi::Value PyramidLstmBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "pyramidLstmBackward";
    const Implementation impl = implementationArg(info, 0);
    auto saved = SavedHandle::unwrap<ops::PyramidSaved>(info[1], op);
    const Tensor dy = tensorArg(info, 2, op, "output gradient");
    if (boolArg(info[3], op, "async")) {
      return Napi::Value(PromiseWorker<ops::PyramidBackward>::start(
          info.Env(), [=] { return ops::pyramidLstmBackward(impl, *saved, dy); }, pyramidBackwardResult));
    }
    auto r = ops::pyramidLstmBackward(impl, *saved, dy);
    return pyramidBackwardResult(info.Env(), r);
  });
}

Napi::Value SavedDispose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsObject()) fail(ErrorCode::Argument, "dispose: expected a saved-state handle");
    SavedHandle::Unwrap(info[0].As<Napi::Object>())->dispose();
    return info.Env().Undefined();
  });
}

Napi::Value SavedShare(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsObject()) fail(ErrorCode::Argument, "share: expected a saved-state handle");
    return Napi::Value(SavedHandle::Unwrap(info[0].As<Napi::Object>())->share(info.Env()));
  });
}

Napi::Value SavedBytes(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsObject()) fail(ErrorCode::Argument, "bytes: expected a saved-state handle");
    return Napi::Value(Napi::Number::New(info.Env(), static_cast<double>(SavedHandle::Unwrap(info[0].As<Napi::Object>())->bytes())));
  });
}

}  // namespace

void defineRecurrent(Napi::Env env, Napi::Object exports) {
  exports.Set("SavedHandle", SavedHandle::define(env));
  exports.Set("clstmScan", Napi::Function::New(env, ClstmScan, "clstmScan"));
  exports.Set("clstmScanBackward", Napi::Function::New(env, ClstmScanBackward, "clstmScanBackward"));
  exports.Set("pyramidLstm", Napi::Function::New(env, PyramidLstm, "pyramidLstm"));
  exports.Set("pyramidLstmBackward", Napi::Function::New(env, PyramidLstmBackward, "pyramidLstmBackward"));
  exports.Set("savedDispose", Napi::Function::New(env, SavedDispose, "savedDispose"));
  exports.Set("savedBytes", Napi::Function::New(env, SavedBytes, "savedBytes"));
  exports.Set("savedShare", Napi::Function::New(env, SavedShare, "savedShare"));
}

}  // namespace segvol::binding
