// Host bytes held by tensors and saved states, told to V8 so that its garbage
// collector frees handles a program forgot to dispose. V8 starts a full collection
// whenever the external memory it was told grows 64 MiB past its level at the last
// collection; told of every allocation and free, a loop that creates and disposes
// large temporaries (the propagation's 448x448 patches) ran one every 40 ms and spent
// a third of its main thread collecting. So V8 is told of the live total with
// hysteresis: an increase once it passes the last told figure by an eighth plus
// 64 MiB, a decrease once it falls below half of it. Real growth (a leak) is still
// announced; churn within the margin is not. (Measured on a propagation patch of 30
// objects: 25.5 s and 1.42 GiB peak RSS told of everything; 16.7 s but 3.2 GiB with
// a quarter up and a quarter down, since collections also free memory that is not
// tensors; 17.1 s and 1.43 GiB with these margins.)
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
  const int64_t raiseAbove = a.told + a.told / 8 + (int64_t{64} << 20);
  const int64_t lowerBelow = a.told / 2;
  if (a.live > raiseAbove || a.live < lowerBelow) {
    Napi::MemoryManagement::AdjustExternalMemory(env, a.live - a.told);
    a.told = a.live;
  }
}

}  // namespace segvol::binding
