// Convolutions through cuDNN (forward, backward-data, backward-filter). FP32 math
// by default, so results are comparable with the CPU; setConvMath('tf32') lets
// cuDNN use tensor cores. In 'bf16' and 'fp16' modes a convolution of 16 or more
// channels in and out (core/math_mode.h) runs on 16-bit copies of its operands,
// converted by precision.cu's kernels into pool blocks, with float32 accumulation
// (cuDNN's PSEUDO_BFLOAT16 and PSEUDO_HALF configurations); its 16-bit result is
// widened back into the float32 output. Algorithms are chosen once per shape and
// math mode by cuDNN's heuristics and cached; one growable workspace serves all.
#include <map>
#include <memory>
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

// How one convolution computes: float32 (FMA or, in TF32 mode, tensor cores) or on
// 16-bit operands. in: (N, C, ...), weight: (O, C/groups, ...).
struct Math {
  bool half = false;
  FloatFormat format = FloatFormat::Bf16;
  Math(const Tensor& in, const Tensor& weight) { half = halfPrecisionConvolution(in.dim(1), weight.dim(0), &format); }
  cudnnDataType_t operandType() const {
    if (!half) return CUDNN_DATA_FLOAT;
    return format == FloatFormat::Bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  }
  // FMA: float32 only. TENSOR_OP: tensor cores allowed (TF32 rounding of float32 operands).
  bool tensorCores() const { return half || convMath() == ConvMath::Tf32; }
  const char* tag() const { return half ? floatFormatName(format) : convMath() == ConvMath::Tf32 ? "tf32" : "fp32"; }
};

// Descriptors of one convolution problem; destroyed with it.
struct Problem {
  Math math;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Problem(const ConvGeometry& g, const Tensor& in, const Tensor& weight, const Tensor& out) : math(in, weight) {
    const auto& a = api();
    const cudnnDataType_t type = math.operandType();
    auto tensorDesc = [&](cudnnTensorDescriptor_t& d, const Tensor& t) {
      checkCudnn(a.cudnnCreateTensorDescriptor(&d), "cudnnCreateTensorDescriptor");
      std::vector<int> dims(t.shape().begin(), t.shape().end()), strides(dims.size(), 1);
      for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
      checkCudnn(a.cudnnSetTensorNdDescriptor(d, type, static_cast<int>(dims.size()), dims.data(), strides.data()),
                 "cudnnSetTensorNdDescriptor");
    };
    tensorDesc(x, in);
    tensorDesc(y, out);
    checkCudnn(a.cudnnCreateFilterDescriptor(&w), "cudnnCreateFilterDescriptor");
    std::vector<int> wdims(weight.shape().begin(), weight.shape().end());
    checkCudnn(a.cudnnSetFilterNdDescriptor(w, type, CUDNN_TENSOR_NCHW, static_cast<int>(wdims.size()), wdims.data()),
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
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),  // accumulate in float32
               "cudnnSetConvolutionNdDescriptor");
    checkCudnn(a.cudnnSetConvolutionGroupCount(conv, static_cast<int>(g.groups)), "cudnnSetConvolutionGroupCount");
    checkCudnn(a.cudnnSetConvolutionMathType(conv, math.tensorCores() ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH),
               "cudnnSetConvolutionMathType");
  }
  ~Problem() {
    const auto& a = api();
    if (x) a.cudnnDestroyTensorDescriptor(x);
    if (y) a.cudnnDestroyTensorDescriptor(y);
    if (w) a.cudnnDestroyFilterDescriptor(w);
    if (conv) a.cudnnDestroyConvolutionDescriptor(conv);
  }
};

std::string key(const char* kind, const ConvGeometry& g, const Math& math, const Tensor& in, const Tensor& w, const Tensor& out) {
  std::string k = std::string(kind) + shapeToString(in.shape()) + shapeToString(w.shape()) + shapeToString(out.shape());
  for (int a = 0; a < 3; ++a) k += "|" + std::to_string(g.stride[a]) + "," + std::to_string(g.padding[a]) + "," + std::to_string(g.dilation[a]);
  return k + "|g" + std::to_string(g.groups) + "|" + math.tag();
}

