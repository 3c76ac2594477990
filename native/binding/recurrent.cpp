// Bindings of the C-LSTM scan and the PyraMiD-LSTM layer. The layer has sync and
// Promise (thread pool) forms; arguments are converted on the main thread, the
// compute holds its own references to every tensor, so disposing an input while
// the work runs is safe.
#include "recurrent.h"

#include "../ops/clstm.h"
#include "../ops/rnn.h"
#include "async.h"
#include "convert.h"
#include "saved_handle.h"
#include "tensor_handle.h"

namespace segvol::binding {
namespace {

ops::ClstmWeights weightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected weights { wx, bx, wh, bh }");
  Napi::Object o = v.As<Napi::Object>();
  ops::ClstmWeights w{TensorHandle::unwrap(o.Get("wx"), op, "wx"), TensorHandle::unwrap(o.Get("bx"), op, "bx"),
                      TensorHandle::unwrap(o.Get("wh"), op, "wh"), TensorHandle::unwrap(o.Get("bh"), op, "bh"), Tensor()};
  Napi::Value peep = o.Get("peep");
  if (!peep.IsUndefined() && !peep.IsNull()) w.peep = TensorHandle::unwrap(peep, op, "peep");
  return w;
}

// An optional tensor argument held by value (so async work keeps it alive).
Tensor optionalTensor(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  const Tensor* t = optionalTensorArg(info, index, op, name);
  return t ? *t : Tensor();
}
const Tensor* ptr(const Tensor& t) { return t.defined() ? &t : nullptr; }

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
  if (g.dpeep.defined()) o.Set("dpeep", orNull(env, g.dpeep));
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
  Napi::Object o = Napi::Object::New(env);
  o.Set("h", TensorHandle::wrap(env, r.h));
  o.Set("hLast", TensorHandle::wrap(env, r.hLast));
  o.Set("cLast", TensorHandle::wrap(env, r.cLast));
  o.Set("saved", SavedHandle::wrap(env, r.saved));
  return o;
}

Napi::Value scanBackwardResult(Napi::Env env, ops::ScanBackward& r) {
  Napi::Object o = gradsObject(env, r.grads);
  o.Set("dx", orNull(env, r.dx));
  o.Set("dh0", orNull(env, r.dh0));
  o.Set("dc0", orNull(env, r.dc0));
  return o;
}

// clstmScan(impl, x, weights {wx, bx, wh, bh, peep?}, direction, h0|null, c0|null, recompute, async, zeroState)
//   -> { h, hLast, cLast, saved } or a Promise of it
Napi::Value ClstmScan(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScan";
    const Implementation impl = implementationArg(info, 0);
    const Tensor x = tensorArg(info, 1, op, "input");
    const ops::ClstmWeights w = weightsArg(info[2], op);
    const int direction = static_cast<int>(intArg(info[3], op, "direction"));
    const Tensor h0 = optionalTensor(info, 4, op, "h0"), c0 = optionalTensor(info, 5, op, "c0");
    const bool recompute = info.Length() > 6 && boolArg(info[6], op, "recompute");
    const bool zeroState = info.Length() > 8 && boolArg(info[8], op, "zeroState");
    auto run = [=] { return ops::clstmScanForward(impl, x, w, direction, ptr(h0), ptr(c0), recompute, zeroState); };
    if (info.Length() > 7 && boolArg(info[7], op, "async")) {
      return Napi::Value(PromiseWorker<ops::ScanForward>::start(info.Env(), run, scanForwardResult));
    }
    auto r = run();
    return scanForwardResult(info.Env(), r);
  });
}

// clstmScanBackward(impl, saved, dh|null, dhLast|null, dcLast|null, async)
//   -> { dx, dwx, dbx, dwh, dbh, dpeep?, dh0, dc0 } or a Promise of it
Napi::Value ClstmScanBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "clstmScanBackward";
    const Implementation impl = implementationArg(info, 0);
    auto saved = SavedHandle::unwrap<ops::ScanSaved>(info[1], op);
    const Tensor dh = optionalTensor(info, 2, op, "dh"), dhLast = optionalTensor(info, 3, op, "dhLast");
    const Tensor dcLast = optionalTensor(info, 4, op, "dcLast");
    auto run = [=] { return ops::clstmScanBackward(impl, *saved, ptr(dh), ptr(dhLast), ptr(dcLast)); };
    if (info.Length() > 5 && boolArg(info[5], op, "async")) {
      return Napi::Value(PromiseWorker<ops::ScanBackward>::start(info.Env(), run, scanBackwardResult));
    }
    auto r = run();
    return scanBackwardResult(info.Env(), r);
  });
}

ops::RnnCell rnnCellArg(const Napi::Value& v, const char* op) {
  const std::string name = stringArg(v, op, "cell");
  if (name == "rnnTanh") return ops::RnnCell::RnnTanh;
  if (name == "rnnRelu") return ops::RnnCell::RnnRelu;
  if (name == "lstm") return ops::RnnCell::Lstm;
  if (name == "gru") return ops::RnnCell::Gru;
  fail(ErrorCode::Argument, std::string(op) + ": expected the cell 'rnnTanh', 'rnnRelu', 'lstm' or 'gru', received '" + name + "'");
}

