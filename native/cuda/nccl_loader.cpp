#include "nccl_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace segvol::cuda {

const NcclApi* loadNccl(std::string* reason) {
  static std::once_flag once;
  static NcclApi api;
  static bool ok = false;
  static std::string failure;
  std::call_once(once, [] {
    // pip's nvidia-nccl-cu13 ships only the versioned name.
    void* lib = nullptr;
    const char* chosen = std::getenv("SEGVOL_NCCL_LIBRARY");
    for (const char* name : {chosen ? chosen : "libnccl.so.2", "libnccl.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
    }
    if (!lib) {
      const char* error = dlerror();
      failure = std::string("libnccl.so.2 could not be loaded (") + (error ? error : "not found") +
                "); pip install nvidia-nccl-cu13 and add its nvidia/nccl/lib folder to LD_LIBRARY_PATH (or set SEGVOL_NCCL_LIBRARY)";
      return;
    }
#define SEGVOL_NCCL_FN(name)                                                   \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));          \
  if (!api.name) {                                                             \
    failure = std::string("NCCL lacks ") + #name + "; segvol needs NCCL 2.10 or newer"; \
    return;                                                                    \
  }
#include "nccl_functions.inc"
#undef SEGVOL_NCCL_FN
    ok = true;
  });
  if (!ok && reason) *reason = failure;
  return ok ? &api : nullptr;
}

}  // namespace segvol::cuda
