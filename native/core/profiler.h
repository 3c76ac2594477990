// Per-op timing: while profiling is on, backendFor() hands out a
// ProfilingBackend that wraps the real one and records every primitive call
// (name, backend, shapes, count, total time, FLOPs). The steady clock measures
// host time; a CUDA backend records device time with events through the same
// interface.
#pragma once
#include <string>
#include <vector>

#include "backend.h"

namespace segvol {

struct ProfileRecord {
  std::string op;
  std::string backend;
  std::string shapes;
  int64_t count = 0;
  double totalMs = 0;
  double flops = 0;  // per call, 0 where not defined
};

void profilingStart();
// Stops profiling and returns the records, slowest total first.
std::vector<ProfileRecord> profilingStop();
bool profilingActive();
// The profiling wrapper of a backend (one per backend).
Backend& profiled(Backend& inner);

}  // namespace segvol
