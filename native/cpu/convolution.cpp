// Convolutions through oneDNN: forward, backward-data and backward-weights
// primitives, created once per (kind, shapes, geometry) and cached. Each call
// brings its own scratchpad, so one cached primitive may run on several threads
// at once (the six PyraMiD-LSTM directions share shapes).
#include <dnnl.hpp>

#include <algorithm>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/error.h"
#include "../core/math_mode.h"
#include "conv_gemm.h"
#include "cpu_backend.h"

namespace segvol {
namespace {

using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::dims dimsOf(const Tensor& t) { return memory::dims(t.shape().begin(), t.shape().end()); }

tag activationTag(int rank) { return rank == 4 ? tag::nchw : tag::ncdhw; }

// oneDNN wants grouped weights as (G, O/G, C/G, k...).
memory::desc userWeightsDesc(const Tensor& w, int64_t groups) {
  memory::dims d = dimsOf(w);
  if (groups == 1) return memory::desc(d, memory::data_type::f32, w.rank() == 4 ? tag::oihw : tag::oidhw);
  d[0] /= groups;
  d.insert(d.begin(), groups);
  return memory::desc(d, memory::data_type::f32, w.rank() == 4 ? tag::goihw : tag::goidhw);
}

memory::desc anyLike(const memory::desc& user, memory::data_type type = memory::data_type::f32) {
  return memory::desc(user.dims(), type, tag::any);
}

// Whether a convolution computes in bfloat16: in BF16 mode, when it has at least 16
// input and 16 output channels. Thinner ones (a network's first layer on 1-5 image
// channels, 8-channel heads) stay float32 on the matrix-product paths: oneDNN's bf16
// kernels ran them 2-3x slower than float32 (the MRI network's 1 -> 64 first
// convolution: 83 ms against 27).
// (The rule is core/math_mode.h's, shared with the CUDA backend.) Checks first that the
// CPU can compute the mode at all: 'fp16' is a GPU mode, and 'bf16' needs AVX512-BF16
// (setConvMath lets it through on such a CPU when a GPU backend could use it).
bool computesInBf16(const Tensor& in, const Tensor& w, const char* op) {
  const ConvMath mode = convMath();
  if (mode == ConvMath::Fp16) {
    fail(ErrorCode::Device, std::string(op) + ": the convolution math is 'fp16', which only the cuda backend computes; "
                                              "on the cpu use 'bf16' (mixed precision) or 'fp32'");
  }
  if (mode == ConvMath::Bf16) {
    static const std::string unsupported = CpuBackend::bf16Unsupported();
    if (!unsupported.empty()) {
      fail(ErrorCode::Device, std::string(op) + ": the convolution math is 'bf16', but " + unsupported + "; use 'fp32' on the cpu");
    }
  }
  return halfPrecisionConvolution(in.dim(1), w.dim(0));
}

// The type the primitives take their operands in (input, weights, incoming gradient):
// bfloat16 when computesInBf16, where oneDNN accumulates in float32 and writes float32
// results; the rounding happens in the reorder from the user's float32 buffer.
memory::data_type operandType(const Tensor& in, const Tensor& w) {
  return halfPrecisionConvolution(in.dim(1), w.dim(0)) ? memory::data_type::bf16 : memory::data_type::f32;
}

// Activation layout for a pass. oneDNN's blocked layouts pad channels to 16 (or
// 8): for input channel counts off that grid (5, 25: the first C-LSTM layers),
// its channels-last kernels run forward and backward-weights 15-40% faster,
// reorders included (measured on AVX-512); backward-data gains nothing there.
enum class Pass { Forward, BackwardData, BackwardWeights };
// In BF16 mode backward-weights keeps oneDNN's own layout: its channels-last bf16 kernel
// (oneDNN 2.6.3) returned NaN and wrong weight gradients for dilated convolutions
// (VD2D3D's (1, 3, 3) kernels dilated (1, 4, 4) on 40 channels; test/precision.test.ts).
memory::desc activationDesc(const memory::desc& user, int64_t inChannels, Pass pass,
                            memory::data_type type = memory::data_type::f32) {
  const bool channelsLast = pass == Pass::Forward || (pass == Pass::BackwardWeights && type == memory::data_type::f32);
  if (channelsLast && inChannels % 16 != 0) {
    return memory::desc(user.dims(), type, user.dims().size() == 4 ? tag::nhwc : tag::ndhwc);
  }
  return anyLike(user, type);
}

struct SpatialParams {
  memory::dims strides, dilates, padL, padR;
};

// in/out: the convolution's input and output tensors (for transposed use, the roles as a convolution).
SpatialParams spatialParams(const ConvGeometry& g, const Tensor& in, const Tensor& w, const Tensor& out) {
  SpatialParams p;
  const int first = 3 - g.spatialRank;  // geometry index of the first spatial axis
  for (int a = 0; a < g.spatialRank; ++a) {
    const int axis = 2 + a;
    const int64_t extent = (w.dim(axis) - 1) * g.dilation[first + a] + 1;
    p.strides.push_back(g.stride[first + a]);
    p.dilates.push_back(g.dilation[first + a] - 1);  // oneDNN counts the gaps, 0 = dense
    p.padL.push_back(g.padding[first + a]);
    // The exact right padding that makes oneDNN's size check hold, also when
    // the last rows of the input do not fit a stride.
    p.padR.push_back((out.dim(axis) - 1) * g.stride[first + a] + extent - in.dim(axis) - g.padding[first + a]);
  }
  return p;
}

std::string cacheKey(const char* kind, const ConvGeometry& g, const Tensor& in, const Tensor& w, const Tensor& out,
                     bool bias) {
  std::string key = kind;
  key += shapeToString(in.shape()) + shapeToString(w.shape()) + shapeToString(out.shape());
  for (int a = 0; a < 3; ++a) {
    key += "|" + std::to_string(g.stride[a]) + "," + std::to_string(g.padding[a]) + "," + std::to_string(g.dilation[a]);
  }
  key += "|g" + std::to_string(g.groups) + (bias ? "b" : "n");
  if (halfPrecisionConvolution(in.dim(1), w.dim(0))) key += "|bf16";
  return key;
}

// A primitive and the memory layouts it chose for its arguments.
struct CachedPrimitive {
  dnnl::primitive primitive;
  std::unordered_map<int, memory::desc> argDescs;  // DNNL_ARG_* -> layout the primitive expects
  memory::desc scratchpad;
};

class PrimitiveCache {
 public:
  template <typename Make>
  std::shared_ptr<CachedPrimitive> get(const std::string& key, Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        ++stats_.hits;
        order_.splice(order_.begin(), order_, it->second.second);
        return it->second.first;
      }
    }
    // Built outside the lock: creation can take milliseconds.
    auto made = std::make_shared<CachedPrimitive>(make());
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.misses;
    auto it = map_.find(key);
    if (it != map_.end()) return it->second.first;
    order_.push_front(key);
    map_.emplace(key, std::make_pair(made, order_.begin()));
    if (map_.size() > kCapacity) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    return made;
  }
  PrimitiveCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    PrimitiveCacheStats s = stats_;
    s.entries = static_cast<int64_t>(map_.size());
    return s;
  }

 private:
  static constexpr size_t kCapacity = 1024;
  std::mutex mutex_;
  std::list<std::string> order_;  // most recently used first
  std::unordered_map<std::string, std::pair<std::shared_ptr<CachedPrimitive>, std::list<std::string>::iterator>> map_;
  PrimitiveCacheStats stats_;
};

