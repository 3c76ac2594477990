// Bindings of the optimizer updates (native/ops/optimizer.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

namespace {

OptimizerKind optimizerKindArg(const Napi::Value& v) {
  return choiceArg<OptimizerKind>(v, "optimizer", "kind", "",
                                  {{"rmspropMomentum", OptimizerKind::RmspropMomentum},
                                   {"sgd", OptimizerKind::SgdMomentum},
                                   {"adam", OptimizerKind::Adam}});
}

// { lr, rho, rhoM, momentum, beta1, beta2, eps, weightDecay, step }
OptimizerHyper hyperArg(const Napi::Value& v, const char* op) {
  if (!v.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected hyper-parameters");
  Napi::Object o = v.As<Napi::Object>();
  OptimizerHyper h;
  h.lr = numberArg(o.Get("lr"), op, "lr");
  h.rho = numberArg(o.Get("rho"), op, "rho");
  h.rhoM = numberArg(o.Get("rhoM"), op, "rhoM");
  h.momentum = numberArg(o.Get("momentum"), op, "momentum");
  h.beta1 = numberArg(o.Get("beta1"), op, "beta1");
  h.beta2 = numberArg(o.Get("beta2"), op, "beta2");
  h.eps = numberArg(o.Get("eps"), op, "eps");
  h.weightDecay = numberArg(o.Get("weightDecay"), op, "weightDecay");
  h.step = intArg(o.Get("step"), op, "step");
  return h;
}

}  // namespace

// optimizerUpdate(impl, kind, hyper, param, grad, state1, state2): updates param, state1 and state2 in place
Napi::Value OptimizerUpdate(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "optimizerUpdate";
    const OptimizerHyper h = hyperArg(info[2], op);
    ops::optimizerUpdate(implementationArg(info, 0), optimizerKindArg(info[1]), h,
                         TensorHandle::unwrap(info[3], op, "parameter"), tensorArg(info, 4, op, "gradient"),
                         TensorHandle::unwrap(info[5], op, "state1"), TensorHandle::unwrap(info[6], op, "state2"));
    return info.Env().Undefined();
  });
}

}  // namespace segvol::binding
