// The machine's float32 peak on this many threads (OMP_NUM_THREADS), two ways:
//   - fma: independent AVX-512 (or AVX2) FMA chains held in registers, no memory traffic:
//     the most any kernel can reach;
//   - sgemm: oneDNN's sgemm on 2048^3, what a large, well-shaped matrix product reaches.
// Prints one JSON line. Built and run by `npm run bench -- peak` (benchmarks/suites/peak.ts).
#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec broadcast(float v) { return _mm512_set1_ps(v); }
inline float sum(Vec v) { return _mm512_reduce_add_ps(v); }
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec broadcast(float v) { return _mm256_set1_ps(v); }
inline float sum(Vec v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}
#endif

// Best of 5 of every thread running `rounds` x 12 chained FMAs (12 chains cover the FMA latency).
double fmaPeak(long rounds) {
  double best = 0;
  for (int trial = 0; trial < 5; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    float sink = 0;
    int threads = 1;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      Vec acc[12];
      for (int i = 0; i < 12; ++i) acc[i] = broadcast(1.0f + 1e-3f * static_cast<float>(i));
      const Vec scale = broadcast(0.9999999f), shift = broadcast(1e-7f);
      for (long r = 0; r < rounds; ++r) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = fma(acc[i], scale, shift);
      }
      for (int i = 0; i < 12; ++i) sink += sum(acc[i]);
    }
    const double flops = 2.0 * kLanes * 12 * static_cast<double>(rounds) * threads;
    best = std::max(best, flops / seconds(start) / 1e9);
    if (sink == 42.0f) std::printf(" ");  // keeps the chains
  }
  return best;
}

double sgemmPeak(int n) {
  std::vector<float> a(static_cast<size_t>(n) * n, 1.0f), b(a), c(a.size());
  double best = 0;
  for (int trial = 0; trial < 7; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    if (dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n) != dnnl_success) return -1;
    if (trial >= 2) best = std::max(best, 2.0 * n * n * n / seconds(start) / 1e9);
  }
  return best;
}

}  // namespace

int main() {
  const double fma = fmaPeak(50'000'000);
  const double sgemm = sgemmPeak(2048);
  std::printf("{\"threads\":%d,\"vector_bits\":%d,\"fma_gflops\":%.1f,\"sgemm_2048_gflops\":%.1f}\n", omp_get_max_threads(),
              kLanes * 32, fma, sgemm);
  return 0;
}
