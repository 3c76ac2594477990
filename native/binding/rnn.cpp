// Bindings of one layer and direction of PyTorch's RNN, LSTM and GRU
// (native/ops/rnn.cpp), sync or a Promise computed on the compute thread.
#include "../ops/rnn.h"
#include "async.h"
#include "convert.h"
#include "modules.h"
#include "saved_handle.h"
#include "tensor_handle.h"

namespace segvol::binding {

namespace {

ops::RnnCell rnnCellArg(const Napi::Value& v, const char* op) {
  return choiceArg<ops::RnnCell>(v, op, "cell", "the cell ",
                                 {{"rnnTanh", ops::RnnCell::RnnTanh},
                                  {"rnnRelu", ops::RnnCell::RnnRelu},
                                  {"lstm", ops::RnnCell::Lstm},
                                  {"gru", ops::RnnCell::Gru}});
}

// { wih, whh, bih?, bhh?, whr? }
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
  Napi::Object o = tensorsObject(env, {{"y", &r.y}, {"hN", &r.hN}, {"cN", &r.cN}});
  o.Set("saved", SavedHandle::wrap(env, r.saved));
  return o;
}

Napi::Value rnnBackwardResult(Napi::Env env, ops::RnnBackward& r) {
  return tensorsObject(env, {{"dx", &r.dx},
                             {"dwih", &r.grads.dwih},
                             {"dwhh", &r.grads.dwhh},
                             {"dbih", &r.grads.dbih},
                             {"dbhh", &r.grads.dbhh},
                             {"dwhr", &r.grads.dwhr},
                             {"dh0", &r.dh0},
                             {"dc0", &r.dc0}});
}

}  // namespace

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
    const Tensor h0 = heldTensorArg(info, 7, op, "h0"), c0 = heldTensorArg(info, 8, op, "c0");
    return runMaybeAsync(
        info.Env(), boolArg(info[9], op, "async"),
        [=] { return ops::rnnForward(impl, cell, x, w, reverse, batchFirst, lengths, definedOrNull(h0), definedOrNull(c0)); },
        rnnForwardResult);
  });
}

// rnnBackward(impl, saved, dy|null, dhN|null, dcN|null, async) -> { dx, dwih, dwhh, dbih, dbhh, dwhr, dh0, dc0 }
Napi::Value RnnBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "rnnBackward";
    const auto a = backwardArgs<ops::RnnSaved, 3>(info, op, {"dy", "dhN", "dcN"});
    return runMaybeAsync(
        info.Env(), boolArg(info[5], op, "async"),
        [=] {
          return ops::rnnBackward(a.impl, *a.saved, definedOrNull(a.grads[0]), definedOrNull(a.grads[1]),
                                  definedOrNull(a.grads[2]));
        },
        rnnBackwardResult);
  });
}

}  // namespace segvol::binding
