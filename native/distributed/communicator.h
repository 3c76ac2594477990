// Collectives across the ranks of an MPI job, for data-parallel training. The MPI
// plugin (segvol_mpi.so, built where MPI was found) is loaded on first use; every call
// must come from one thread (the binding's communication thread), since MPI is initialised FUNNELED.
// Failures throw: ERR_NOT_BUILT where there is no usable plugin, ERR_PEER_LOST when a
// peer exits, stops answering within the timeout, or MPI reports an error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace segvol::distributed {

struct Group {
  int rank = 0;
  int size = 1;
  std::string implementation;  // "Open MPI v4.1.4"
};

// How cuda tensors are reduced: "nccl", or "host memory: <why not NCCL>"; and how many
// reductions went through NCCL in this process.
std::string cudaCollective();
int64_t ncclReductions();
// allreduceMean calls in this process (NCCL's included).
int64_t reductions();
// Empty when the plugin loads, else why not and what to install.
std::string unavailableReason();
// The plugin's path (where it was looked for when it did not load).
std::string pluginPath();

Group init(double timeoutSeconds);
bool initialised();
// The mean over the ranks of each tensor, as new tensors on the same devices (host
// staging for device tensors). Every rank must pass tensors of the same sizes, in order.
std::vector<Tensor> allreduceMean(const std::vector<const Tensor*>& tensors, double timeoutSeconds, const std::string& what);
// data: (count) float32 in host memory, summed over the ranks in place (the timeout of the
// last allreduceMean, or 300 s).
void allreduceSumHost(float* data, int64_t count, const std::string& what);
// root's bytes on every rank (each rank passes a buffer of the same size).
std::vector<uint8_t> broadcast(std::vector<uint8_t> data, int root, double timeoutSeconds, const std::string& what);
// Every rank's bytes (the same count on each), in rank order.
std::vector<std::vector<uint8_t>> allgather(const std::vector<uint8_t>& data, double timeoutSeconds, const std::string& what);
void finalize();

}  // namespace segvol::distributed
