// Elementwise activations and arithmetic: flat vectorised loops.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_backend.h"
#include "fast_math.h"

namespace segvol {

void CpuBackend::activation(ActivationKind kind, const Tensor& x, Tensor& y) {
  const float* in = x.data();
  float* out = y.data();
  const int64_t n = x.size();
  switch (kind) {
    case ActivationKind::Tanh:
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = fastmath::tanh(in[i]);
      break;
    case ActivationKind::Sigmoid:
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = fastmath::sigmoid(in[i]);
      break;
    case ActivationKind::Relu:
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
      break;
  }
}

void CpuBackend::activationBackward(ActivationKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  const float* g = dy.data();
  float* out = dx.data();
  const int64_t n = x.size();
  switch (kind) {
    case ActivationKind::Tanh: {
      const float* t = y.data();
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = g[i] * (1.0f - t[i] * t[i]);
      break;
    }
    case ActivationKind::Sigmoid: {
      const float* s = y.data();
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = g[i] * s[i] * (1.0f - s[i]);
      break;
    }
    case ActivationKind::Relu: {
      const float* in = x.data();
#pragma omp parallel for simd if (n > kParallelThreshold)
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? g[i] : 0.0f;
      break;
    }
  }
}

void CpuBackend::binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) {
  const float* u = a.data();
  const float* v = b.data();
  float* out = y.data();
  const int64_t n = a.size();
  if (kind == BinaryKind::Add) {
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) out[i] = u[i] + v[i];
  } else {
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) out[i] = u[i] * v[i];
  }
}

void CpuBackend::scale(const Tensor& x, float factor, Tensor& y) {
  const float* in = x.data();
  float* out = y.data();
  const int64_t n = x.size();
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * factor;
}

void CpuBackend::sum(const std::vector<const Tensor*>& xs, Tensor& y) {
  float* out = y.data();
  const int64_t n = y.size();
  const float* first = xs[0]->data();
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = first[i];
  for (size_t t = 1; t < xs.size(); ++t) {
    const float* in = xs[t]->data();
#pragma omp parallel for simd if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) out[i] += in[i];
  }
}

void CpuBackend::clamp(const Tensor& x, float lo, float hi, Tensor& y) {
  const float* in = x.data();
  float* out = y.data();
  const int64_t n = x.size();
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = std::min(std::max(in[i], lo), hi);
}

void CpuBackend::clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) {
  const float* in = x.data();
  const float* g = dy.data();
  float* out = dx.data();
  const int64_t n = x.size();
#pragma omp parallel for simd if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] >= lo && in[i] <= hi ? g[i] : 0.0f;
}

double CpuBackend::sumOfSquares(const Tensor& x) {
  // Fixed chunks summed in chunk order: the same result for any thread count.
  const float* p = x.data();
  const int64_t n = x.size(), chunk = 1 << 16, chunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double acc = 0;
    const int64_t end = std::min(n, (c + 1) * chunk);
#pragma omp simd reduction(+ : acc)
    for (int64_t i = c * chunk; i < end; ++i) acc += static_cast<double>(p[i]) * p[i];
    partial[static_cast<size_t>(c)] = acc;
  }
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace segvol
