// Bindings of max and average pooling (native/ops/pooling.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {
namespace {

// maxPool / avgPool (impl, x, geometry)
template <bool Max>
Napi::Value pool(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = Max ? "maxPool" : "avgPool";
    const Tensor& x = tensorArg(info, 1, name, "input");
    PoolGeometry g = poolGeometryArg(info[2], x.rank() - 2, name);
    Implementation impl = implementationArg(info, 0);
    return wrapOrNull(info.Env(), Max ? ops::maxPoolForward(impl, x, g) : ops::avgPoolForward(impl, x, g));
  });
}

// maxPoolBackward / avgPoolBackward (impl, x, dy, geometry)
template <bool Max>
Napi::Value poolBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = Max ? "maxPoolBackward" : "avgPoolBackward";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& dy = tensorArg(info, 2, name, "output gradient");
    PoolGeometry g = poolGeometryArg(info[3], x.rank() - 2, name);
    Implementation impl = implementationArg(info, 0);
    return wrapOrNull(info.Env(), Max ? ops::maxPoolBackward(impl, x, dy, g) : ops::avgPoolBackward(impl, x, dy, g));
  });
}

}  // namespace

Napi::Value MaxPool(const Napi::CallbackInfo& info) { return pool<true>(info); }
Napi::Value MaxPoolBackward(const Napi::CallbackInfo& info) { return poolBackward<true>(info); }
Napi::Value AvgPool(const Napi::CallbackInfo& info) { return pool<false>(info); }
Napi::Value AvgPoolBackward(const Napi::CallbackInfo& info) { return poolBackward<false>(info); }

}  // namespace segvol::binding
