#include "communicator.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "../core/backend.h"
#include "../core/error.h"
#include "comm_api.h"
#ifdef SEGVOL_WITH_NCCL
#include "../cuda/collective.h"
#endif

namespace segvol::distributed {
namespace {

// Beside the addon (this code is linked into it), unless SEGVOL_MPI_PLUGIN names another.
std::string defaultPluginPath() {
  if (const char* path = std::getenv("SEGVOL_MPI_PLUGIN")) return path;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&defaultPluginPath), &info) && info.dli_fname) {
    std::string self = info.dli_fname;
    const size_t slash = self.find_last_of('/');
    return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/segvol_mpi.so";
  }
  return "segvol_mpi.so";
}

struct Loaded {
  const SegvolCommApi* api = nullptr;
  std::string reason;
  std::string path;
};

const Loaded& loaded() {
  static const Loaded result = [] {
    Loaded l;
    l.path = defaultPluginPath();
    void* handle = dlopen(l.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      l.reason = access(l.path.c_str(), F_OK) != 0
                     ? "segvol was built without MPI (its MPI plugin " + l.path + " does not exist: no MPI library was found when "
                           "segvol compiled); install one (Debian/Ubuntu: sudo apt-get install libopenmpi-dev openmpi-bin, or "
                           "libmpich-dev mpich), then rebuild segvol (npm rebuild segvol)"
                     : std::string("the MPI plugin did not load: ") + (why ? why : "unknown error") +
                           "; it runs only with the MPI library it was built against: install that one (Debian/Ubuntu: "
                           "libopenmpi-dev openmpi-bin), or rebuild segvol (npm rebuild segvol) against the MPI installed";
      return l;
    }
    // Open MPI's components resolve symbols of libmpi globally: make them visible (as mpi4py does).
    auto entry = reinterpret_cast<SegvolCommApiEntry>(dlsym(handle, "segvol_comm_api_v1"));
    if (!entry) {
      l.reason = l.path + " is not segvol's MPI plugin (no segvol_comm_api_v1); rebuild segvol";
      return l;
    }
    Dl_info mpiInfo{};
    if (void* init = dlsym(handle, "MPI_Init_thread"); init && dladdr(init, &mpiInfo) && mpiInfo.dli_fname) {
      dlopen(mpiInfo.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    }
    l.api = entry();
    if (!l.api || l.api->version != 1) {
      l.api = nullptr;
      l.reason = l.path + " speaks another plugin version; rebuild segvol";
    }
    return l;
  }();
  return result;
}

const SegvolCommApi& api() {
  const Loaded& l = loaded();
  if (!l.api) fail(ErrorCode::NotBuilt, "distributed 'mpi': " + l.reason);
  return *l.api;
}

Group group;
bool ready = false;
double lastTimeout = 300;
int64_t ncclCount = 0, reductionCount = 0;

void check(int status, const char* error, const std::string& what) {
  if (status == SEGVOL_COMM_OK) return;
  fail(ErrorCode::PeerLost, "rank " + std::to_string(group.rank) + "/" + std::to_string(group.size) + ", " + what + ": " + error);
}

void requireInit(const std::string& what) {
  if (!ready) fail(ErrorCode::Argument, what + ": the distributed group is not initialised (call init first)");
}

}  // namespace

std::string unavailableReason() { return loaded().reason; }
int64_t ncclReductions() { return ncclCount; }
int64_t reductions() { return reductionCount; }
std::string cudaCollective() {
#ifdef SEGVOL_WITH_NCCL
  const std::string why = cuda::ncclUnavailableReason();
  return why.empty() ? "nccl" : "host memory: " + why;
#else
  return "host memory: segvol was built without NCCL headers (set NCCL_ROOT, or pip install nvidia-nccl-cu13, then rebuild)";
#endif
}
std::string pluginPath() { return loaded().path; }
bool initialised() { return ready; }

