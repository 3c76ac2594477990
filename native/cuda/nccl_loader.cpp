#include "nccl_loader.h"

#include <cstdlib>

#include "library_loader.h"

namespace segvol::cuda {

const NcclApi* loadNccl(std::string* reason) {
  // pip's nvidia-nccl-cu13 ships only the versioned name.
  const char* chosen = std::getenv("SEGVOL_NCCL_LIBRARY");
  return loadLibraryOnce<NcclApi>(
      {chosen ? chosen : "libnccl.so.2", "libnccl.so"}, "libnccl.so.2",
      "pip install nvidia-nccl-cu13 and add its nvidia/nccl/lib folder to LD_LIBRARY_PATH (or set SEGVOL_NCCL_LIBRARY)",
      [](void* lib, NcclApi& api, std::string& failure) {
#define SEGVOL_NCCL_FN(name) SEGVOL_RESOLVE_OR_FAIL(name, std::string("NCCL lacks ") + #name + "; segvol needs NCCL 2.10 or newer")
#include "nccl_functions.inc"
#undef SEGVOL_NCCL_FN
        return true;
      },
      reason);
}

}  // namespace segvol::cuda
