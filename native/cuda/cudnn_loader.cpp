#include "cudnn_loader.h"

#include "library_loader.h"

namespace segvol::cuda {

const CudnnApi* loadCudnn(std::string* reason) {
  // The versioned name first: pip's nvidia-cudnn-cu13 ships no unversioned libcudnn.so.
  return loadLibraryOnce<CudnnApi>(
      {"libcudnn.so.9", "libcudnn.so"}, "libcudnn.so.9", "add cuDNN's lib folder to LD_LIBRARY_PATH or install cuDNN 9",
      [](void* lib, CudnnApi& api, std::string& failure) {
#define SEGVOL_CUDNN_FN(name) SEGVOL_RESOLVE_OR_FAIL(name, std::string("cuDNN lacks ") + #name + "; segvol needs cuDNN 9")
#include "cudnn_functions.inc"
#undef SEGVOL_CUDNN_FN
        return true;
      },
      reason);
}

}  // namespace segvol::cuda
