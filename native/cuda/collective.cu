// The gradient allreduce of data-parallel training for cuda tensors, through NCCL: the
// tensors are packed into one device buffer (stream order), NCCL averages it across
// the ranks in place (ncclAvg), and the means are unpacked into new tensors. The NCCL
// communicator is made on first use, its id sent from rank 0 over MPI. Completion is
// polled to the deadline, checking NCCL's asynchronous errors; past it the communicator
// is aborted and the call throws ERR_PEER_LOST.
#include <chrono>
#include <cstring>
#include <thread>

#include "../core/error.h"
#include "collective.h"
#include "cuda_common.cuh"
#include "nccl_loader.h"

namespace segvol::cuda {
namespace {

struct Communicator {
  ncclComm_t comm = nullptr;
  int rank = -1, size = 0;
};

Communicator& communicator() {
  static Communicator c;
  return c;
}

const NcclApi& nccl() {
  std::string reason;
  const NcclApi* api = loadNccl(&reason);
  if (!api) fail(ErrorCode::NotBuilt, "distributed on cuda: " + reason);
  return *api;
}

void checkNccl(ncclResult_t status, const char* call, const std::string& what) {
  if (status == ncclSuccess || status == ncclInProgress) return;
  fail(ErrorCode::PeerLost, what + ": " + call + " failed: " + nccl().ncclGetErrorString(status));
}

}  // namespace

std::string ncclUnavailableReason() {
  std::string reason;
  return loadNccl(&reason) ? "" : reason;
}

std::vector<Tensor> ncclAllreduceMean(const std::vector<const Tensor*>& tensors, int rank, int size, double timeoutSeconds, const std::string& what,
                                      const std::function<std::vector<uint8_t>(std::vector<uint8_t>)>& broadcastFromRank0) {
  const NcclApi& api = nccl();
  Communicator& c = communicator();
  if (!c.comm || c.rank != rank || c.size != size) {
    ncclUniqueId id{};
    if (rank == 0) checkNccl(api.ncclGetUniqueId(&id), "ncclGetUniqueId", what);
    std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof(id));
    bytes = broadcastFromRank0(bytes);
    std::memcpy(&id, bytes.data(), sizeof(id));
    checkNccl(api.ncclCommInitRank(&c.comm, size, id, rank), "ncclCommInitRank", what);
    c.rank = rank;
    c.size = size;
  }
  int64_t total = 0;
  for (const Tensor* t : tensors) total += t->size();
  Scratch<float> packed(static_cast<size_t>(total));
  int64_t offset = 0;
  for (const Tensor* t : tensors) {
    check(cudaMemcpy(packed.get() + offset, t->data(), t->bytes(), cudaMemcpyDeviceToDevice), "cudaMemcpy (packing gradients)");
    offset += t->size();
  }
  checkNccl(api.ncclAllReduce(packed.get(), packed.get(), static_cast<size_t>(total), ncclFloat, ncclAvg, c.comm, nullptr), "ncclAllReduce", what);
  // The default stream runs the reduction; wait for it to the deadline, watching NCCL's own errors.
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const cudaError_t state = cudaStreamQuery(nullptr);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady) check(state, "the NCCL allreduce");
    ncclResult_t async = ncclSuccess;
    api.ncclCommGetAsyncError(c.comm, &async);
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if ((async != ncclSuccess && async != ncclInProgress) || waited > timeoutSeconds) {
      api.ncclCommAbort(c.comm);
      c.comm = nullptr;
      fail(ErrorCode::PeerLost, what + ": " + (waited > timeoutSeconds ? "no answer from every rank within " + std::to_string(timeoutSeconds) + " s"
                                                                          : std::string("NCCL: ") + api.ncclGetErrorString(async)));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::vector<Tensor> means;
  offset = 0;
  for (const Tensor* t : tensors) {
    Tensor mean = Tensor::empty(t->backend(), t->shape());
    check(cudaMemcpy(mean.data(), packed.get() + offset, t->bytes(), cudaMemcpyDeviceToDevice), "cudaMemcpy (unpacking gradients)");
    offset += t->size();
    means.push_back(std::move(mean));
  }
  return means;
}

}  // namespace segvol::cuda
