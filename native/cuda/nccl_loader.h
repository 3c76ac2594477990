// NCCL, for the gradient allreduce of data-parallel training on GPUs, is loaded with
// dlopen when a distributed run first reduces cuda tensors (as cuDNN is), from pip's
// nvidia-nccl-cu13 or a system install: the addon loads without it. The emulated build
// stands in for it (emulation/emulated_nccl.cpp: the reduction goes through MPI on
// host memory, where emulated device memory lives).
#pragma once
#include <nccl.h>

#include <string>

namespace segvol::cuda {

struct NcclApi {
#define SEGVOL_NCCL_FN(name) decltype(&::name) name = nullptr;
#include "nccl_functions.inc"
#undef SEGVOL_NCCL_FN
};

// The loaded API, or nullptr with *reason set (library or symbol missing).
const NcclApi* loadNccl(std::string* reason);

}  // namespace segvol::cuda
