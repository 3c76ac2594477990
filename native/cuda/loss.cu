// Losses on class probabilities, twins of native/cpu/loss.cpp: device
// reductions (double atomics), the few per-class coefficients on the host.
#include <vector>

#include "cuda_backend_impl.h"
#include "cuda_common.cuh"

namespace segvol {
namespace {

// Probability of class k at voxel v (v = sample * S + position).
__device__ inline int64_t at(int64_t v, int64_t k, int64_t c, int64_t s) { return (v / s * c + k) * s + v % s; }

__global__ void normKernel(const float* y, const float* m, const float* w, int64_t voxels, double* norm) {
  SEGVOL_GRID_STRIDE(v, voxels) {
    if (!m || m[v] != 0.0f) atomicAdd(norm, w ? static_cast<double>(w[static_cast<int64_t>(y[v])]) : 1.0);
  }
}

__global__ void pointwiseKernel(int kind, const float* p, const float* y, const float* m, const float* w, int64_t voxels, int64_t c, int64_t s,
                                double norm, float* g, double* total) {
  SEGVOL_GRID_STRIDE(v, voxels) {
    const int64_t label = static_cast<int64_t>(y[v]);
    const bool used = (!m || m[v] != 0.0f) && norm > 0;
    const double weight = w ? w[label] : 1.0;
    double acc = 0;
    for (int64_t k = 0; k < c; ++k) {
      const int64_t i = at(v, k, c, s);
      float gi = 0.0f;
      if (used) {
        if (kind == 0) {
          const double diff = static_cast<double>(p[i]) - (k == label ? 1.0 : 0.0);
          acc += weight * diff * diff;
          gi = static_cast<float>(2 * weight * diff / norm);
        } else if (k == label) {
          const double q = p[i] > 1e-7f ? static_cast<double>(p[i]) : 1e-7;
          acc -= weight * log(q);
          gi = p[i] > 1e-7f ? static_cast<float>(-weight / (q * norm)) : 0.0f;
        }
      }
      g[i] = gi;
    }
    if (acc != 0) atomicAdd(total, acc);
  }
}

__global__ void overlapSumsKernel(const float* p, const float* y, const float* m, int64_t voxels, int64_t c, int64_t s, double* sums) {
  SEGVOL_GRID_STRIDE(v, voxels) {
    if (m && m[v] == 0.0f) continue;
    const int64_t label = static_cast<int64_t>(y[v]);
    for (int64_t k = 0; k < c; ++k) {
      const double pk = p[at(v, k, c, s)];
      atomicAdd(sums + 3 * k + 1, pk);
      if (k == label) {
        atomicAdd(sums + 3 * k, pk);
        atomicAdd(sums + 3 * k + 2, 1.0);
      }
    }
  }
}

__global__ void overlapGradKernel(const float* y, const float* m, const double* coefA, const double* coefB, double weightSum, int64_t voxels,
                                  int64_t c, int64_t s, float* g) {
  SEGVOL_GRID_STRIDE(v, voxels) {
    const bool used = !m || m[v] != 0.0f;
    const int64_t label = static_cast<int64_t>(y[v]);
    for (int64_t k = 0; k < c; ++k) g[at(v, k, c, s)] = used ? static_cast<float>(-(k == label ? coefA[k] : coefB[k]) / weightSum) : 0.0f;
  }
}

// A small device buffer of doubles, freed on scope exit.
struct Doubles {
  cuda::Scratch<double> scratch;
  double* ptr;
  explicit Doubles(size_t n) : scratch(n), ptr(scratch.get()) {
    cuda::check(cudaMemset(ptr, 0, n * sizeof(double)), "cudaMemset");
  }
  std::vector<double> read(size_t n) const {
    std::vector<double> out(n);
    cuda::check(cudaMemcpy(out.data(), ptr, n * sizeof(double), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return out;
  }
};

}  // namespace

double CudaBackend::lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                                        const Tensor* classWeights, Tensor& grad) {
  const int64_t n = probs.dim(0), c = probs.dim(1), s = probs.size() / (n * c), voxels = n * s;
  const float* m = mask ? mask->data() : nullptr;
  const float* w = classWeights ? classWeights->data() : nullptr;
  if (kind == LossKind::SquaredError || kind == LossKind::CrossEntropy) {
    Doubles norm(1), total(1);
    SEGVOL_LAUNCH(normKernel, cuda::blocksFor(voxels), 256)(labels.data(), m, w, voxels, norm.ptr);
    cuda::checkLaunch("loss");
    const double nrm = norm.read(1)[0];
    SEGVOL_LAUNCH(pointwiseKernel, cuda::blocksFor(voxels), 256)(kind == LossKind::SquaredError ? 0 : 1, probs.data(), labels.data(), m, w, voxels, c, s,
                                                      nrm, grad.data(), total.ptr);
    cuda::checkLaunch("loss");
    return nrm > 0 ? total.read(1)[0] / nrm : 0.0;
  }
  Doubles sums(3 * c);
  SEGVOL_LAUNCH(overlapSumsKernel, cuda::blocksFor(voxels), 256)(probs.data(), labels.data(), m, voxels, c, s, sums.ptr);
  cuda::checkLaunch("loss");
  const std::vector<double> h = sums.read(3 * c);
  std::vector<float> weights(c, 1.0f);
  if (classWeights) cuda::check(cudaMemcpy(weights.data(), w, c * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  const double eps = 1e-6;
  double score = 0, weightSum = 0;
  std::vector<double> coef(2 * c);
  for (int64_t k = 0; k < c; ++k) {
    const double inter = h[3 * k], sumP = h[3 * k + 1], sumT = h[3 * k + 2], weight = weights[k];
    weightSum += weight;
    if (kind == LossKind::SoftDice) {
      const double den = sumP + sumT + eps, num = 2 * inter + eps;
      score += weight * num / den;
      coef[k] = weight * (2 * den - num) / (den * den);
      coef[c + k] = weight * (-num) / (den * den);
    } else {
      const double uni = sumP + sumT - inter + eps, num = inter + eps;
      score += weight * num / uni;
      coef[k] = weight / uni;
      coef[c + k] = weight * (-num) / (uni * uni);
    }
  }
  Doubles coefDevice(2 * c);
  cuda::check(cudaMemcpy(coefDevice.ptr, coef.data(), 2 * c * sizeof(double), cudaMemcpyHostToDevice), "cudaMemcpy");
  SEGVOL_LAUNCH(overlapGradKernel, cuda::blocksFor(voxels), 256)(labels.data(), m, coefDevice.ptr, coefDevice.ptr + c, weightSum, voxels, c, s, grad.data());
  cuda::checkLaunch("loss");
  return 1.0 - score / weightSum;
}

}  // namespace segvol
