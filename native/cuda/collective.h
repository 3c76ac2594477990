// The cuda side of the distributed allreduce (collective.cu), for native/distributed:
// plain C++ types only, so the communicator needs no CUDA or NCCL header.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace segvol::cuda {

// Empty where NCCL loads, else why not.
std::string ncclUnavailableReason();
// tensors: cuda tensors; returns each one's mean over the ranks (new tensors). broadcastFromRank0
// carries the NCCL id from rank 0 (MPI), the first time.
std::vector<Tensor> ncclAllreduceMean(const std::vector<const Tensor*>& tensors, int rank, int size, double timeoutSeconds, const std::string& what,
                                      const std::function<std::vector<uint8_t>(std::vector<uint8_t>)>& broadcastFromRank0);

}  // namespace segvol::cuda
