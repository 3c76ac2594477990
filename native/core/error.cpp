#include "error.h"

namespace segvol {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::Shape: return "ERR_SHAPE";
    case ErrorCode::Argument: return "ERR_ARGUMENT";
    case ErrorCode::Device: return "ERR_DEVICE";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    case ErrorCode::NonFinite: return "ERR_NON_FINITE";
    case ErrorCode::Memory: return "ERR_MEMORY";
    case ErrorCode::Native: return "ERR_NATIVE";
    case ErrorCode::NotBuilt: return "ERR_NOT_BUILT";
    case ErrorCode::PeerLost: return "ERR_PEER_LOST";
  }
  return "ERR_NATIVE";
}

void fail(ErrorCode code, const std::string& message) { throw Error(code, message); }

}  // namespace segvol
