// Losses: checks (shapes, class ids, class weights) and dispatch.
#include <cmath>
#include <string>
#include <vector>

#include "checks.h"
#include "ops.h"

namespace segvol::ops {

LossResult loss(Implementation impl, LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                const Tensor* classWeights) {
  const std::string op = "loss";
  checkRank(probs, {2, 3, 4, 5}, op, "probabilities", "(N, C, ...)");
  checkNotEmpty(probs, op, "probabilities");
  Shape labelShape = probs.shape();
  labelShape.erase(labelShape.begin() + 1);
  if (labels.shape() != labelShape) {
    fail(ErrorCode::Shape, op + ": expected labels of shape " + shapeToString(labelShape) +
                               " (the probabilities " + shapeToString(probs.shape()) +
                               " without the class axis), received " + shapeToString(labels.shape()));
  }
  if (mask && mask->shape() != labelShape) {
    fail(ErrorCode::Shape, op + ": expected a mask of shape " + shapeToString(labelShape) + ", received " +
                               shapeToString(mask->shape()));
  }
  const int64_t classes = probs.dim(1);
  Backend& backend = backendOf(impl, op, {&probs, &labels, mask, classWeights});
  // Class ids are checked on the host: a wrong id would index out of bounds in every backend.
  std::vector<float> ids(labels.size()), keep;
  backend.copyToHost(labels, ids.data());
  if (mask) {
    keep.resize(mask->size());
    backend.copyToHost(*mask, keep.data());
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (mask && keep[i] == 0.0f) continue;
    const float id = ids[i];
    if (!(id >= 0 && id < static_cast<float>(classes)) || std::floor(id) != id) {
      fail(ErrorCode::Argument, op + ": expected class ids 0.." + std::to_string(classes - 1) +
                                    " in the labels, received " + std::to_string(id) + " at flat index " +
                                    std::to_string(i) + "; remap the labels or mask those voxels");
    }
  }
  if (classWeights) {
    checkVector(*classWeights, classes, op, "classWeights", "one per class");
    std::vector<float> w(classes);
    backend.copyToHost(*classWeights, w.data());
    double total = 0;
    for (float v : w) {
      if (!(v >= 0) || !std::isfinite(v)) {
        fail(ErrorCode::Argument, op + ": expected finite class weights >= 0, received " + std::to_string(v));
      }
      total += v;
    }
    if (total <= 0) fail(ErrorCode::Argument, op + ": expected at least one class weight > 0");
  }
  LossResult r{0.0, Tensor::empty(backend, probs.shape())};
  r.loss = backend.lossForwardBackward(kind, probs, labels, mask, classWeights, r.grad);
  return r;
}

}  // namespace segvol::ops
