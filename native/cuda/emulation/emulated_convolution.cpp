// Convolutions of the emulated CUDA backend. cuDNN cannot run without a GPU, so
// the emulated build computes the convolution itself with the CPU backend
// (emulated device memory is host memory) and adds or reduces the bias with the
// CUDA kernels of bias.cu, so those still run. What this build verifies is
// everything around cuDNN: the kernels, the orchestration and the memory rules.
#include "../../core/registry.h"
#include "../cuda_backend_impl.h"

namespace segvol {

void CudaBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  cpuBackend().convForward(g, x, w, nullptr, y);
  if (bias) addChannelBias(y, *bias);
}

void CudaBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  cpuBackend().convBackwardData(g, dy, w, dx);
}

void CudaBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  cpuBackend().convBackwardWeights(g, x, dy, dw, nullptr);
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
