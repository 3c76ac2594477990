// Small compositions of backend primitives shared by the ops built from them
// (clstm.cpp, rnn.cpp). Internal to native/ops: no checks, inputs are valid.
#pragma once
#include <vector>

#include "../core/backend.h"

namespace segvol::ops {

// x with its axes permuted (y's axis i is x's axis perm[i]), in a new tensor.
inline Tensor permuted(Backend& be, const Tensor& x, const std::vector<int>& perm) {
  Shape out;
  for (int a : perm) out.push_back(x.dim(a));
  Tensor y = Tensor::empty(be, out);
  be.permute(x, perm, y);
  return y;
}

}  // namespace segvol::ops
