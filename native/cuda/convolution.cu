// Convolutions through cuDNN (forward, backward-data, backward-filter). FP32 math
// by default, so results are comparable with the CPU; setConvMath('tf32') lets
// cuDNN use tensor cores. Algorithms are chosen once per shape and math mode by
// cuDNN's heuristics and cached; one growable workspace serves all.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_backend_impl.h"
#include "cuda_common.cuh"
#include "cudnn_loader.h"
#include "../core/math_mode.h"

namespace segvol {
namespace {

const cuda::CudnnApi& api() {
  std::string reason;
  const cuda::CudnnApi* a = cuda::loadCudnn(&reason);
  if (!a) fail(ErrorCode::Device, "cuda: " + reason);
  return *a;
}

void checkCudnn(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS) {
    fail(ErrorCode::Native, std::string("cuda: ") + call + " failed: " + api().cudnnGetErrorString(status));
  }
}

cudnnHandle_t handle() {
  static std::once_flag once;
  static cudnnHandle_t h = nullptr;
  std::call_once(once, [] { checkCudnn(api().cudnnCreate(&h), "cudnnCreate"); });
  return h;
}

struct Workspace {
  std::mutex mutex;
  void* ptr = nullptr;
  size_t bytes = 0;
  void* get(size_t need) {
    if (need > bytes) {
      if (ptr) cudaFree(ptr);
      ptr = nullptr;
      bytes = 0;
      cuda::check(cudaMalloc(&ptr, need), "cudaMalloc of the cuDNN workspace");
      bytes = need;
    }
    return ptr;
  }
};
Workspace& workspace() {
  static Workspace w;
  return w;
}

// Descriptors of one convolution problem; destroyed with it.
struct Problem {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Problem(const ConvGeometry& g, const Tensor& in, const Tensor& weight, const Tensor& out) {
    const auto& a = api();
    auto tensorDesc = [&](cudnnTensorDescriptor_t& d, const Tensor& t) {
      checkCudnn(a.cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor");
      std::vector<int> dims(t.shape().begin(), t.shape().end()), strides(dims.size(), 1);
      for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
      checkCudnn(a.cudnnSetTensorNdDescriptor(d, CUDNN_DATA_FLOAT, static_cast<int>(dims.size()), dims.data(), strides.data()),
                 "cudnnSetTensorNdDescriptor");
    };
    tensorDesc(x, in);
    tensorDesc(y, out);
    checkCudnn(a.cudnnCreateFilterDescriptor(&w), "cudnnCreateFilterDescriptor");
    std::vector<int> wdims(weight.shape().begin(), weight.shape().end());
    checkCudnn(a.cudnnSetFilterNdDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, static_cast<int>(wdims.size()), wdims.data()),
               "cudnnSetFilterNdDescriptor");
    checkCudnn(a.cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor");
    std::vector<int> pad, stride, dilation;
    for (int s = 0; s < g.spatialRank; ++s) {
      const int axis = 3 - g.spatialRank + s;
      pad.push_back(static_cast<int>(g.padding[axis]));
      stride.push_back(static_cast<int>(g.stride[axis]));
      dilation.push_back(static_cast<int>(g.dilation[axis]));
    }
    checkCudnn(a.cudnnSetConvolutionNdDescriptor(conv, g.spatialRank, pad.data(), stride.data(), dilation.data(),
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
               "cudnnSetConvolutionNdDescriptor");
    checkCudnn(a.cudnnSetConvolutionGroupCount(conv, static_cast<int>(g.groups)), "cudnnSetConvolutionGroupCount");
    // FMA: float32 only. TENSOR_OP: tensor cores allowed, float32 operands rounded to TF32.
    const cudnnMathType_t math = convMath() == ConvMath::Tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    checkCudnn(a.cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType");
  }
  ~Problem() {
    const auto& a = api();
    if (x) a.cudnnDestroyTensorDescriptor(x);
    if (y) a.cudnnDestroyTensorDescriptor(y);
    if (w) a.cudnnDestroyFilterDescriptor(w);
    if (conv) a.cudnnDestroyConvolutionDescriptor(conv);
  }
};

std::string key(const char* kind, const ConvGeometry& g, const Tensor& in, const Tensor& w, const Tensor& out) {
  std::string k = std::string(kind) + shapeToString(in.shape()) + shapeToString(w.shape()) + shapeToString(out.shape());
  for (int a = 0; a < 3; ++a) k += "|" + std::to_string(g.stride[a]) + "," + std::to_string(g.padding[a]) + "," + std::to_string(g.dilation[a]);
  return k + "|g" + std::to_string(g.groups) + (convMath() == ConvMath::Tf32 ? "|tf32" : "|fp32");
}

struct Choice {
  int algorithm;
  size_t workspace;
  cudnnMathType_t math;  // what the algorithm was ranked with (TF32 mode only differs)
};
std::mutex cacheMutex;
std::map<std::string, Choice> cache;

// The first algorithm cuDNN's heuristics rank that succeeds, cached per problem.
template <typename Perf, typename Get>
Choice choose(const std::string& k, Get&& get) {
  {
    std::lock_guard<std::mutex> lock(cacheMutex);
    auto it = cache.find(k);
    if (it != cache.end()) return it->second;
  }
  Perf perf[16];
  int count = 0;
  get(perf, 16, &count);
  for (int i = 0; i < count; ++i) {
    if (perf[i].status == CUDNN_STATUS_SUCCESS) {
      Choice c{static_cast<int>(perf[i].algo), perf[i].memory, perf[i].mathType};
      std::lock_guard<std::mutex> lock(cacheMutex);
      cache[k] = c;
      return c;
    }
  }
  fail(ErrorCode::Native, "cuda: cuDNN found no algorithm for " + k);
}

// cuDNN runs an algorithm with the math type it was ranked under; in FP32 mode
// the descriptor stays FMA-only, so TF32 is never switched on behind our back.
void applyMath(const Problem& p, const Choice& c) {
  if (convMath() == ConvMath::Tf32) checkCudnn(api().cudnnSetConvolutionMathType(p.conv, c.math), "cudnnSetConvolutionMathType");
}

// One cuDNN convolution call: the algorithm cuDNN's heuristics rank first for
// this problem (rank(perf, capacity, &count) asks them; cached under key), its
// math type, then run(algorithm, workspace, workspaceBytes) with the workspace held.
template <typename Perf, typename Rank, typename Run>
void runConvolution(const std::string& k, const Problem& p, Rank&& rank, Run&& run) {
  const Choice c = choose<Perf>(k, rank);
  applyMath(p, c);
  std::lock_guard<std::mutex> lock(workspace().mutex);
  run(c.algorithm, workspace().get(c.workspace), c.workspace);
}

const float kOne = 1, kZero = 0;  // cuDNN's alpha and beta: out = 1 * op(in) + 0 * out

}  // namespace

void CudaBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  rejectBf16OnGpu("conv forward");
  Problem p(g, x, w, y);
  const auto& a = api();
  runConvolution<cudnnConvolutionFwdAlgoPerf_t>(
      key("fwd", g, x, w, y), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionForwardAlgorithm_v7(handle(), p.x, p.w, p.conv, p.y, n, count, perf),
                   "cudnnGetConvolutionForwardAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionForward(handle(), &kOne, p.x, x.data(), p.w, w.data(), p.conv,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(algorithm), ws, bytes, &kZero, p.y, y.data()),
                   "cudnnConvolutionForward");
      });
  if (bias) addChannelBias(y, *bias);
}

void CudaBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  rejectBf16OnGpu("conv backward data");
  Problem p(g, dx, w, dy);
  const auto& a = api();
  runConvolution<cudnnConvolutionBwdDataAlgoPerf_t>(
      key("bwd_data", g, dx, w, dy), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionBackwardDataAlgorithm_v7(handle(), p.w, p.y, p.conv, p.x, n, count, perf),
                   "cudnnGetConvolutionBackwardDataAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionBackwardData(handle(), &kOne, p.w, w.data(), p.y, dy.data(), p.conv,
                                                  static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm), ws, bytes, &kZero,
                                                  p.x, dx.data()),
                   "cudnnConvolutionBackwardData");
      });
}

void CudaBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  rejectBf16OnGpu("conv backward weights");
  Problem p(g, x, dw, dy);
  const auto& a = api();
  runConvolution<cudnnConvolutionBwdFilterAlgoPerf_t>(
      key("bwd_filter", g, x, dw, dy), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle(), p.x, p.y, p.conv, p.w, n, count, perf),
                   "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionBackwardFilter(handle(), &kOne, p.x, x.data(), p.y, dy.data(), p.conv,
                                                    static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm), ws, bytes,
                                                    &kZero, p.w, dw.data()),
                   "cudnnConvolutionBackwardFilter");
      });
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
