// Bindings of the losses and optimizer updates.
#include "training.h"

#include "../ops/training.h"
#include "convert.h"
#include "tensor_handle.h"

namespace segvol::binding {
namespace {

LossKind lossKindArg(const Napi::Value& v) {
  const std::string kind = stringArg(v, "loss", "kind");
  if (kind == "squaredError") return LossKind::SquaredError;
  if (kind == "crossEntropy") return LossKind::CrossEntropy;
  if (kind == "softDice") return LossKind::SoftDice;
  if (kind == "softIoU") return LossKind::SoftIoU;
  fail(ErrorCode::Argument, "loss: expected 'squaredError', 'crossEntropy', 'softDice' or 'softIoU', received '" + kind + "'");
}

OptimizerKind optimizerKindArg(const Napi::Value& v) {
  const std::string kind = stringArg(v, "optimizer", "kind");
  if (kind == "rmspropMomentum") return OptimizerKind::RmspropMomentum;
  if (kind == "sgd") return OptimizerKind::SgdMomentum;
  if (kind == "adam") return OptimizerKind::Adam;
  fail(ErrorCode::Argument, "optimizer: expected 'rmspropMomentum', 'sgd' or 'adam', received '" + kind + "'");
}

// loss(impl, kind, probs, labels, mask|null, classWeights|null) -> { loss, grad }
Napi::Value Loss(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    auto r = ops::loss(implementationArg(info, 0), lossKindArg(info[1]), tensorArg(info, 2, "loss", "probabilities"),
                       tensorArg(info, 3, "loss", "labels"), optionalTensorArg(info, 4, "loss", "mask"),
                       optionalTensorArg(info, 5, "loss", "classWeights"));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("loss", r.loss);
    o.Set("grad", TensorHandle::wrap(info.Env(), r.grad));
    return Napi::Value(o);
  });
}

// optimizerUpdate(impl, kind, hyper, param, grad, state1, state2)
Napi::Value OptimizerUpdate(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "optimizerUpdate";
    if (!info[2].IsObject()) fail(ErrorCode::Argument, "optimizerUpdate: expected hyper-parameters");
    Napi::Object o = info[2].As<Napi::Object>();
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
    ops::optimizerUpdate(implementationArg(info, 0), optimizerKindArg(info[1]), h,
                         TensorHandle::unwrap(info[3], op, "parameter"), tensorArg(info, 4, op, "gradient"),
                         TensorHandle::unwrap(info[5], op, "state1"), TensorHandle::unwrap(info[6], op, "state2"));
    return info.Env().Undefined();
  });
}

}  // namespace

void defineTraining(Napi::Env env, Napi::Object exports) {
  exports.Set("loss", Napi::Function::New(env, Loss, "loss"));
  exports.Set("optimizerUpdate", Napi::Function::New(env, OptimizerUpdate, "optimizerUpdate"));
}

}  // namespace segvol::binding
