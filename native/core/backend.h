// The backend interface: memory, copies and the op primitives every backend
// implements (CPU/oneDNN always, CUDA/cuDNN when compiled, and the plain
// reference used by tests as the oracle). Callers (native/ops) validate shapes
// and allocate outputs; a backend only computes, writing into given outputs.
// The op primitives are listed once, in backend_ops.inc (with their shape
// comments and the table of op families); memory and copies in
// backend_memory.inc. Every declaration of them is generated from those lists.
//
// Spatial geometry is always given for three axes (D, H, W); a 2D op has
// spatialRank 2 and D entries of kernel 1, stride 1, padding 0, dilation 1, so
// backends can treat (N, C, H, W) as (N, C, 1, H, W).
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "math_mode.h"
#include "tensor.h"

namespace segvol {

using Triple = std::array<int64_t, 3>;  // (D, H, W)

struct ConvGeometry {
  int spatialRank = 2;
  Triple stride{1, 1, 1};
  Triple padding{0, 0, 0};
  Triple dilation{1, 1, 1};
  int64_t groups = 1;
};

struct PoolGeometry {
  int spatialRank = 2;
  Triple kernel{1, 1, 1};
  Triple stride{1, 1, 1};
  Triple padding{0, 0, 0};
  Triple dilation{1, 1, 1};
  bool countIncludePad = true;  // average pooling only, as PyTorch's default
};

enum class ActivationKind { Tanh, Sigmoid, Relu };
enum class BinaryKind { Add, Mul };
// The names JS uses for them (the binding's kind arguments, the profiler's rows).
inline const char* activationName(ActivationKind kind) {
  return kind == ActivationKind::Tanh ? "tanh" : kind == ActivationKind::Sigmoid ? "sigmoid" : "relu";
}
inline const char* binaryName(BinaryKind kind) { return kind == BinaryKind::Add ? "add" : "mul"; }
enum class UpsampleMode { Nearest, Linear };
enum class LossKind { SquaredError, CrossEntropy, SoftDice, SoftIoU };
enum class OptimizerKind { RmspropMomentum, SgdMomentum, Adam };

struct OptimizerHyper {
  double lr = 1e-2;
  double rho = 0.9;       // RMSprop: running average of squared gradients (rho_MSE)
  double rhoM = 0.9;      // RMSprop: smoothing of the normalised gradient (rho_M)
  double momentum = 0.9;  // SGD
  double beta1 = 0.9, beta2 = 0.999;  // Adam
  double eps = 1e-5;
  double weightDecay = 0;  // L2, added to the gradient
  int64_t step = 1;        // Adam's bias correction: the 1-based update count
};

// A point in a backend's queue of work, for timing ops that run asynchronously.
class TimingMark {
 public:
  virtual ~TimingMark() = default;
};

class Backend;

// Pushes a named range on construction and pops it on destruction (no-op on the CPU).
class ScopedRange {
 public:
  ScopedRange(Backend& backend, const char* name);
  ~ScopedRange();
  ScopedRange(const ScopedRange&) = delete;
  ScopedRange& operator=(const ScopedRange&) = delete;

 private:
  Backend& backend_;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;

  // Profiling. A backend whose ops run asynchronously (CUDA) records marks in its
  // queue and measures between them (waiting for both); nullptr means the host
  // clock around a call measures it exactly (CPU).
  virtual std::shared_ptr<TimingMark> timingMark() { return nullptr; }
  virtual double elapsedMs(const TimingMark& start, const TimingMark& end) { return 0; }
  // Named ranges for external profilers (NVTX on CUDA, so Nsight shows segvol's ops).
  virtual void rangePush(const char* name) {}
  virtual void rangePop() {}
  // Waits until every op queued so far has finished (no-op where ops are synchronous).
  virtual void synchronize() {}

  // Memory and copies (backend_memory.inc).
#define SEGVOL_BACKEND_MEMORY(Ret, name, params, args, qualifiers, timing) virtual Ret name params qualifiers = 0;
#include "backend_memory.inc"
  // Index of the first tensor holding a NaN or Inf, or -1. One answer for many
  // tensors: a GPU backend reads back once instead of once per tensor.
  virtual int firstNonFinite(const std::vector<const Tensor*>& ts) {
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!allFinite(*ts[i])) return static_cast<int>(i);
    }
    return -1;
  }

  // The op primitives, one per entry of backend_ops.inc (shape comments there).
#define SEGVOL_BACKEND_OP(Ret, name, params, args, timing) virtual Ret name params = 0;
#include "backend_ops.inc"
};

inline ScopedRange::ScopedRange(Backend& backend, const char* name) : backend_(backend) { backend_.rangePush(name); }
inline ScopedRange::~ScopedRange() { backend_.rangePop(); }

}  // namespace segvol
