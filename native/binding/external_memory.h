// Host bytes held by tensors and saved states, told to V8 so that its garbage
// collector frees handles a program forgot to dispose. V8 starts a full collection
// whenever the external memory it was told grows 64 MiB past its level at the last
// collection; told of every allocation and free, a loop that creates and disposes
// large temporaries (the propagation's 448x448 patches) ran one every 40 ms and spent
// a third of its main thread collecting. So V8 is told of the live total with
// hysteresis: an increase once it passes the last told figure by a quarter plus
// 64 MiB, a decrease once it falls below a quarter of it. Real growth (a leak) is
// still announced; a working set that swings between a base and a peak (each object
// of a patch, each step) is told its peak once.
#pragma once
#include <napi.h>

#include <cstdint>

namespace segvol::binding {

struct ExternalMemoryAccount {
  int64_t live = 0;  // bytes held by this thread's live handles
  int64_t told = 0;  // bytes V8 was last told of
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
  const int64_t raiseAbove = a.told + a.told / 4 + (int64_t{64} << 20);
  const int64_t lowerBelow = a.told / 4;
  if (a.live > raiseAbove || a.live < lowerBelow) {
    Napi::MemoryManagement::AdjustExternalMemory(env, a.live - a.told);
    a.told = a.live;
  }
}

}  // namespace segvol::binding
