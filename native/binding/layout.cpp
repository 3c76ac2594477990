// Bindings of the layout ops (native/ops/layout.cpp): permute, flip, concat and
// narrow with its gradient.
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {

namespace {

std::vector<int> axesArg(const Napi::Value& v, const char* op, const char* name) {
  std::vector<int> out;
  for (int64_t a : intArrayArg(v, op, name)) out.push_back(static_cast<int>(a));
  return out;
}

}  // namespace

// permute(impl, x, perm)
Napi::Value Permute(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::permute(implementationArg(info, 0), tensorArg(info, 1, "permute", "input"),
                                               axesArg(info[2], "permute", "perm")));
  });
}

// flip(impl, x, axes)
Napi::Value Flip(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return wrapOrNull(info.Env(), ops::flip(implementationArg(info, 0), tensorArg(info, 1, "flip", "input"),
                                            axesArg(info[2], "flip", "axes")));
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

}  // namespace segvol::binding
