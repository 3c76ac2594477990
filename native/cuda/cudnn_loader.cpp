#include "cudnn_loader.h"

#include <dlfcn.h>

#include <mutex>

namespace segvol::cuda {

const CudnnApi* loadCudnn(std::string* reason) {
  static std::once_flag once;
  static CudnnApi api;
  static bool ok = false;
  static std::string failure;
  std::call_once(once, [] {
    // The versioned name first: pip's nvidia-cudnn-cu13 ships no unversioned libcudnn.so.
    void* lib = nullptr;
    for (const char* name : {"libcudnn.so.9", "libcudnn.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
    }
    if (!lib) {
      const char* error = dlerror();
      failure = std::string("libcudnn.so.9 could not be loaded (") + (error ? error : "not found") +
                "); add cuDNN's lib folder to LD_LIBRARY_PATH or install cuDNN 9";
      return;
    }
#define SEGVOL_CUDNN_FN(name)                                                     \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));             \
  if (!api.name) {                                                                \
    failure = std::string("cuDNN lacks ") + #name + "; segvol needs cuDNN 9";     \
    return;                                                                       \
  }
#include "cudnn_functions.inc"
#undef SEGVOL_CUDNN_FN
    ok = true;
  });
  if (!ok && reason) *reason = failure;
  return ok ? &api : nullptr;
}

}  // namespace segvol::cuda
