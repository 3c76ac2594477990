#include "lstm_cell.h"

#include <string>

#include "checks.h"

namespace segvol::ops {
namespace {

// The cell's shape (N, O, ...) from the gates' (N, 4*O, ...), or a coded error.
Shape cellShape(const Tensor& pre, const std::string& op) {
  if (pre.rank() < 2 || pre.dim(1) % 4 != 0 || pre.dim(1) == 0) {
    fail(ErrorCode::Shape, op + ": expected gate pre-activations of shape (N, 4*O, ...) with the gates i, f, g, o along axis 1, "
                                "received " + shapeToString(pre.shape()) + "; pass the four gates' channels together");
  }
  Shape s = pre.shape();
  s[1] /= 4;
  return s;
}

void checkCellTensor(const Tensor* t, const Shape& expected, const std::string& op, const std::string& name) {
  if (t && t->shape() != expected) {
    fail(ErrorCode::Shape, op + ": expected " + name + " of shape " + shapeToString(expected) + " (the cell's shape), received " +
                               shapeToString(t->shape()));
  }
}

}  // namespace

LstmCellForward lstmCellForward(Implementation impl, const Tensor& pre, const Tensor* recurrent, const Tensor* cPrev) {
  const std::string op = "lstmCell";
  const Shape cell = cellShape(pre, op);
  if (recurrent) checkSameShape(pre, *recurrent, op, "pre", "recurrent");
  checkCellTensor(cPrev, cell, op, "cPrev");
  Backend& be = backendOf(impl, op, {&pre, recurrent, cPrev});
  LstmCellForward out;
  // The kernel turns pre-activations into activations in place: on a copy, since pre is the caller's.
  out.acts = Tensor::empty(be, pre.shape());
  be.copy(pre, out.acts);
  out.c = Tensor::empty(be, cell);
  out.h = Tensor::empty(be, cell);
  be.lstmStepForward(out.acts, recurrent, nullptr, cPrev, nullptr, out.c, out.h);
  return out;
}

LstmCellBackward lstmCellBackward(Implementation impl, const Tensor& acts, const Tensor* cPrev, const Tensor& c,
                                  const Tensor* dh, const Tensor* dc) {
  const std::string op = "lstmCell backward";
  const Shape cell = cellShape(acts, op);
  checkCellTensor(&c, cell, op, "c");
  checkCellTensor(cPrev, cell, op, "cPrev");
  checkCellTensor(dh, cell, op, "the gradient of h");
  checkCellTensor(dc, cell, op, "the gradient of c");
  Backend& be = backendOf(impl, op, {&acts, cPrev, &c, dh, dc});
  LstmCellBackward out;
  // dc goes in as the gradient of c and comes out as that of cPrev (in place).
  Tensor dcInOut = Tensor::empty(be, cell);
  if (dc) be.copy(*dc, dcInOut);
  else be.fill(dcInOut, 0.0f);
  Tensor zeros;
  if (!dh) {
    zeros = Tensor::zeros(be, cell);
    dh = &zeros;
  }
  out.dgates = Tensor::empty(be, acts.shape());
  be.lstmStepBackward(acts, cPrev, c, *dh, nullptr, nullptr, dcInOut, out.dgates);
  if (cPrev) out.dcPrev = dcInOut;
  return out;
}

}  // namespace segvol::ops
