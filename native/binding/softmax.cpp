// Bindings of the softmax over channels (native/ops/softmax.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

// softmax(impl, x)
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

}  // namespace segvol::binding
