// The input and output volumes of a kernel that runs one thread per output
// voxel (pooling.cu, upsample.cu): their (N, C, D, H, W) extents, which output
// voxel a thread owns, and where an input voxel lies.
#pragma once
#include "../core/tensor.h"

namespace segvol::cuda {

struct Volumes {
  int64_t n, c, id, ih, iw, od, oh, ow;
  __host__ __device__ int64_t outputs() const { return n * c * od * oh * ow; }
};

inline Volumes volumes(const Tensor& in, const Tensor& out) {
  const Dims5 a = dims5(in), b = dims5(out);
  return {a[0], a[1], a[2], a[3], a[4], b[2], b[3], b[4]};
}

// Output voxel o as its (N*C) plane and (z, y, x).
struct Voxel {
  int64_t plane, z, y, x;
};
__device__ inline Voxel outputVoxel(const Volumes& v, int64_t o) {
  return {o / (v.ow * v.oh * v.od), (o / (v.ow * v.oh)) % v.od, (o / v.ow) % v.oh, o % v.ow};
}

// Index of input voxel (z, y, x) of a plane.
__device__ inline int64_t inputIndex(const Volumes& v, int64_t plane, int64_t z, int64_t y, int64_t x) {
  return ((plane * v.id + z) * v.ih + y) * v.iw + x;
}

}  // namespace segvol::cuda