Group init(double timeoutSeconds) {
  const SegvolCommApi& a = api();
  if (ready) return group;
  char error[512] = "";
  int rank = 0, size = 1;
  const int status = a.init(&rank, &size, timeoutSeconds, error, sizeof(error));
  if (status != SEGVOL_COMM_OK) fail(ErrorCode::PeerLost, std::string("distributed start-up: ") + error);
  group = {rank, size, a.implementation()};
  ready = true;
  return group;
}

std::vector<Tensor> allreduceMean(const std::vector<const Tensor*>& tensors, double timeoutSeconds, const std::string& what) {
  requireInit(what);
  lastTimeout = timeoutSeconds;
  ++reductionCount;
  const bool onCuda = !tensors.empty() && tensors[0]->device() == Device::Cuda;
  for (const Tensor* t : tensors) {
    if ((t->device() == Device::Cuda) != onCuda) fail(ErrorCode::Device, what + ": expected every tensor on one device");
  }
#ifdef SEGVOL_WITH_NCCL
  // cuda tensors: NCCL on the device (its id sent over MPI); without NCCL, host staging below.
  if (onCuda && cuda::ncclUnavailableReason().empty()) {
    ++ncclCount;
    return cuda::ncclAllreduceMean(tensors, group.rank, group.size, timeoutSeconds, "rank " + std::to_string(group.rank) + "/" + std::to_string(group.size) + ", " + what,
                                   [&](std::vector<uint8_t> id) { return broadcast(std::move(id), 0, timeoutSeconds, what + " (the NCCL id)"); });
  }
#endif
  int64_t total = 0;
  for (const Tensor* t : tensors) total += t->size();
  // One staging buffer for all: one collective per call (the caller sizes its buckets). After
  // a failure MPI may still write into it, so it is then left allocated.
  auto owned = std::make_unique<std::vector<float>>(static_cast<size_t>(total));
  std::vector<float>& staging = *owned;
  int64_t offset = 0;
  for (const Tensor* t : tensors) {
    t->backend().copyToHost(*t, staging.data() + offset);
    offset += t->size();
  }
  char error[512] = "";
  const int status = api().allreduceSum(staging.data(), total, timeoutSeconds, error, sizeof(error));
  if (status != SEGVOL_COMM_OK) owned.release();  // NOLINT: deliberately leaked (see above)
  check(status, error, what);
  const float scale = 1.0f / static_cast<float>(group.size);
  for (float& v : staging) v *= scale;
  std::vector<Tensor> means;
  means.reserve(tensors.size());
  offset = 0;
  for (const Tensor* t : tensors) {
    Tensor mean = Tensor::empty(t->backend(), t->shape());
    t->backend().copyFromHost(staging.data() + offset, mean);
    offset += t->size();
    means.push_back(std::move(mean));
  }
  return means;
}

void allreduceSumHost(float* data, int64_t count, const std::string& what) {
  requireInit(what);
  char error[512] = "";
  check(api().allreduceSum(data, count, lastTimeout, error, sizeof(error)), error, what);
}

std::vector<uint8_t> broadcast(std::vector<uint8_t> data, int root, double timeoutSeconds, const std::string& what) {
  requireInit(what);
  if (root < 0 || root >= group.size) fail(ErrorCode::Argument, what + ": root " + std::to_string(root) + " is not a rank of " + std::to_string(group.size));
  char error[512] = "";
  check(api().broadcast(data.data(), static_cast<int64_t>(data.size()), root, timeoutSeconds, error, sizeof(error)), error, what);
  return data;
}

std::vector<std::vector<uint8_t>> allgather(const std::vector<uint8_t>& data, double timeoutSeconds, const std::string& what) {
  requireInit(what);
  std::vector<uint8_t> all(data.size() * static_cast<size_t>(group.size));
  char error[512] = "";
  check(api().allgather(data.data(), static_cast<int64_t>(data.size()), all.data(), timeoutSeconds, error, sizeof(error)), error, what);
  std::vector<std::vector<uint8_t>> parts;
  for (int r = 0; r < group.size; ++r) parts.emplace_back(all.begin() + r * data.size(), all.begin() + (r + 1) * data.size());
  return parts;
}

void finalize() {
  if (!ready) return;
  api().finalize();
  ready = false;
}

}  // namespace segvol::distributed
