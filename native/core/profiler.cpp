#include "profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

namespace segvol {
namespace {

std::atomic<bool> active{false};
std::mutex recordsMutex;
std::map<std::string, ProfileRecord> records;

std::string shapesOf(std::initializer_list<const Tensor*> tensors) {
  std::string out;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!out.empty()) out += " ";
    out += shapeToString(t->shape());
  }
  return out;
}

// 2 * multiply-adds of a convolution with these operands.
double convFlops(const Tensor& x, const Tensor& w, const Tensor& y, int64_t groups) {
  (void)x;
  int64_t kernel = 1;
  for (int a = 1; a < w.rank(); ++a) kernel *= w.dim(a);  // C/groups * k...
  int64_t outSpatial = 1;
  for (int a = 2; a < y.rank(); ++a) outSpatial *= y.dim(a);
  (void)groups;
  return 2.0 * static_cast<double>(y.dim(0)) * static_cast<double>(w.dim(0)) * static_cast<double>(kernel) *
         static_cast<double>(outSpatial);
}

ProfileRecord& recordFor(const char* op, const std::string& backend, const std::string& shapes, double flops) {
  ProfileRecord& r = records[std::string(op) + "|" + backend + "|" + shapes];
  if (r.count == 0) {
    r.op = op;
    r.backend = backend;
    r.shapes = shapes;
    r.flops = flops;
  }
  return r;
}

// Device-timed calls waiting for profilingStop(): reading an event's time waits
// for the device, so it is done once at the end, not after every op.
struct PendingTiming {
  Backend* backend;
  std::shared_ptr<TimingMark> start, end;
  std::string key;
};
std::vector<PendingTiming> pending;

// Times one backend call: the host clock, or the backend's own marks where its
// ops run asynchronously; also a named range for external profilers.
class Timer {
 public:
  Timer(Backend& inner, const char* op, const std::string& backend, std::string shapes, double flops)
      : inner_(inner), op_(op), backend_(backend), shapes_(std::move(shapes)), flops_(flops) {
    inner_.rangePush(op);
    startMark_ = inner_.timingMark();
    start_ = std::chrono::steady_clock::now();
  }
  ~Timer() {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    std::shared_ptr<TimingMark> endMark;
    try {
      if (startMark_) endMark = inner_.timingMark();
    } catch (...) {
      // a failing device shows in the op's own error; the timing is dropped
    }
    inner_.rangePop();
    std::lock_guard<std::mutex> lock(recordsMutex);
    ProfileRecord& r = recordFor(op_, backend_, shapes_, flops_);
    ++r.count;
    if (startMark_ && endMark) {
      pending.push_back({&inner_, startMark_, endMark, std::string(op_) + "|" + backend_ + "|" + shapes_});
    } else {
      r.totalMs += ms;
    }
  }

 private:
  Backend& inner_;
  const char* op_;
  const std::string& backend_;
  std::string shapes_;
  double flops_;
  std::shared_ptr<TimingMark> startMark_;
  std::chrono::steady_clock::time_point start_;
};

