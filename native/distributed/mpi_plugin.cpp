// The MPI plugin (segvol_mpi.so): the only code that includes mpi.h. The addon loads it
// with dlopen when distributed training starts (communicator.cpp), so segvol.node never
// depends on libmpi: without MPI, segvol builds and runs as before.
//
// Non-blocking collectives polled with MPI_Test until a deadline: MPI's blocking calls
// cannot be given a timeout, and a rank that died would leave the others waiting
// forever. While polling, peers on this host are checked by pid, so their exit is
// named in under a second; remote peers fall to the deadline.
#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "comm_api.h"

namespace {

MPI_Comm comm = MPI_COMM_NULL;
int myRank = 0, worldSize = 1;
bool startedMpi = false;
std::vector<long> localPids;  // by rank: the pid of a peer on this host, 0 for this rank and remote ones
std::string library;

int report(char* error, int bytes, int status, const std::string& text) {
  if (error && bytes > 0) std::snprintf(error, static_cast<size_t>(bytes), "%s", text.c_str());
  return status;
}

std::string mpiText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

// Waits for request: polls with a growing pause (20 us to 1 ms), checks local peers every 100 ms.
int wait(MPI_Request& request, double timeoutSeconds, const char* what, char* error, int bytes) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto lastCheck = start;
  int pauseUs = 20;
  while (true) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return report(error, bytes, SEGVOL_COMM_MPI_ERROR, std::string(what) + ": " + mpiText(rc));
    if (done) return SEGVOL_COMM_OK;
    const auto now = Clock::now();
    if (now - lastCheck > std::chrono::milliseconds(100)) {
      lastCheck = now;
      for (int r = 0; r < static_cast<int>(localPids.size()); ++r) {
        if (localPids[r] > 0 && kill(static_cast<pid_t>(localPids[r]), 0) != 0 && errno == ESRCH) {
          return report(error, bytes, SEGVOL_COMM_PEER_GONE,
                        std::string(what) + ": rank " + std::to_string(r) + " (pid " + std::to_string(localPids[r]) + " on this host) has exited");
        }
      }
    }
    const double waited = std::chrono::duration<double>(now - start).count();
    if (waited > timeoutSeconds) {
      char text[64];
      std::snprintf(text, sizeof(text), "%g", timeoutSeconds);
      return report(error, bytes, SEGVOL_COMM_TIMEOUT, std::string(what) + ": no answer from every rank within " + text + " s");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(pauseUs));
    pauseUs = std::min(pauseUs * 2, 1000);
  }
}

const char* implementation() {
  if (library.empty()) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(text, &length);
    library.assign(text, static_cast<size_t>(length));
    library = library.substr(0, library.find_first_of(",\n"));
  }
  return library.c_str();
}

int allgather(const void* send, int64_t bytes, void* receive, double timeoutSeconds, char* error, int errorBytes) {
  if (bytes > INT_MAX) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "allgather: more than 2 GiB per rank");
  MPI_Request request;
  const int rc = MPI_Iallgather(send, static_cast<int>(bytes), MPI_BYTE, receive, static_cast<int>(bytes), MPI_BYTE, comm, &request);
  if (rc != MPI_SUCCESS) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "allgather: " + mpiText(rc));
  return wait(request, timeoutSeconds, "allgather", error, errorBytes);
}

int init(int* rank, int* size, double timeoutSeconds, char* error, int errorBytes) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "MPI_Init_thread: " + mpiText(rc));
    startedMpi = true;
    if (provided < MPI_THREAD_FUNNELED) {
      return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "this MPI library does not support the FUNNELED thread level segvol needs");
    }
  }
  if (comm == MPI_COMM_NULL) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    // Errors come back as codes (reported as ERR_PEER_LOST) instead of aborting the job.
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  }
  MPI_Comm_rank(comm, &myRank);
  MPI_Comm_size(comm, &worldSize);
  // Who shares this host: each rank's host name and pid.
  struct Who {
    char host[120];
    long pid;
  } me{}, *all = nullptr;
  gethostname(me.host, sizeof(me.host) - 1);
  me.pid = static_cast<long>(getpid());
  std::vector<Who> everyone(static_cast<size_t>(worldSize));
  all = everyone.data();
  const int status = allgather(&me, sizeof(Who), all, timeoutSeconds, error, errorBytes);
  if (status != SEGVOL_COMM_OK) return status;
  localPids.assign(static_cast<size_t>(worldSize), 0);
  for (int r = 0; r < worldSize; ++r) {
    if (r != myRank && std::strncmp(all[r].host, me.host, sizeof(me.host)) == 0) localPids[r] = all[r].pid;
  }
  *rank = myRank;
  *size = worldSize;
  return SEGVOL_COMM_OK;
}

int allreduceSum(float* data, int64_t count, double timeoutSeconds, char* error, int errorBytes) {
  // MPI counts are ints: large buffers go in parts.
  for (int64_t offset = 0; offset < count; offset += INT_MAX / 2) {
    const int part = static_cast<int>(std::min<int64_t>(count - offset, INT_MAX / 2));
    MPI_Request request;
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, data + offset, part, MPI_FLOAT, MPI_SUM, comm, &request);
    if (rc != MPI_SUCCESS) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "allreduce: " + mpiText(rc));
    const int status = wait(request, timeoutSeconds, "allreduce", error, errorBytes);
    if (status != SEGVOL_COMM_OK) return status;
  }
  return SEGVOL_COMM_OK;
}

int broadcast(void* data, int64_t bytes, int root, double timeoutSeconds, char* error, int errorBytes) {
  if (bytes > INT_MAX) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "broadcast: more than 2 GiB");
  MPI_Request request;
  const int rc = MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm, &request);
  if (rc != MPI_SUCCESS) return report(error, errorBytes, SEGVOL_COMM_MPI_ERROR, "broadcast: " + mpiText(rc));
  return wait(request, timeoutSeconds, "broadcast", error, errorBytes);
}

void finalize() {
  if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  comm = MPI_COMM_NULL;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (startedMpi && !finalized) MPI_Finalize();
  startedMpi = false;
}

const SegvolCommApi api = {1, implementation, init, allreduceSum, broadcast, allgather, finalize};

}  // namespace

extern "C" __attribute__((visibility("default"))) const SegvolCommApi* segvol_comm_api_v1() { return &api; }
