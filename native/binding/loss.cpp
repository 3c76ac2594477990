// Bindings of the losses (native/ops/loss.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

namespace {

LossKind lossKindArg(const Napi::Value& v) {
  return choiceArg<LossKind>(v, "loss", "kind", "",
                             {{"squaredError", LossKind::SquaredError},
                              {"crossEntropy", LossKind::CrossEntropy},
                              {"softDice", LossKind::SoftDice},
                              {"softIoU", LossKind::SoftIoU}});
}

}  // namespace

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

}  // namespace segvol::binding
