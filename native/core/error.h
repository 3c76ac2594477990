// Errors thrown by native code. Native code never exits or aborts: every failure is
// a segvol::Error with a stable code, turned into a JS Error by the binding.
#pragma once
#include <stdexcept>
#include <string>

namespace segvol {

enum class ErrorCode {
  Shape,      // ERR_SHAPE: a tensor's rank or sizes do not fit the operation
  Argument,   // ERR_ARGUMENT: an option is out of range or of the wrong type
  Device,     // ERR_DEVICE: tensors on different devices, or a device that is unavailable
  Disposed,   // ERR_DISPOSED: a tensor was used after dispose()
  NonFinite,  // ERR_NON_FINITE: NaN or Inf where only finite values make sense (weights, parameters)
  Memory,     // ERR_MEMORY: an allocation failed
  Native,     // ERR_NATIVE: a failure inside a library (oneDNN, CUDA) or a bug
  NotBuilt,   // ERR_NOT_BUILT: a feature this build lacks (the MPI plugin)
  PeerLost,   // ERR_PEER_LOST: a rank of a distributed job exited, stopped answering, or MPI failed
};

const char* errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] void fail(ErrorCode code, const std::string& message);

}  // namespace segvol