PrimitiveCache& primitiveCache() {
  static PrimitiveCache cache;
  return cache;
}

dnnl::primitive_attr userScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

struct ConvDescs {
  memory::desc src, weights, bias, dst;
};
ConvDescs userDescs(const ConvGeometry& g, const Tensor& in, const Tensor& w, const Tensor& out) {
  return {memory::desc(dimsOf(in), memory::data_type::f32, activationTag(in.rank())), userWeightsDesc(w, g.groups),
          memory::desc({w.dim(0)}, memory::data_type::f32, tag::x),
          memory::desc(dimsOf(out), memory::data_type::f32, activationTag(out.rank()))};
}

dnnl::convolution_forward::primitive_desc forwardPd(const ConvGeometry& g, const Tensor& in, const Tensor& w,
                                                    const Tensor& out, bool bias, const dnnl::primitive_attr& attr,
                                                    Pass pass = Pass::Forward) {
  const ConvDescs u = userDescs(g, in, w, out);
  const int64_t c = in.dim(1);
  const SpatialParams p = spatialParams(g, in, w, out);
  const memory::data_type op = operandType(in, w), f32 = memory::data_type::f32;
  // The hint for the backward passes describes the forward problem in their operand types.
  const memory::data_type outType = pass == Pass::Forward ? f32 : op;
  auto desc = bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                     dnnl::algorithm::convolution_direct,
                                                     activationDesc(u.src, c, pass, op), anyLike(u.weights, op), u.bias,
                                                     activationDesc(u.dst, c, pass, outType), p.strides, p.dilates,
                                                     p.padL, p.padR)
                   : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                                     dnnl::algorithm::convolution_direct,
                                                     activationDesc(u.src, c, pass, op), anyLike(u.weights, op),
                                                     activationDesc(u.dst, c, pass, outType), p.strides, p.dilates,
                                                     p.padL, p.padR);
  return dnnl::convolution_forward::primitive_desc(desc, attr, cpuEngine());
}

