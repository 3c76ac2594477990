// The C interface between the addon and the MPI plugin (segvol_mpi.so, mpi_plugin.cpp).
// Plain C types only: MPI's handle types differ between implementations (a pointer in
// Open MPI, an int in MPICH), so nothing of mpi.h crosses it. Every call that waits
// on peers takes a timeout and fails past it, so a lost peer never hangs a rank.
#pragma once
#include <cstdint>

extern "C" {

enum SegvolCommStatus {
  SEGVOL_COMM_OK = 0,
  SEGVOL_COMM_TIMEOUT = 1,    // no answer from the peers within the timeout
  SEGVOL_COMM_PEER_GONE = 2,  // a peer on this host exited
  SEGVOL_COMM_MPI_ERROR = 3,  // MPI reported an error (the text says which)
};

struct SegvolCommApi {
  int version;  // 1
  // "Open MPI v4.1.4", from MPI_Get_library_version
  const char* (*implementation)();
  // Initialises MPI (thread level FUNNELED: every later call comes from the calling thread),
  // then learns rank, size and which peers share this host (their pids watch for exits).
  int (*init)(int* rank, int* size, double timeoutSeconds, char* error, int errorBytes);
  // data: (count) float32, summed over the ranks in place
  int (*allreduceSum)(float* data, int64_t count, double timeoutSeconds, char* error, int errorBytes);
  // data: (bytes), root's copied to every rank
  int (*broadcast)(void* data, int64_t bytes, int root, double timeoutSeconds, char* error, int errorBytes);
  // send: (bytes) from each rank; receive: (size * bytes), rank r's at r * bytes
  int (*allgather)(const void* send, int64_t bytes, void* receive, double timeoutSeconds, char* error, int errorBytes);
  // Frees the communicator and finalises MPI when init started it.
  void (*finalize)();
};

// The plugin's one exported symbol.
typedef const SegvolCommApi* (*SegvolCommApiEntry)();
const SegvolCommApi* segvol_comm_api_v1();
}
