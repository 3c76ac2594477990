// Per-environment state of the addon (one per Node main thread or worker thread).
#pragma once
#include <napi.h>

namespace segvol::binding {

struct InstanceData {
  Napi::FunctionReference tensorHandleConstructor;
  Napi::FunctionReference savedHandleConstructor;
};

// Created on first use, owned and freed by the environment.
inline InstanceData& instanceData(Napi::Env env) {
  InstanceData* data = env.GetInstanceData<InstanceData>();
  if (!data) {
    data = new InstanceData();
    env.SetInstanceData(data);
  }
  return *data;
}

}  // namespace segvol::binding
