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

// 2 * multiply-adds of a convolution with weights w and output y.
double convFlops(const Tensor& w, const Tensor& y) {
  int64_t kernel = 1;
  for (int a = 1; a < w.rank(); ++a) kernel *= w.dim(a);  // C/groups * k...
  int64_t outSpatial = 1;
  for (int a = 2; a < y.rank(); ++a) outSpatial *= y.dim(a);
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

// One call's timing, from the timing group of a list entry.
#define SEGVOL_TIMED(label, flops, ...) Timer timer_(inner_, label, name_, shapesOf({__VA_ARGS__}), flops)
#define SEGVOL_UNTIMED() (void)0

// Forwards every call to the backend it wraps, timing each op primitive and the
// copies (the wrappers are generated from core/backend_ops.inc and
// core/backend_memory.inc).
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
  int firstNonFinite(const std::vector<const Tensor*>& ts) override {
    SEGVOL_TIMED("allFinite", 0, ts.empty() ? nullptr : ts[0]);
    return inner_.firstNonFinite(ts);
  }

#define SEGVOL_BACKEND_MEMORY(Ret, name, params, args, qualifiers, timing) \
  Ret name params qualifiers override {                                    \
    timing;                                                                \
    return inner_.name args;                                               \
  }
#include "backend_memory.inc"

#define SEGVOL_BACKEND_OP(Ret, name, params, args, timing) \
  Ret name params override {                               \
    SEGVOL_TIMED timing;                                   \
    return inner_.name args;                               \
  }
#include "backend_ops.inc"

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
