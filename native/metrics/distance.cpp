// Exact Euclidean distance transform (Felzenszwalb & Huttenlocher's lower
// envelope of parabolas, one axis at a time) with anisotropic spacing, and the
// surface distances behind the modified Hausdorff distance.
#include <cmath>
#include <limits>
#include <vector>

#include "metrics.h"

namespace segvol::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// f: squared distances along one line, in place; positions are k * step.
void transform1d(std::vector<double>& f, double step, std::vector<double>& d, std::vector<int64_t>& v,
                 std::vector<double>& z) {
  const int64_t n = static_cast<int64_t>(f.size());
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    const double pq = q * step;
    while (k >= 0) {
      const double pv = v[k] * step;
      const double s = ((f[q] + pq * pq) - (f[v[k]] + pv * pv)) / (2 * (pq - pv));
      if (s <= z[k]) {
        --k;
      } else {
        break;
      }
    }
    ++k;
    v[k] = q;
    z[k] = k == 0 ? -kInf : ((f[q] + pq * pq) - (f[v[k - 1]] + (v[k - 1] * step) * (v[k - 1] * step))) /
                                 (2 * (pq - v[k - 1] * step));
    z[k + 1] = kInf;
  }
  if (k < 0) return;  // no finite entry: all stay infinite
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    const double pq = q * step;
    while (z[j + 1] < pq) ++j;
    const double diff = pq - v[j] * step;
    d[q] = diff * diff + f[v[j]];
  }
  for (int64_t q = 0; q < n; ++q) f[q] = d[q];
}

}  // namespace

std::vector<double> squaredDistanceTransform(const std::vector<uint8_t>& feature, Dims dims,
                                             const std::array<double, 3>& spacing) {
  std::vector<double> out(dims.size());
  for (int64_t i = 0; i < dims.size(); ++i) out[i] = feature[i] ? 0.0 : kInf;
  const int64_t extent[3] = {dims.d, dims.h, dims.w};
  const int64_t stride[3] = {dims.h * dims.w, dims.w, 1};
  for (int axis = 2; axis >= 0; --axis) {
    const int64_t len = extent[axis];
    std::vector<double> line(len), d(len), z(len + 1);
    std::vector<int64_t> v(len);
    // Every line along this axis: iterate the other two axes.
    const int a = axis == 0 ? 1 : 0, b = axis == 2 ? 1 : 2;
    for (int64_t i = 0; i < extent[a]; ++i)
      for (int64_t j = 0; j < extent[b]; ++j) {
        const int64_t base = i * stride[a] + j * stride[b];
        for (int64_t k = 0; k < len; ++k) line[k] = out[base + k * stride[axis]];
        transform1d(line, spacing[axis], d, v, z);
        for (int64_t k = 0; k < len; ++k) out[base + k * stride[axis]] = line[k];
      }
  }
  return out;
}

std::vector<uint8_t> surface(const std::vector<uint8_t>& mask, Dims dims) {
  std::vector<uint8_t> out(dims.size(), 0);
  for (int64_t z = 0; z < dims.d; ++z)
    for (int64_t y = 0; y < dims.h; ++y)
      for (int64_t x = 0; x < dims.w; ++x) {
        const int64_t i = (z * dims.h + y) * dims.w + x;
        if (!mask[i]) continue;
        auto outside = [&](int64_t zz, int64_t yy, int64_t xx) {
          // The volume's border counts as outside (scipy's binary_erosion with border_value 0).
          if (zz < 0 || zz >= dims.d || yy < 0 || yy >= dims.h || xx < 0 || xx >= dims.w) return true;
          return !mask[(zz * dims.h + yy) * dims.w + xx];
        };
        // In 2D images (D = 1) the z neighbours do not exist and do not make a surface.
        const bool zEdge = dims.d > 1 && (outside(z - 1, y, x) || outside(z + 1, y, x));
        out[i] = zEdge || outside(z, y - 1, x) || outside(z, y + 1, x) || outside(z, y, x - 1) || outside(z, y, x + 1);
      }
  return out;
}

std::vector<double> surfaceDistances(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, Dims dims,
                                     const std::array<double, 3>& spacing) {
  const std::vector<uint8_t> sa = surface(a, dims), sb = surface(b, dims);
  const std::vector<double> toB = squaredDistanceTransform(sb, dims, spacing);
  std::vector<double> out;
  for (int64_t i = 0; i < dims.size(); ++i) {
    if (sa[i]) out.push_back(std::sqrt(toB[i]));
  }
  return out;
}

}  // namespace segvol::metrics
