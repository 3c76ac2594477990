// Ops with no CUDA kernel in this version. They refuse clearly instead of
// computing wrong results; the op layer's device check reaches them only for
// cuda tensors. (Pooling, upsampling, batch norm and the losses are next.)
#include <string>

#include "../core/error.h"
#include "cuda_backend_impl.h"

namespace segvol {
namespace {
[[noreturn]] void notYet(const char* op) {
  fail(ErrorCode::Device, std::string("cuda: ") + op + " has no CUDA kernel in this version of segvol; move the tensors to the cpu " +
                              "(tensor.to('cpu')) for this op");
}
}  // namespace

void CudaBackend::maxPoolForward(const PoolGeometry&, const Tensor&, Tensor&) { notYet("maxPool"); }
void CudaBackend::maxPoolBackward(const PoolGeometry&, const Tensor&, const Tensor&, Tensor&) { notYet("maxPoolBackward"); }
void CudaBackend::avgPoolForward(const PoolGeometry&, const Tensor&, Tensor&) { notYet("avgPool"); }
void CudaBackend::avgPoolBackward(const PoolGeometry&, const Tensor&, Tensor&) { notYet("avgPoolBackward"); }
void CudaBackend::upsampleForward(UpsampleMode, bool, const Tensor&, Tensor&) { notYet("upsample"); }
void CudaBackend::upsampleBackward(UpsampleMode, bool, const Tensor&, Tensor&) { notYet("upsampleBackward"); }
void CudaBackend::batchNormTrainForward(const Tensor&, const Tensor&, const Tensor&, double, double, Tensor&, Tensor&, Tensor&, Tensor&,
                                        Tensor&) {
  notYet("batchNorm");
}
void CudaBackend::batchNormInferenceForward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, Tensor&) {
  notYet("batchNorm");
}
void CudaBackend::batchNormBackward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, const Tensor&, Tensor&, Tensor&,
                                    Tensor&) {
  notYet("batchNormBackward");
}
double CudaBackend::lossForwardBackward(LossKind, const Tensor&, const Tensor&, const Tensor*, const Tensor*, Tensor&) { notYet("loss"); }

}  // namespace segvol