#define SEGVOL_TIME(op, flops, ...) Timer timer_(inner_, op, name_, shapesOf({__VA_ARGS__}), flops)

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner), name_(inner.name()) {}
  std::string name() const override { return name_; }
  Device device() const override { return inner_.device(); }
  std::shared_ptr<TimingMark> timingMark() override { return inner_.timingMark(); }
  double elapsedMs(const TimingMark& start, const TimingMark& end) override { return inner_.elapsedMs(start, end); }
  void rangePush(const char* name) override { inner_.rangePush(name); }
  void rangePop() override { inner_.rangePop(); }
  void synchronize() override { inner_.synchronize(); }
  void* allocate(size_t bytes) override { return inner_.allocate(bytes); }
  void deallocate(void* ptr, size_t bytes) noexcept override { inner_.deallocate(ptr, bytes); }
  void copyFromHost(const float* src, Tensor& dst) override { inner_.copyFromHost(src, dst); }
  void copyToHost(const Tensor& src, float* dst) override { inner_.copyToHost(src, dst); }
  void copy(const Tensor& src, Tensor& dst) override {
    SEGVOL_TIME("copy", 0, &src);
    inner_.copy(src, dst);
  }
  void fill(Tensor& t, float value) override {
    SEGVOL_TIME("fill", 0, &t);
    inner_.fill(t, value);
  }
  int firstNonFinite(const std::vector<const Tensor*>& ts) override {
    SEGVOL_TIME("allFinite", 0, ts.empty() ? nullptr : ts[0]);
    return inner_.firstNonFinite(ts);
  }
  bool allFinite(const Tensor& t) override {
    SEGVOL_TIME("allFinite", 0, &t);
    return inner_.allFinite(t);
  }
  void convForward(const ConvGeometry& g, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    SEGVOL_TIME("convForward", convFlops(x, w, y, g.groups), &x, &w, &y);
    inner_.convForward(g, x, w, bias, y);
  }
  void convBackwardData(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx) override {
    SEGVOL_TIME("convBackwardData", convFlops(dx, w, dy, g.groups), &dy, &w, &dx);
    inner_.convBackwardData(g, dy, w, dx);
  }
  void convBackwardWeights(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* dbias) override {
    SEGVOL_TIME("convBackwardWeights", convFlops(x, dw, dy, g.groups), &x, &dy, &dw);
    inner_.convBackwardWeights(g, x, dy, dw, dbias);
  }
  void addChannelBias(Tensor& y, const Tensor& bias) override {
    SEGVOL_TIME("addChannelBias", 0, &y);
    inner_.addChannelBias(y, bias);
  }
  void channelSum(const Tensor& dy, Tensor& dbias) override {
    SEGVOL_TIME("channelSum", 0, &dy);
    inner_.channelSum(dy, dbias);
  }
  void maxPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override {
    SEGVOL_TIME("maxPoolForward", 0, &x, &y);
    inner_.maxPoolForward(g, x, y);
  }
  void maxPoolBackward(const PoolGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("maxPoolBackward", 0, &x, &dy);
    inner_.maxPoolBackward(g, x, dy, dx);
  }
  void avgPoolForward(const PoolGeometry& g, const Tensor& x, Tensor& y) override {
    SEGVOL_TIME("avgPoolForward", 0, &x, &y);
    inner_.avgPoolForward(g, x, y);
  }
  void avgPoolBackward(const PoolGeometry& g, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("avgPoolBackward", 0, &dy, &dx);
    inner_.avgPoolBackward(g, dy, dx);
  }
  void upsampleForward(UpsampleMode mode, bool alignCorners, const Tensor& x, Tensor& y) override {
    SEGVOL_TIME("upsampleForward", 0, &x, &y);
    inner_.upsampleForward(mode, alignCorners, x, y);
  }
  void upsampleBackward(UpsampleMode mode, bool alignCorners, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("upsampleBackward", 0, &dy, &dx);
    inner_.upsampleBackward(mode, alignCorners, dy, dx);
  }
  void batchNormTrainForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps, double momentum,
                             Tensor& runningMean, Tensor& runningVar, Tensor& y, Tensor& saveMean,
                             Tensor& saveInvStd) override {
    SEGVOL_TIME("batchNormTrainForward", 0, &x);
    inner_.batchNormTrainForward(x, gamma, beta, eps, momentum, runningMean, runningVar, y, saveMean, saveInvStd);
  }
  void batchNormInferenceForward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& runningMean,
                                 const Tensor& runningVar, double eps, Tensor& y) override {
    SEGVOL_TIME("batchNormInferenceForward", 0, &x);
    inner_.batchNormInferenceForward(x, gamma, beta, runningMean, runningVar, eps, y);
  }
  void batchNormBackward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& invStd,
                         bool batchStatistics, const Tensor& dy, Tensor& dx, Tensor& dgamma, Tensor& dbeta) override {
    SEGVOL_TIME("batchNormBackward", 0, &x);
    inner_.batchNormBackward(x, gamma, mean, invStd, batchStatistics, dy, dx, dgamma, dbeta);
  }
  void unary(UnaryKind kind, const Tensor& x, Tensor& y) override {
    SEGVOL_TIME(kind == UnaryKind::Tanh ? "tanh" : kind == UnaryKind::Sigmoid ? "sigmoid" : "relu", 0, &x);
    inner_.unary(kind, x, y);
  }
  void unaryBackward(UnaryKind kind, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("activationBackward", 0, &x);
    inner_.unaryBackward(kind, x, y, dy, dx);
  }
  void binary(BinaryKind kind, const Tensor& a, const Tensor& b, Tensor& y) override {
    SEGVOL_TIME(kind == BinaryKind::Add ? "add" : "mul", 0, &a);
    inner_.binary(kind, a, b, y);
  }
  void scale(const Tensor& x, float factor, Tensor& y) override {
    SEGVOL_TIME("scale", 0, &x);
    inner_.scale(x, factor, y);
  }
  void sum(const std::vector<const Tensor*>& xs, Tensor& y) override {
    SEGVOL_TIME("sum", 0, &y);
    inner_.sum(xs, y);
  }
  void softmaxForward(const Tensor& x, Tensor& y) override {
    SEGVOL_TIME("softmaxForward", 0, &x);
    inner_.softmaxForward(x, y);
  }
  void softmaxBackward(const Tensor& y, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("softmaxBackward", 0, &y);
    inner_.softmaxBackward(y, dy, dx);
  }
  void lstmStepForward(Tensor& gates, const Tensor* recurrent, const Tensor* recurrentBias, const Tensor* cPrev,
                       const Tensor* peepholes, Tensor& c, Tensor& h) override {
    SEGVOL_TIME("lstmStepForward", 0, &gates);
    inner_.lstmStepForward(gates, recurrent, recurrentBias, cPrev, peepholes, c, h);
  }
  void lstmStepBackward(const Tensor& gates, const Tensor* cPrev, const Tensor& c, const Tensor& dh,
                        const Tensor* dhRecurrent, const Tensor* peepholes, Tensor& dc, Tensor& dgates) override {
    SEGVOL_TIME("lstmStepBackward", 0, &gates);
    inner_.lstmStepBackward(gates, cPrev, c, dh, dhRecurrent, peepholes, dc, dgates);
  }
  void rnnStepForward(bool relu, const Tensor& pre, const Tensor* recurrent, const Tensor* bias, Tensor& h) override {
    SEGVOL_TIME("rnnStepForward", 0, &pre);
    inner_.rnnStepForward(relu, pre, recurrent, bias, h);
  }
  void rnnStepBackward(bool relu, const Tensor& h, const Tensor& dh, const Tensor* dhRecurrent, Tensor& dpre) override {
    SEGVOL_TIME("rnnStepBackward", 0, &h);
    inner_.rnnStepBackward(relu, h, dh, dhRecurrent, dpre);
  }
  void gruStepForward(const Tensor& gi, const Tensor* gh, const Tensor* bias, const Tensor* hPrev, Tensor& act,
                      Tensor& h) override {
    SEGVOL_TIME("gruStepForward", 0, &gi);
    inner_.gruStepForward(gi, gh, bias, hPrev, act, h);
  }
  void gruStepBackward(const Tensor& act, const Tensor* hPrev, const Tensor& dh, const Tensor* dhRecurrent,
                       Tensor& dhCarry, Tensor& dgi, Tensor& dgh) override {
    SEGVOL_TIME("gruStepBackward", 0, &act);
    inner_.gruStepBackward(act, hPrev, dh, dhRecurrent, dhCarry, dgi, dgh);
  }
  double lossForwardBackward(LossKind kind, const Tensor& probs, const Tensor& labels, const Tensor* mask,
                             const Tensor* classWeights, Tensor& grad) override {
    SEGVOL_TIME("loss", 0, &probs);
    return inner_.lossForwardBackward(kind, probs, labels, mask, classWeights, grad);
  }
  void optimizerUpdate(OptimizerKind kind, const OptimizerHyper& h, Tensor& param, const Tensor& grad, Tensor& state1,
                       Tensor& state2) override {
    SEGVOL_TIME("optimizerUpdate", 0, &param);
    inner_.optimizerUpdate(kind, h, param, grad, state1, state2);
  }
  void permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) override {
    SEGVOL_TIME("permute", 0, &x, &y);
    inner_.permute(x, perm, y);
  }
  void flip(const Tensor& x, const std::vector<int>& axes, Tensor& y) override {
    SEGVOL_TIME("flip", 0, &x);
    inner_.flip(x, axes, y);
  }
  void clamp(const Tensor& x, float lo, float hi, Tensor& y) override {
    SEGVOL_TIME("clamp", 0, &x);
    inner_.clamp(x, lo, hi, y);
  }
  void clampBackward(const Tensor& x, float lo, float hi, const Tensor& dy, Tensor& dx) override {
    SEGVOL_TIME("clampBackward", 0, &x);
    inner_.clampBackward(x, lo, hi, dy, dx);
  }
  double sumSquares(const Tensor& x) override {
    SEGVOL_TIME("sumSquares", 0, &x);
    return inner_.sumSquares(x);
  }
  void copyAxisRange(const Tensor& src, int64_t srcStart, Tensor& dst, int64_t dstStart, int axis,
                     int64_t count) override {
    SEGVOL_TIME("copyAxisRange", 0, &src, &dst);
    inner_.copyAxisRange(src, srcStart, dst, dstStart, axis, count);
  }

 private:
  Backend& inner_;
  std::string name_;
};

}  // namespace

void profilingStart() {
  std::lock_guard<std::mutex> lock(recordsMutex);
  records.clear();
  pending.clear();
  active = true;
}

std::vector<ProfileRecord> profilingStop() {
  active = false;
  std::lock_guard<std::mutex> lock(recordsMutex);
  std::vector<PendingTiming> timings;
  timings.swap(pending);
  for (const PendingTiming& p : timings) {
    auto it = records.find(p.key);
    if (it != records.end()) it->second.totalMs += p.backend->elapsedMs(*p.start, *p.end);
  }
  std::vector<ProfileRecord> out;
  for (auto& [key, r] : records) out.push_back(r);
  records.clear();
  std::sort(out.begin(), out.end(), [](const ProfileRecord& a, const ProfileRecord& b) { return a.totalMs > b.totalMs; });
  return out;
}

bool profilingActive() { return active.load(std::memory_order_relaxed); }

Backend& profiled(Backend& inner) {
  static std::mutex mutex;
  static std::map<Backend*, std::unique_ptr<ProfilingBackend>> wrappers;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = wrappers[&inner];
  if (!slot) slot = std::make_unique<ProfilingBackend>(inner);
  return *slot;
}

}  // namespace segvol
