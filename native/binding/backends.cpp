// Bindings of the backends' status and settings (lib/core/backends.ts), the
// per-op profiler (lib/core/profile.ts) and the memory statistics.
#include "../core/math_mode.h"
#include "../core/profiler.h"
#include "../cpu/cpu_backend.h"
#include "../registry/registry.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

// () -> [{ name, available, reason, detail }]
Napi::Value Backends(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(arrayOf(info.Env(), backendStatuses(), [](Napi::Object& o, const BackendStatus& s) {
      o.Set("name", s.name);
      o.Set("available", s.available);
      o.Set("reason", s.reason);
      o.Set("detail", s.detail);
    }));
  });
}

// () -> { hits, misses, entries } of the CPU backend's oneDNN primitive cache
Napi::Value PrimitiveCacheStatsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    PrimitiveCacheStats s = CpuBackend::primitiveCacheStats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("hits", static_cast<double>(s.hits));
    o.Set("misses", static_cast<double>(s.misses));
    o.Set("entries", static_cast<double>(s.entries));
    return Napi::Value(o);
  });
}

// (device) -> undefined, once the device has finished every queued op
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    backendFor(deviceArg(info[0], "synchronize")).synchronize();
    return info.Env().Undefined();
  });
}

// (mode: 'fp32' | 'tf32' | 'bf16' | 'fp16') -> undefined. 'bf16' is refused only where no
// backend can compute it (a CPU without AVX512-BF16 and no GPU); a CPU convolution in a mode
// the CPU lacks throws when it runs (cpu/convolution.cpp).
Napi::Value SetConvMath(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    ConvMath mode = ConvMath::Fp32;
    if (!convMathFromName(name, mode)) {
      fail(ErrorCode::Argument, "setConvMath: expected 'fp32', 'tf32', 'bf16' or 'fp16', received '" + name + "'");
    }
    if (mode == ConvMath::Bf16 && !backendIfAvailable(Device::Cuda)) {
      const std::string why = CpuBackend::bf16Unsupported();
      if (!why.empty()) {
        fail(ErrorCode::Device, "setConvMath('bf16'): " + why + "; the mode stays '" + convMathName(convMath()) +
                                    "'; train in 'fp32' on this machine");
      }
    }
    setConvMath(mode);
    return info.Env().Undefined();
  });
}

// () -> '' where the CPU backend computes bf16 convolutions, else why not
Napi::Value CpuBf16Unsupported(const Napi::CallbackInfo& info) {
  return guard(info, [&] { return Napi::Value(Napi::String::New(info.Env(), CpuBackend::bf16Unsupported())); });
}

Napi::Value GetConvMath(const Napi::CallbackInfo& info) {
  return guard(info, [&] { return Napi::Value(Napi::String::New(info.Env(), convMathName(convMath()))); });
}

Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    profilingStart();
    return info.Env().Undefined();
  });
}

// -> [{ op, backend, shapes, count, totalMs, flops }]
Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(arrayOf(info.Env(), profilingStop(), [](Napi::Object& o, const ProfileRecord& r) {
      o.Set("op", r.op);
      o.Set("backend", r.backend);
      o.Set("shapes", r.shapes);
      o.Set("count", static_cast<double>(r.count));
      o.Set("totalMs", r.totalMs);
      o.Set("flops", r.flops);
    }));
  });
}

// memoryStats() -> { cpu: { tensors, storages, bytes, peakBytes, cachedBytes }, cuda: { ... } }
Napi::Value MemoryStatsFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Napi::Object out = Napi::Object::New(info.Env());
    for (Device device : {Device::Cpu, Device::Cuda}) {
      MemoryStats s = memoryStats(device);
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("tensors", static_cast<double>(TensorHandle::live(device)));
      o.Set("storages", static_cast<double>(s.storages));
      o.Set("bytes", static_cast<double>(s.bytes));
      o.Set("peakBytes", static_cast<double>(s.peakBytes));
      Backend* backend = backendIfAvailable(device);
      o.Set("cachedBytes", static_cast<double>(backend ? backend->cachedBytes() : 0));
      out.Set(deviceName(device), o);
    }
    return Napi::Value(out);
  });
}

// deviceMemory(device) -> { free, total } in bytes (0 and 0 for the cpu: the OS knows)
Napi::Value DeviceMemoryFn(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    size_t free = 0, total = 0;
    backendFor(deviceArg(info[0], "deviceMemory")).deviceMemory(free, total);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("free", static_cast<double>(free));
    o.Set("total", static_cast<double>(total));
    return Napi::Value(o);
  });
}

// resetPeakMemory(device): the peak restarts from the bytes live now
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    resetPeakMemory(deviceArg(info[0], "resetPeakMemory"));
    return info.Env().Undefined();
  });
}

// cachedBytes(device) -> the bytes of freed blocks the device's backend keeps for reuse (0 where absent)
Napi::Value CachedBytes(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Backend* backend = backendIfAvailable(deviceArg(info[0], "cachedBytes"));
    return Napi::Value(Napi::Number::New(info.Env(), static_cast<double>(backend ? backend->cachedBytes() : 0)));
  });
}

// releaseCachedMemory(device) -> the bytes of cached blocks given back (0 where the device is absent)
Napi::Value ReleaseCachedMemory(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Backend* backend = backendIfAvailable(deviceArg(info[0], "releaseCachedMemory"));
    return Napi::Value(Napi::Number::New(info.Env(), static_cast<double>(backend ? backend->releaseCached() : 0)));
  });
}

}  // namespace segvol::binding
