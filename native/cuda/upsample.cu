// Nearest and bi/trilinear upsampling with PyTorch's source-coordinate rules,
// the twin of native/cpu/upsample.cpp: one thread per output voxel; backward
// scatters with atomicAdd (order-dependent in the last bits, within the parity
// tolerance).
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"
#include "volume.cuh"

namespace segvol {
namespace {

// The two source taps along one axis of output position dst, and the weight of the second.
__device__ void tap(int64_t dst, int64_t inSize, int64_t outSize, bool linear, bool alignCorners, int64_t* i0, int64_t* i1, float* lambda) {
  if (!linear) {
    int64_t i = static_cast<int64_t>(floor(dst * (static_cast<double>(inSize) / static_cast<double>(outSize))));
    *i0 = *i1 = i < inSize - 1 ? i : inSize - 1;
    *lambda = 0;
    return;
  }
  double src = alignCorners ? (outSize > 1 ? dst * static_cast<double>(inSize - 1) / static_cast<double>(outSize - 1) : 0.0)
                            : (dst + 0.5) * static_cast<double>(inSize) / static_cast<double>(outSize) - 0.5;
  if (src < 0) src = 0;
  int64_t a = static_cast<int64_t>(floor(src));
  if (a > inSize - 1) a = inSize - 1;
  *i0 = a;
  *i1 = a + 1 < inSize ? a + 1 : inSize - 1;
  *lambda = static_cast<float>(src - static_cast<double>(a));
}

// v: the small volume as input (id..) and the large as output (od..). Forward reads
// the small and writes the large; backward scatters the large's gradient back.
template <bool Backward>
__global__ void upsampleKernel(const float* in, float* out, cuda::Volumes v, bool linear, bool alignCorners) {
  SEGVOL_GRID_STRIDE(o, v.outputs()) {
    const cuda::Voxel at = cuda::outputVoxel(v, o);
    int64_t z0, z1, y0, y1, x0, x1;
    float lz, ly, lx;
    tap(at.z, v.id, v.od, linear, alignCorners, &z0, &z1, &lz);
    tap(at.y, v.ih, v.oh, linear, alignCorners, &y0, &y1, &ly);
    tap(at.x, v.iw, v.ow, linear, alignCorners, &x0, &x1, &lx);
    float acc = 0;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        for (int c = 0; c < 2; ++c) {
          const float w = (a ? lz : 1 - lz) * (b ? ly : 1 - ly) * (c ? lx : 1 - lx);
          const int64_t i = cuda::inputIndex(v, at.plane, a ? z1 : z0, b ? y1 : y0, c ? x1 : x0);
          if (Backward) {
            if (w != 0.0f) atomicAdd(out + i, w * in[o]);
          } else {
            acc += w * in[i];
          }
        }
    if (!Backward) out[o] = acc;
  }
}

}  // namespace

void CudaBackend::upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) {
  SEGVOL_LAUNCH(upsampleKernel<false>, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), cuda::volumes(x, y),
                                                                       mode == UpsampleMode::Linear, alignCorners);
  cuda::checkLaunch("upsample");
}

void CudaBackend::upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) {
  cuda::zero(dx);
  SEGVOL_LAUNCH(upsampleKernel<true>, cuda::blocksFor(dy.size()), 256)(dy.data(), dx.data(), cuda::volumes(dx, dy),
                                                                       mode == UpsampleMode::Linear, alignCorners);
  cuda::checkLaunch("upsampleBackward");
}

}  // namespace segvol
