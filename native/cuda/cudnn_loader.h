// cuDNN is loaded with dlopen when the CUDA backend starts, not linked: the
// addon then loads on machines without libcudnn, and backends() says why CUDA
// is unavailable. Only the functions segvol calls are resolved.
#pragma once
#include <cudnn.h>

#include <string>

namespace segvol::cuda {

struct CudnnApi {
#define SEGVOL_CUDNN_FN(name) decltype(&::name) name = nullptr;
#include "cudnn_functions.inc"
#undef SEGVOL_CUDNN_FN
};

// The loaded API, or nullptr with *reason set (library or symbol missing).
const CudnnApi* loadCudnn(std::string* reason);

}  // namespace segvol::cuda
