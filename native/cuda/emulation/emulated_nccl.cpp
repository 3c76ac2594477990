// NCCL for the emulated CUDA build: emulated device memory is host memory, so the
// reduction goes through the MPI plugin (native/distributed), on the buffers the real
// path would hand to NCCL. What this checks: collective.cu's packing and unpacking,
// its stream order, the average and the communicator set-up through MPI; a host pointer
// handed to the collective fails as it would on a GPU. Not: NCCL's transports, its
// asynchronous errors, or timing.
#include <cstdio>
#include <cstring>

#include "../../core/error.h"
#include "../../distributed/communicator.h"
#include "../nccl_loader.h"

struct EmulatedNcclComm {
  int rank;
  int size;
};

ncclResult_t ncclGetVersion(int* version) {
  *version = 0;  // the emulator
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument (emulated NCCL)";
    case ncclInvalidUsage: return "invalid usage: a host pointer (emulated NCCL)";
    case ncclRemoteError: return "a peer failed (emulated NCCL)";
    default: return "error (emulated NCCL)";
  }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId) {
  std::memset(uniqueId->internal, 0, sizeof(uniqueId->internal));
  std::snprintf(uniqueId->internal, sizeof(uniqueId->internal), "segvol-emulated-nccl");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
  if (std::strcmp(commId.internal, "segvol-emulated-nccl") != 0 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  *comm = new EmulatedNcclComm{rank, nranks};
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t) {
  if (!comm || datatype != ncclFloat || (op != ncclAvg && op != ncclSum)) return ncclInvalidArgument;
  const size_t bytes = count * sizeof(float);
  if (!segvol::emulation::isDeviceRange(sendbuff, bytes) || !segvol::emulation::isDeviceRange(recvbuff, bytes)) return ncclInvalidUsage;
  if (sendbuff != recvbuff) std::memcpy(recvbuff, sendbuff, bytes);
  float* data = static_cast<float*>(recvbuff);
  try {
    segvol::distributed::allreduceSumHost(data, static_cast<int64_t>(count), "the emulated NCCL allreduce");
  } catch (const segvol::Error&) {
    return ncclRemoteError;
  }
  if (op == ncclAvg) {
    for (size_t i = 0; i < count; ++i) data[i] /= static_cast<float>(comm->size);
  }
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t, ncclResult_t* asyncError) {
  *asyncError = ncclSuccess;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  delete comm;
  return ncclSuccess;
}

namespace segvol::cuda {

const NcclApi* loadNccl(std::string*) {
  static const NcclApi api = [] {
    NcclApi a;
#define SEGVOL_NCCL_FN(name) a.name = &::name;
#include "../nccl_functions.inc"
#undef SEGVOL_NCCL_FN
    return a;
  }();
  return &api;
}

}  // namespace segvol::cuda