struct Choice {
  int algorithm;
  size_t workspace;
  cudnnMathType_t math;  // what the algorithm was ranked with (differs only where tensor cores are allowed)
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
  if (p.math.tensorCores()) checkCudnn(api().cudnnSetConvolutionMathType(p.conv, c.math), "cudnnSetConvolutionMathType");
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

// What cuDNN reads and writes for one float32 tensor: the tensor itself, or in a
// half-precision problem a 16-bit copy (an operand) or 16-bit room (the result,
// widened into the tensor by finish()).
class Operand {
 public:
  Operand(const Math& math, const Tensor& t, bool isResult) : math_(math), tensor_(t) {
    if (!math.half) return;
    packed_ = std::make_unique<cuda::Scratch<uint16_t>>(static_cast<size_t>(t.size()));
    if (!isResult) cuda::toFormat(math.format, t.data(), packed_->get(), t.size());
  }
  void* data() const { return packed_ ? static_cast<void*>(packed_->get()) : static_cast<void*>(const_cast<float*>(tensor_.data())); }
  void finish(Tensor& result) const {
    if (packed_) cuda::fromFormat(math_.format, packed_->get(), result.data(), result.size());
  }

 private:
  const Math& math_;
  const Tensor& tensor_;
  std::unique_ptr<cuda::Scratch<uint16_t>> packed_;
};

void requireMath(const Math& math, const char* op) {
  if (math.half) cuda::requireHalfPrecision(math.format, op);
}

}  // namespace

void CudaBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  Problem p(g, x, w, y);
  requireMath(p.math, "conv forward");
  const Operand in(p.math, x, false), weight(p.math, w, false), out(p.math, y, true);
  const auto& a = api();
  runConvolution<cudnnConvolutionFwdAlgoPerf_t>(
      key("fwd", g, p.math, x, w, y), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionForwardAlgorithm_v7(handle(), p.x, p.w, p.conv, p.y, n, count, perf),
                   "cudnnGetConvolutionForwardAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionForward(handle(), &kOne, p.x, in.data(), p.w, weight.data(), p.conv,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(algorithm), ws, bytes, &kZero, p.y, out.data()),
                   "cudnnConvolutionForward");
      });
  out.finish(y);
  if (bias) addChannelBias(y, *bias);
}

void CudaBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  Problem p(g, dx, w, dy);
  requireMath(p.math, "conv backward data");
  const Operand gradOut(p.math, dy, false), weight(p.math, w, false), gradIn(p.math, dx, true);
  const auto& a = api();
  runConvolution<cudnnConvolutionBwdDataAlgoPerf_t>(
      key("bwd_data", g, p.math, dx, w, dy), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionBackwardDataAlgorithm_v7(handle(), p.w, p.y, p.conv, p.x, n, count, perf),
                   "cudnnGetConvolutionBackwardDataAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionBackwardData(handle(), &kOne, p.w, weight.data(), p.y, gradOut.data(), p.conv,
                                                  static_cast<cudnnConvolutionBwdDataAlgo_t>(algorithm), ws, bytes, &kZero,
                                                  p.x, gradIn.data()),
                   "cudnnConvolutionBackwardData");
      });
  gradIn.finish(dx);
}

void CudaBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) {
  Problem p(g, x, dw, dy);
  requireMath(p.math, "conv backward weights");
  const Operand in(p.math, x, false), gradOut(p.math, dy, false), gradWeight(p.math, dw, true);
  const auto& a = api();
  runConvolution<cudnnConvolutionBwdFilterAlgoPerf_t>(
      key("bwd_filter", g, p.math, x, dw, dy), p,
      [&](auto* perf, int n, int* count) {
        checkCudnn(a.cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle(), p.x, p.y, p.conv, p.w, n, count, perf),
                   "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
      },
      [&](int algorithm, void* ws, size_t bytes) {
        checkCudnn(a.cudnnConvolutionBackwardFilter(handle(), &kOne, p.x, in.data(), p.y, gradOut.data(), p.conv,
                                                    static_cast<cudnnConvolutionBwdFilterAlgo_t>(algorithm), ws, bytes,
                                                    &kZero, p.w, gradWeight.data()),
                   "cudnnConvolutionBackwardFilter");
      });
  gradWeight.finish(dw);
  if (dbias) channelSum(dy, *dbias);
}

}  // namespace segvol