ops::RnnWeights rnnWeightsArg(const Napi::Value& v, const char* op) {
  if (!v.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected weights { wih, whh, bih?, bhh?, whr? }");
  Napi::Object o = v.As<Napi::Object>();
  auto optional = [&](const char* key) {
    Napi::Value t = o.Get(key);
    return t.IsUndefined() || t.IsNull() ? Tensor() : TensorHandle::unwrap(t, op, key);
  };
  return {TensorHandle::unwrap(o.Get("wih"), op, "wih"), TensorHandle::unwrap(o.Get("whh"), op, "whh"), optional("bih"),
          optional("bhh"), optional("whr")};
}

Napi::Value rnnForwardResult(Napi::Env env, ops::RnnForward& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("y", TensorHandle::wrap(env, r.y));
  o.Set("hN", TensorHandle::wrap(env, r.hN));
  o.Set("cN", orNull(env, r.cN));
  o.Set("saved", SavedHandle::wrap(env, r.saved));
  return o;
}

Napi::Value rnnBackwardResult(Napi::Env env, ops::RnnBackward& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("dx", TensorHandle::wrap(env, r.dx));
  o.Set("dwih", orNull(env, r.grads.dwih));
  o.Set("dwhh", orNull(env, r.grads.dwhh));
  o.Set("dbih", orNull(env, r.grads.dbih));
  o.Set("dbhh", orNull(env, r.grads.dbhh));
  o.Set("dwhr", orNull(env, r.grads.dwhr));
  o.Set("dh0", orNull(env, r.dh0));
  o.Set("dc0", orNull(env, r.dc0));
  return o;
}

// rnn(impl, cell, x, weights, reverse, batchFirst, lengths|null, h0|null, c0|null, async)
//   -> { y, hN, cN, saved } or a Promise of it
Napi::Value Rnn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "rnn";
    const Implementation impl = implementationArg(info, 0);
    const ops::RnnCell cell = rnnCellArg(info[1], op);
    const Tensor x = tensorArg(info, 2, op, "input");
    const ops::RnnWeights w = rnnWeightsArg(info[3], op);
    const bool reverse = boolArg(info[4], op, "reverse"), batchFirst = boolArg(info[5], op, "batchFirst");
    const std::vector<int64_t> lengths = info[6].IsNull() || info[6].IsUndefined() ? std::vector<int64_t>{}
                                                                                   : intArrayArg(info[6], op, "lengths");
    const Tensor h0 = optionalTensor(info, 7, op, "h0"), c0 = optionalTensor(info, 8, op, "c0");
    auto run = [=] { return ops::rnnForward(impl, cell, x, w, reverse, batchFirst, lengths, ptr(h0), ptr(c0)); };
    if (boolArg(info[9], op, "async")) return Napi::Value(PromiseWorker<ops::RnnForward>::start(info.Env(), run, rnnForwardResult));
    auto r = run();
    return rnnForwardResult(info.Env(), r);
  });
}

// rnnBackward(impl, saved, dy|null, dhN|null, dcN|null, async) -> { dx, dwih, dwhh, dbih, dbhh, dwhr, dh0, dc0 }
Napi::Value RnnBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "rnnBackward";
    const Implementation impl = implementationArg(info, 0);
    auto saved = SavedHandle::unwrap<ops::RnnSaved>(info[1], op);
    const Tensor dy = optionalTensor(info, 2, op, "dy"), dhN = optionalTensor(info, 3, op, "dhN");
    const Tensor dcN = optionalTensor(info, 4, op, "dcN");
    auto run = [=] { return ops::rnnBackward(impl, *saved, ptr(dy), ptr(dhN), ptr(dcN)); };
    if (boolArg(info[5], op, "async")) return Napi::Value(PromiseWorker<ops::RnnBackward>::start(info.Env(), run, rnnBackwardResult));
    auto r = run();
    return rnnBackwardResult(info.Env(), r);
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
  exports.Set("rnn", Napi::Function::New(env, Rnn, "rnn"));
  exports.Set("rnnBackward", Napi::Function::New(env, RnnBackward, "rnnBackward"));
  exports.Set("pyramidLstm", Napi::Function::New(env, PyramidLstm, "pyramidLstm"));
  exports.Set("pyramidLstmBackward", Napi::Function::New(env, PyramidLstmBackward, "pyramidLstmBackward"));
  exports.Set("savedDispose", Napi::Function::New(env, SavedDispose, "savedDispose"));
  exports.Set("savedBytes", Napi::Function::New(env, SavedBytes, "savedBytes"));
  exports.Set("savedShare", Napi::Function::New(env, SavedShare, "savedShare"));
}

}  // namespace segvol::binding