// A buffer for the length of one call, from the backend's block cache. oneDNN's own
// allocation goes through malloc, which maps a large buffer fresh on every call, and
// each first touch costs a page fault and a page clear: the MRI decoder's last
// 64-channel convolution (3 x 64 x 3 x 240 x 240) faulted 65,000 pages a call and took
// 0.8-1.3 s inside a training step, against 0.25 s on reused memory (host_backend.cpp's
// cache limit has the system-time figures).
class CallBuffer {
 public:
  CallBuffer(HostBackend& backend, size_t bytes)
      : backend_(backend), bytes_(bytes), ptr_(bytes > 0 ? backend.allocate(bytes) : nullptr) {}
  ~CallBuffer() {
    if (ptr_) backend_.deallocate(ptr_, bytes_);
  }
  CallBuffer(const CallBuffer&) = delete;
  CallBuffer& operator=(const CallBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  HostBackend& backend_;
  size_t bytes_;
  void* ptr_;
};

// Runs a cached primitive on user (plain layout) buffers, reordering inputs into
// and outputs out of the layouts the primitive chose, in buffers from backend.
void execute(HostBackend& backend, const CachedPrimitive& cached,
             const std::unordered_map<int, std::pair<memory::desc, float*>>& inputs,
             const std::unordered_map<int, std::pair<memory::desc, float*>>& outputs) {
  dnnl::engine& engine = cpuEngine();
  dnnl::stream stream(engine);
  std::unordered_map<int, memory> args;
  std::vector<std::pair<memory, memory>> writeBack;  // (primitive's layout, user's layout)
  std::list<CallBuffer> buffers;  // a list: its elements never move
  // The user's buffer itself where the primitive takes its layout, else a buffer in the
  // primitive's layout: an input is reordered into it now, an output out of it afterwards.
  auto bind = [&](int arg, const std::pair<memory::desc, float*>& user, bool input) {
    memory userMem(user.first, engine, user.second);
    const memory::desc& wanted = cached.argDescs.at(arg);
    if (wanted == user.first) {
      args.emplace(arg, userMem);
      return;
    }
    const CallBuffer& buffer = buffers.emplace_back(backend, wanted.get_size());
    memory internal(wanted, engine, buffer.get());
    if (input) {
      dnnl::reorder(userMem, internal).execute(stream, userMem, internal);
    } else {
      writeBack.emplace_back(internal, userMem);
    }
    args.emplace(arg, internal);
  };
  for (const auto& [arg, user] : inputs) bind(arg, user, true);
  for (const auto& [arg, user] : outputs) bind(arg, user, false);
  const CallBuffer& scratch = buffers.emplace_back(backend, cached.scratchpad.get_size());
  memory scratchpad(cached.scratchpad, engine, scratch.get());
  args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad);
  cached.primitive.execute(stream, args);
  for (auto& [internal, userMem] : writeBack) dnnl::reorder(internal, userMem).execute(stream, internal, userMem);
  stream.wait();
}

