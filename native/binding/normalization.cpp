// Bindings of batch normalization (native/ops/normalization.cpp).
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

// batchNorm(impl, x, gamma, beta, runningMean, runningVar, training, momentum, eps) -> { y, mean, invStd }
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "batchNorm";
    const Tensor& x = tensorArg(info, 1, name, "input");
    const Tensor& gamma = tensorArg(info, 2, name, "gamma");
    const Tensor& beta = tensorArg(info, 3, name, "beta");
    Tensor& runningMean = TensorHandle::unwrap(info[4], name, "runningMean");
    Tensor& runningVar = TensorHandle::unwrap(info[5], name, "runningVar");
    auto r = ops::batchNormForward(implementationArg(info, 0), x, gamma, beta, runningMean, runningVar,
                                   boolArg(info[6], name, "training"), numberArg(info[7], name, "momentum"),
                                   numberArg(info[8], name, "eps"));
    return Napi::Value(tensorsObject(info.Env(), {{"y", &r.y}, {"mean", &r.mean}, {"invStd", &r.invStd}}));
  });
}

// batchNormBackward(impl, x, gamma, mean, invStd, training, dy) -> { dx, dgamma, dbeta }
Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* name = "batchNormBackward";
    auto g = ops::batchNormBackward(implementationArg(info, 0), tensorArg(info, 1, name, "input"),
                                    tensorArg(info, 2, name, "gamma"), tensorArg(info, 3, name, "mean"),
                                    tensorArg(info, 4, name, "invStd"), boolArg(info[5], name, "training"),
                                    tensorArg(info, 6, name, "output gradient"));
    return Napi::Value(tensorsObject(info.Env(), {{"dx", &g.dx}, {"dgamma", &g.dgamma}, {"dbeta", &g.dbeta}}));
  });
}

}  // namespace segvol::binding
