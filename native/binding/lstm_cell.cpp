// Bindings of one LSTM cell step (native/ops/lstm_cell.cpp). Synchronous, like the
// element-wise ops it replaces: one pass over a frame's planes.
#include "../ops/lstm_cell.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

// lstmCell(impl, pre, recurrent|null, cPrev|null) -> { acts, c, h }
Napi::Value LstmCell(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "lstmCell";
    const Implementation impl = implementationArg(info, 0);
    const Tensor pre = tensorArg(info, 1, op, "pre");
    ops::LstmCellForward r = ops::lstmCellForward(impl, pre, optionalTensorArg(info, 2, op, "recurrent"),
                                                  optionalTensorArg(info, 3, op, "cPrev"));
    return Napi::Value(tensorsObject(info.Env(), {{"acts", &r.acts}, {"c", &r.c}, {"h", &r.h}}));
  });
}

// lstmCellBackward(impl, acts, cPrev|null, c, dh|null, dc|null) -> { dgates, dcPrev (null without cPrev) }
Napi::Value LstmCellBackward(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const char* op = "lstmCellBackward";
    const Implementation impl = implementationArg(info, 0);
    const Tensor acts = tensorArg(info, 1, op, "acts");
    const Tensor c = tensorArg(info, 3, op, "c");
    ops::LstmCellBackward r = ops::lstmCellBackward(impl, acts, optionalTensorArg(info, 2, op, "cPrev"), c,
                                                    optionalTensorArg(info, 4, op, "the gradient of h"),
                                                    optionalTensorArg(info, 5, op, "the gradient of c"));
    return Napi::Value(tensorsObject(info.Env(), {{"dgates", &r.dgates}, {"dcPrev", &r.dcPrev}}));
  });
}

}  // namespace segvol::binding