[[noreturn]] void rethrowOnednn(const char* what, const dnnl::error& e, const Tensor& a, const Tensor& b) {
  fail(ErrorCode::Native, std::string(what) + ": oneDNN failed (" + e.what() + ", status " +
                              std::to_string(static_cast<int>(e.status)) + ") for shapes " + shapeToString(a.shape()) +
                              " and " + shapeToString(b.shape()) +
                              "; this is a bug in segvol if the shapes were accepted, please report it");
}

}  // namespace

PrimitiveCacheStats CpuBackend::primitiveCacheStats() { return primitiveCache().stats(); }

std::string CpuBackend::bf16Unsupported() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto wanted = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((isa & wanted) == wanted) return "";
  return "this CPU (or DNNL_MAX_CPU_ISA) gives oneDNN no AVX512-BF16 instructions (avx512_bf16 in /proc/cpuinfo; "
         "AMD Zen 4 and newer, Intel Cooper Lake, Sapphire Rapids and newer have them)";
}

std::string CpuBackend::onednnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

namespace {

// oneDNN converts plain-layout arguments into its blocked layouts in buffers of its
// own, as large as the arguments: for a PyraMiD layer's batched plane convolutions
// at 20x256x256 that is gigabytes beside the tensors. Batches whose input and
// output pass this size run in slices of the batch, so the conversions stay bounded.
constexpr int64_t kConversionBytes = int64_t{256} << 20;

// How many batch entries one call may take (the whole batch when small).
int64_t batchChunk(const Tensor& a, const Tensor& b) {
  const int64_t n = a.dim(0);
  const int64_t perEntry = static_cast<int64_t>((a.bytes() + b.bytes()) / static_cast<size_t>(n > 0 ? n : 1));
  if (n <= 1 || perEntry * n <= kConversionBytes) return n;
  return std::max<int64_t>(1, kConversionBytes / std::max<int64_t>(perEntry, 1));
}

// When a and b (the batched operands of a call) are too large for one call, calls
// run(n0, k) for the slices [n0, n0 + k) of the batch, in order, and returns true.
template <typename Run>
bool inBatchSlices(const Tensor& a, const Tensor& b, Run&& run) {
  const int64_t n = a.dim(0), chunk = batchChunk(a, b);
  if (chunk >= n) return false;
  for (int64_t n0 = 0; n0 < n; n0 += chunk) run(n0, std::min(chunk, n - n0));
  return true;
}

}  // namespace

void CpuBackend::convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias,
                             Tensor& y) {
  // The matrix-product paths compute in float32: a bf16 convolution goes to oneDNN.
  const bool fp32 = !computesInBf16(x, w, "conv forward");
  if (fp32 && cpu::isPointwiseConv(g, x, w)) {
    cpu::pointwiseForward(x, w, bias, y);
    return;
  }
  if (fp32 && cpu::isFewTapConv(g, x, w)) {
    cpu::fewTapForward(*this, g, x, w, bias, y);
    return;
  }
  if (fp32 && cpu::isPatchConv(g, x, w)) {
    cpu::patchForward(*this, x, w, bias, y);
    return;
  }
  if (fp32 && cpu::isDenseProduct(g, x, w)) {
    // y (rows, O) = x (rows, C) w (O, C)^T + bias
    const int64_t rows = x.dim(0), c = x.dim(1), o = w.dim(0);
    cpu::sgemm('N', 'T', rows, o, c, x.data(), c, w.data(), c, 0.0f, y.data(), o);
    if (bias) {
      const float* b = bias->data();
      float* out = y.data();
#pragma omp parallel for if (rows * o > kParallelThreshold)
      for (int64_t r = 0; r < rows; ++r) {
#pragma omp simd
        for (int64_t j = 0; j < o; ++j) out[r * o + j] += b[j];
      }
    }
    return;
  }
  const bool sliced = inBatchSlices(x, y, [&](int64_t n0, int64_t k) {
    Tensor part = y.slice(n0, k);
    convForward(g, x.slice(n0, k), w, bias, part);
  });
  if (sliced) return;
  try {
    auto cached = primitiveCache().get(cacheKey("fwd", g, x, w, y, bias), [&] {
      auto pd = forwardPd(g, x, w, y, bias != nullptr, userScratchpad());
      CachedPrimitive c{dnnl::convolution_forward(pd), {}, pd.scratchpad_desc()};
      c.argDescs = {{DNNL_ARG_SRC, pd.src_desc()}, {DNNL_ARG_WEIGHTS, pd.weights_desc()}, {DNNL_ARG_DST, pd.dst_desc()}};
      if (bias) c.argDescs.emplace(DNNL_ARG_BIAS, pd.bias_desc());
      return c;
    });
    const ConvDescs u = userDescs(g, x, w, y);
    std::unordered_map<int, std::pair<memory::desc, float*>> inputs = {{DNNL_ARG_SRC, {u.src, x.data()}},
                                                                       {DNNL_ARG_WEIGHTS, {u.weights, w.data()}}};
    if (bias) inputs.emplace(DNNL_ARG_BIAS, std::make_pair(u.bias, bias->data()));
    execute(*this, *cached, inputs, {{DNNL_ARG_DST, {u.dst, y.data()}}});
  } catch (const dnnl::error& e) {
    rethrowOnednn("conv forward", e, x, w);
  }
}

