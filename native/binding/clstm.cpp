// Bindings of the C-LSTM scan and the PyraMiD-LSTM layer (native/ops/clstm.cpp),
// each sync or a Promise computed on the compute thread. Arguments are converted
// on the main thread; the work holds its own references to every tensor, so
// disposing an input while it runs is safe.
#include <array>

#include "../ops/clstm.h"
#include "async.h"
#include "convert.h"
#include "modules.h"
#include "saved_handle.h"
#include "tensor_handle.h"

namespace segvol::binding {

namespace {

// { wx, bx, wh, bh, peep? }
ops::ClstmWeights weightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected weights { wx, bx, wh, bh }");
  Napi::Object o = v.As<Napi::Object>();
  ops::ClstmWeights w{TensorHandle::unwrap(o.Get("wx"), op, "wx"), TensorHandle::unwrap(o.Get("bx"), op, "bx"),
                      TensorHandle::unwrap(o.Get("wh"), op, "wh"), TensorHandle::unwrap(o.Get("bh"), op, "bh"), Tensor()};
  Napi::Value peep = o.Get("peep");
  if (!peep.IsUndefined() && !peep.IsNull()) w.peep = TensorHandle::unwrap(peep, op, "peep");
  return w;
}

std::array<ops::ClstmWeights, 6> sixWeightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 6) {
    fail(ErrorCode::Argument, std::string(op) + ": expected an array of six direction weights (+D, -D, +H, -H, +W, -W)");
  }
  std::array<ops::ClstmWeights, 6> out;
  for (uint32_t d = 0; d < 6; ++d) out[d] = weightsArg(v.As<Napi::Array>().Get(d), op);
  return out;
}

// { dwx, dbx, dwh, dbh, dpeep? }
Napi::Object gradsObject(Napi::Env env, const ops::ClstmGrads& g) {
  Napi::Object o = tensorsObject(env, {{"dwx", &g.dwx}, {"dbx", &g.dbx}, {"dwh", &g.dwh}, {"dbh", &g.dbh}});
  if (g.dpeep.defined()) o.Set("dpeep", wrapOrNull(env, g.dpeep));
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

Napi::Value scanForwardResult(Napi::Env env, ops::ScanForward& r) {
  Napi::Object o = tensorsObject(env, {{"h", &r.h}, {"hLast", &r.hLast}, {"cLast", &r.cLast}});
  o.Set("saved", SavedHandle::wrap(env, r.saved));
  return o;
}

Napi::Value scanBackwardResult(Napi::Env env, ops::ScanBackward& r) {
  Napi::Object o = gradsObject(env, r.grads);
  o.Set("dx", wrapOrNull(env, r.dx));
  o.Set("dh0", wrapOrNull(env, r.dh0));
  o.Set("dc0", wrapOrNull(env, r.dc0));
  return o;
}

}  // namespace

// clstmScan(impl, x, weights {wx, bx, wh, bh, peep?}, direction, h0|null, c0|null, recompute, async, zeroState)
//   -> { h, hLast, cLast, saved } or a Promise of it
Napi::Value ClstmScan(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScan";
    const Implementation impl = implementationArg(info, 0);
    const Tensor x = tensorArg(info, 1, op, "input");
    const ops::ClstmWeights w = weightsArg(info[2], op);
    const int direction = static_cast<int>(intArg(info[3], op, "direction"));
    const Tensor h0 = heldTensorArg(info, 4, op, "h0"), c0 = heldTensorArg(info, 5, op, "c0");
    const bool recompute = info.Length() > 6 && boolArg(info[6], op, "recompute");
    const bool zeroState = info.Length() > 8 && boolArg(info[8], op, "zeroState");
    const bool async = info.Length() > 7 && boolArg(info[7], op, "async");
    return runMaybeAsync(
        info.Env(), async,
        [=] { return ops::clstmScanForward(impl, x, w, direction, definedOrNull(h0), definedOrNull(c0), recompute, zeroState); },
        scanForwardResult);
  });
}

// clstmScanBackward(impl, saved, dh|null, dhLast|null, dcLast|null, async)
//   -> { dx, dwx, dbx, dwh, dbh, dpeep?, dh0, dc0 } or a Promise of it
Napi::Value ClstmScanBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScanBackward";
    const auto a = backwardArgs<ops::ScanSaved, 3>(info, op, {"dh", "dhLast", "dcLast"});
    const bool async = info.Length() > 5 && boolArg(info[5], op, "async");
    return runMaybeAsync(
        info.Env(), async,
        [=] {
          return ops::clstmScanBackward(a.impl, *a.saved, definedOrNull(a.grads[0]), definedOrNull(a.grads[1]),
                                        definedOrNull(a.grads[2]));
        },
        scanBackwardResult);
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
    return runMaybeAsync(
        info.Env(), boolArg(info[3], op, "async"), [=] { return ops::pyramidLstmForward(impl, x, w, keep, schedule); },
        pyramidForwardResult);
  });
}

// pyramidLstmBackward(impl, saved, dy, async) -> { dx, grads[6] } or a Promise of it
Napi::Value PyramidLstmBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "pyramidLstmBackward";
    const auto a = backwardArgs<ops::PyramidSaved, 0>(info, op, {});
    const Tensor dy = tensorArg(info, 2, op, "output gradient");
    return runMaybeAsync(
        info.Env(), boolArg(info[3], op, "async"), [=] { return ops::pyramidLstmBackward(a.impl, *a.saved, dy); },
        pyramidBackwardResult);
  });
}

}  // namespace segvol::binding
