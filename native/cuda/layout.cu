// Axis permutation and flips: one thread per output element computes its source index.
#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

struct Strides {
  int rank;
  int64_t outShape[kMaxRank];
  int64_t srcStride[kMaxRank];  // negative: the axis is walked backwards
  int64_t offset;
};

__global__ void gatherKernel(const float* x, float* y, int64_t n, Strides st) {
  SEGVOL_GRID_STRIDE(i, n) {
    int64_t rest = i, src = st.offset;
    for (int a = st.rank - 1; a >= 0; --a) {
      src += (rest % st.outShape[a]) * st.srcStride[a];
      rest /= st.outShape[a];
    }
    y[i] = x[src];
  }
}

void launch(const Tensor& x, Tensor& y, const Strides& st, const char* name) {
  if (!y.size()) return;
  SEGVOL_LAUNCH(gatherKernel, cuda::blocksFor(y.size()), 256)(x.data(), y.data(), y.size(), st);
  cuda::checkLaunch(name);
}

}  // namespace

void CudaBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  const std::vector<int64_t> xs = contiguousStrides(x.shape());
  Strides st{x.rank(), {}, {}, 0};
  for (int a = 0; a < x.rank(); ++a) {
    st.outShape[a] = y.dim(a);
    st.srcStride[a] = xs[perm[a]];
  }
  launch(x, y, st, "permute");
}

void CudaBackend::flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) {
  const std::vector<int64_t> xs = contiguousStrides(x.shape());
  Strides st{x.rank(), {}, {}, 0};
  for (int a = 0; a < x.rank(); ++a) {
    st.outShape[a] = x.dim(a);
    st.srcStride[a] = xs[a];
  }
  for (int a : axes) {
    st.offset += (x.dim(a) - 1) * xs[a];
    st.srcStride[a] = -xs[a];
  }
  launch(x, y, st, "flip");
}

namespace {

// One thread per copied element of the (outer, count, inner) block.
__global__ void copyAxisRangeKernel(const float* src, float* dst, int64_t n, int64_t count, int64_t inner,
                                    int64_t srcLength, int64_t srcStart, int64_t dstLength, int64_t dstStart) {
  SEGVOL_GRID_STRIDE(i, n) {
    const int64_t k = i % inner, l = (i / inner) % count, o = i / (inner * count);
    dst[(o * dstLength + dstStart + l) * inner + k] = src[(o * srcLength + srcStart + l) * inner + k];
  }
}

}  // namespace

void CudaBackend::copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                                int64_t count) {
  int64_t outer = 1, inner = 1;
  for (int a = 0; a < axis; ++a) outer *= src.dim(a);
  for (int a = axis + 1; a < src.rank(); ++a) inner *= src.dim(a);
  const int64_t n = outer * count * inner;
  if (n == 0) return;
  SEGVOL_LAUNCH(copyAxisRangeKernel, cuda::blocksFor(n), 256)(src.data(), dst.data(), n, count, inner, src.dim(axis),
                                                              srcStart, dst.dim(axis), dstStart);
  cuda::checkLaunch("copyAxisRange");
}

}  // namespace segvol