void CpuBackend::convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) {
  const bool fp32 = !computesInBf16(dx, w, "conv backward data");
  if (fp32 && cpu::isPointwiseConv(g, dx, w)) {
    cpu::pointwiseBackwardData(dy, w, dx);
    return;
  }
  if (fp32 && cpu::isFewTapConv(g, dx, w)) {
    cpu::fewTapBackwardData(*this, g, dy, w, dx);
    return;
  }
  if (fp32 && cpu::isPatchConv(g, dx, w)) {
    cpu::patchBackwardData(*this, dy, w, dx);
    return;
  }
  if (fp32 && cpu::isDenseProduct(g, dx, w)) {
    // dx (rows, C) = dy (rows, O) w (O, C)
    const int64_t rows = dx.dim(0), c = dx.dim(1), o = w.dim(0);
    cpu::sgemm('N', 'N', rows, c, o, dy.data(), o, w.data(), c, 0.0f, dx.data(), c);
    return;
  }
  const bool sliced = inBatchSlices(dy, dx, [&](int64_t n0, int64_t k) {
    Tensor part = dx.slice(n0, k);
    convBackwardData(g, dy.slice(n0, k), w, part);
  });
  if (sliced) return;
  try {
    auto cached = primitiveCache().get(cacheKey("bwd_data", g, dx, w, dy, false), [&] {
      const ConvDescs u = userDescs(g, dx, w, dy);
      const SpatialParams p = spatialParams(g, dx, w, dy);
      auto hint = forwardPd(g, dx, w, dy, false, dnnl::primitive_attr(), Pass::BackwardData);
      const memory::data_type op = operandType(dx, w);
      dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, anyLike(u.src),
                                                 anyLike(u.weights, op), anyLike(u.dst, op), p.strides, p.dilates,
                                                 p.padL, p.padR);
      dnnl::convolution_backward_data::primitive_desc pd(desc, userScratchpad(), cpuEngine(), hint);
      CachedPrimitive c{dnnl::convolution_backward_data(pd), {}, pd.scratchpad_desc()};
      c.argDescs = {{DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
                    {DNNL_ARG_WEIGHTS, pd.weights_desc()},
                    {DNNL_ARG_DIFF_SRC, pd.diff_src_desc()}};
      return c;
    });
    const ConvDescs u = userDescs(g, dx, w, dy);
    execute(*this, *cached, {{DNNL_ARG_DIFF_DST, {u.dst, dy.data()}}, {DNNL_ARG_WEIGHTS, {u.weights, w.data()}}},
            {{DNNL_ARG_DIFF_SRC, {u.src, dx.data()}}});
  } catch (const dnnl::error& e) {
    rethrowOnednn("conv backward data", e, dy, w);
  }
}

