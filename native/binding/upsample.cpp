// Bindings of nearest and bi/trilinear upsampling (native/ops/upsample.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

UpsampleMode upsampleModeArg(const Napi::Value& v, const char* op) {
  return choiceArg<UpsampleMode>(v, op, "mode", "mode ", {{"nearest", UpsampleMode::Nearest}, {"linear", UpsampleMode::Linear}});
}

}  // namespace

// upsample(impl, x, size, mode, alignCorners)
Napi::Value Upsample(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "upsample";
    const Tensor& x = tensorArg(info, 1, name, "input");
    return wrapOrNull(info.Env(), ops::upsampleForward(implementationArg(info, 0), x, intArrayArg(info[2], name, "size"),
                                                       upsampleModeArg(info[3], name), boolArg(info[4], name, "alignCorners")));
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

}  // namespace segvol::binding
