#include "tensor_handle.h"

#include "../core/error.h"
#include "external_memory.h"
#include "instance_data.h"

namespace segvol::binding {

namespace {
// Only the main thread creates and disposes handles (and runs finalizers).
int64_t liveHandles[2] = {0, 0};
int deviceIndex(Device d) { return d == Device::Cpu ? 0 : 1; }
}  // namespace

int64_t TensorHandle::live(Device device) { return liveHandles[deviceIndex(device)]; }

void TensorHandle::define(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "TensorHandle", {});
  instanceData(env).tensorHandleConstructor = Napi::Persistent(ctor);
  exports.Set("TensorHandle", ctor);
}

Napi::Object TensorHandle::wrap(Napi::Env env, Tensor tensor) {
  Napi::Object object = instanceData(env).tensorHandleConstructor.New({});
  TensorHandle::Unwrap(object)->setTensor(std::move(tensor));
  return object;
}

Tensor& TensorHandle::unwrap(const Napi::Value& v, const char* op, const char* name) {
  Napi::Env env = v.Env();
  Napi::FunctionReference& ctor = instanceData(env).tensorHandleConstructor;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value())) {
    fail(ErrorCode::Argument, std::string(op) + ": expected " + name + " to be a segvol Tensor, received " +
                                  (v.IsNull() || v.IsUndefined() ? "null or undefined" : "another value"));
  }
  TensorHandle* handle = TensorHandle::Unwrap(v.As<Napi::Object>());
  if (handle->disposed()) {
    fail(ErrorCode::Disposed, std::string(op) + ": " + name +
                                  " was disposed; keep tensors alive until their last use, or create a new one");
  }
  return handle->tensor_;
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info), env_(info.Env()) {}

TensorHandle::~TensorHandle() { dispose(); }

void TensorHandle::setTensor(Tensor tensor) {
  tensor_ = std::move(tensor);
  if (tensor_.defined()) ++liveHandles[deviceIndex(tensor_.device())];
  if (tensor_.device() == Device::Cpu) {
    reportedBytes_ = static_cast<int64_t>(tensor_.bytes());
    accountExternalMemory(env_, reportedBytes_);
  }
}

void TensorHandle::dispose() {
  if (reportedBytes_) {
    accountExternalMemory(env_, -reportedBytes_);
    reportedBytes_ = 0;
  }
  if (tensor_.defined()) --liveHandles[deviceIndex(tensor_.device())];
  tensor_.release();
}

}  // namespace segvol::binding
