// cuDNN and NCCL are loaded with dlopen the first time they are needed, so the addon
// loads (and the CPU backend works) on machines without them. One attempt per process:
// the API table, or the reason it could not be had, is kept for every later caller.
#pragma once
#include <dlfcn.h>

#include <mutex>
#include <string>
#include <vector>

// Inside a resolve function: fills api.name from lib, or sets failure and returns false.
#define SEGVOL_RESOLVE_OR_FAIL(name, message)                           \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(lib, #name));   \
  if (!api.name) {                                                      \
    failure = (message);                                                \
    return false;                                                       \
  }

namespace segvol::cuda {

// resolve(lib, api, failure) fills api with dlsym and returns false (failure set) when a
// symbol is missing. The first of candidates that dlopen finds is used; when none is,
// the reason reads "<wanted> could not be loaded (<dlerror>); <advice>".
template <typename Api, typename Resolve>
const Api* loadLibraryOnce(const std::vector<const char*>& candidates, const char* wanted, const char* advice,
                           Resolve&& resolve, std::string* reason) {
  static std::once_flag once;
  static Api api;
  static bool ok = false;
  static std::string failure;
  std::call_once(once, [&] {
    void* lib = nullptr;
    for (const char* name : candidates) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
    }
    if (!lib) {
      const char* error = dlerror();
      failure = std::string(wanted) + " could not be loaded (" + (error ? error : "not found") + "); " + advice;
      return;
    }
    ok = resolve(lib, api, failure);
  });
  if (!ok && reason) *reason = failure;
  return ok ? &api : nullptr;
}

}  // namespace segvol::cuda