void CpuBackend::convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw,
                                     Tensor* dbias) {
  const bool fp32 = !computesInBf16(x, dw, "conv backward weights");
  if (fp32 && cpu::isPointwiseConv(g, x, dw)) {
    cpu::pointwiseBackwardWeights(x, dy, dw);
    if (dbias) channelSum(dy, *dbias);
    return;
  }
  if (fp32 && cpu::isFewTapConv(g, x, dw)) {
    cpu::fewTapBackwardWeights(*this, g, x, dy, dw);
    if (dbias) channelSum(dy, *dbias);
    return;
  }
  if (fp32 && cpu::isPatchConv(g, x, dw)) {
    cpu::patchBackwardWeights(*this, x, dy, dw);
    if (dbias) channelSum(dy, *dbias);
    return;
  }
  if (fp32 && cpu::isDenseProduct(g, x, dw)) {
    // dw (O, C) = dy (rows, O)^T x (rows, C)
    const int64_t rows = x.dim(0), c = x.dim(1), o = dw.dim(0);
    cpu::sgemm('T', 'N', o, c, rows, dy.data(), o, x.data(), c, 0.0f, dw.data(), c);
    if (dbias) channelSum(dy, *dbias);
    return;
  }
  // The gradient is a sum over the batch: slices' gradients added in slice order.
  Tensor partW, partB;
  const bool sliced = inBatchSlices(x, dy, [&](int64_t n0, int64_t k) {
    if (n0 == 0) {
      convBackwardWeights(g, x.slice(n0, k), dy.slice(n0, k), dw, dbias);
      return;
    }
    if (!partW.defined()) {
      partW = Tensor::empty(*this, dw.shape());
      if (dbias) partB = Tensor::empty(*this, dbias->shape());
    }
    convBackwardWeights(g, x.slice(n0, k), dy.slice(n0, k), partW, dbias ? &partB : nullptr);
    binary(BinaryKind::Add, dw, partW, dw);
    if (dbias) binary(BinaryKind::Add, *dbias, partB, *dbias);
  });
  if (sliced) return;
  try {
    auto cached = primitiveCache().get(cacheKey("bwd_weights", g, x, dw, dy, dbias), [&] {
      const ConvDescs u = userDescs(g, x, dw, dy);
      const SpatialParams p = spatialParams(g, x, dw, dy);
      auto hint = forwardPd(g, x, dw, dy, dbias != nullptr, dnnl::primitive_attr(), Pass::BackwardWeights);
      const memory::data_type op = operandType(x, dw);
      const memory::desc src = activationDesc(u.src, x.dim(1), Pass::BackwardWeights, op);
      const memory::desc dst = activationDesc(u.dst, x.dim(1), Pass::BackwardWeights, op);
      auto desc = dbias ? dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src,
                                                                    anyLike(u.weights), u.bias, dst, p.strides,
                                                                    p.dilates, p.padL, p.padR)
                        : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src,
                                                                    anyLike(u.weights), dst, p.strides, p.dilates,
                                                                    p.padL, p.padR);
      dnnl::convolution_backward_weights::primitive_desc pd(desc, userScratchpad(), cpuEngine(), hint);
      CachedPrimitive c{dnnl::convolution_backward_weights(pd), {}, pd.scratchpad_desc()};
      c.argDescs = {{DNNL_ARG_SRC, pd.src_desc()},
                    {DNNL_ARG_DIFF_DST, pd.diff_dst_desc()},
                    {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc()}};
      if (dbias) c.argDescs.emplace(DNNL_ARG_DIFF_BIAS, pd.diff_bias_desc());
      return c;
    });
    const ConvDescs u = userDescs(g, x, dw, dy);
    std::unordered_map<int, std::pair<memory::desc, float*>> outputs = {{DNNL_ARG_DIFF_WEIGHTS, {u.weights, dw.data()}}};
    if (dbias) outputs.emplace(DNNL_ARG_DIFF_BIAS, std::make_pair(u.bias, dbias->data()));
    execute(*this, *cached, {{DNNL_ARG_SRC, {u.src, x.data()}}, {DNNL_ARG_DIFF_DST, {u.dst, dy.data()}}}, outputs);
  } catch (const dnnl::error& e) {
    rethrowOnednn("conv backward weights", e, x, dy);
  }
}

}  // namespace segvol
