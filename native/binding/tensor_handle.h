// The JS object that owns a native Tensor. JS sees it as an opaque handle; the
// TypeScript Tensor class wraps it. Its finalizer frees the memory if the user
// never calls dispose().
#pragma once
#include <napi.h>

#include "../core/tensor.h"

namespace segvol::binding {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void define(Napi::Env env, Napi::Object exports);
  static Napi::Object wrap(Napi::Env env, Tensor tensor);
  // The live tensor behind a handle; ERR_ARGUMENT if v is no handle, ERR_DISPOSED if disposed.
  static Tensor& unwrap(const Napi::Value& v, const char* op, const char* name);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  void dispose();
  bool disposed() const { return !tensor_.defined(); }
  // Handles (JS Tensors, views included) not yet disposed or collected, per device.
  static int64_t live(Device device);

 private:
  void setTensor(Tensor tensor);
  Napi::Env env_;
  Tensor tensor_;
  int64_t reportedBytes_ = 0;  // host bytes announced to V8 so GC sees the pressure
};

}  // namespace segvol::binding
