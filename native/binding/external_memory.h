// Host bytes held by tensors and saved states, told to V8 so that its garbage
// collector frees handles a program forgot to dispose. V8 starts a full collection
// whenever the external memory it was told grows 64 MiB past its level at the last
// collection; told of every allocation and free, a loop that creates and disposes
// large temporaries (the propagation's 448x448 patches) ran one every 40 ms and spent
// a third of its main thread collecting. So V8 is told of the high-water mark of the
// live total: once the live bytes pass the last told figure by an eighth plus 64 MiB.
// Real growth (a leak) is still announced; churn below the mark is not.
// - An earlier form also told V8 of decreases (below half the told figure). A training
//   step falls below half of its peak at its end and climbs back during the next, so
//   every step announced its growth again: 4 full collections a step on VD2D3D (41 over
//   10 steps; 5 without decreases, steps 621-672 -> 565-644 ms), and the consistent
//   network's step took 1,143-1,332 ms against 1,026-1,168 ms without them.
// - A 30-object propagation patch is unchanged by it: 14.6 s and 1.54 GiB peak RSS with
//   decreases told, 14.0 s and 1.55 GiB without. (Told of everything: 25.5 s and
//   1.42 GiB; a quarter up and a quarter down: 16.7 s but 3.2 GiB, since collections
//   also free memory that is not tensors.)
#pragma once
#include <napi.h>

#include <cstdint>

namespace segvol::binding {

struct ExternalMemoryAccount {
  int64_t live = 0;  // bytes held by this thread's live handles
  int64_t told = 0;  // bytes V8 was told of: the high-water mark of live, within the margin
};

// One per thread: each Node environment (main or worker) runs on its own thread, and
// handles are created and finalized on their environment's thread.
inline ExternalMemoryAccount& externalMemoryAccount() {
  thread_local ExternalMemoryAccount account;
  return account;
}

inline void accountExternalMemory(Napi::Env env, int64_t delta) {
  ExternalMemoryAccount& a = externalMemoryAccount();
  a.live += delta;
  const int64_t raiseAbove = a.told + a.told / 8 + (int64_t{64} << 20);
  if (a.live > raiseAbove) {
    Napi::MemoryManagement::AdjustExternalMemory(env, a.live - a.told);
    a.told = a.live;
  }
}

}  // namespace segvol::binding
