#include "saved_handle.h"

#include <cstring>

#include "../core/error.h"
#include "convert.h"
#include "external_memory.h"
#include "instance_data.h"
#include "modules.h"

namespace segvol::binding {

Napi::Function SavedHandle::define(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "SavedHandle", {});
  instanceData(env).savedHandleConstructor = Napi::Persistent(ctor);
  return ctor;
}

Napi::Object SavedHandle::wrap(Napi::Env env, std::shared_ptr<ops::SavedState> state) {
  Napi::Object object = instanceData(env).savedHandleConstructor.New({});
  SavedHandle* handle = SavedHandle::Unwrap(object);
  handle->reportedBytes_ = static_cast<int64_t>(state->bytes());
  handle->state_ = std::move(state);
  accountExternalMemory(env, handle->reportedBytes_);
  return object;
}

std::shared_ptr<ops::SavedState> SavedHandle::unwrapAny(const Napi::Value& v, const char* op, const char* kind) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(instanceData(v.Env()).savedHandleConstructor.Value())) {
    fail(ErrorCode::Argument, std::string(op) + ": expected the saved state returned by the forward pass");
  }
  SavedHandle* handle = SavedHandle::Unwrap(v.As<Napi::Object>());
  if (!handle->state_) {
    fail(ErrorCode::Disposed, std::string(op) + ": the forward pass's saved state was disposed; run the forward pass again");
  }
  if (std::strcmp(handle->state_->kind(), kind) != 0) {
    fail(ErrorCode::Argument, std::string(op) + ": expected the saved state of a " + kind + " forward pass, received one of " +
                                  handle->state_->kind());
  }
  return handle->state_;
}

SavedHandle::SavedHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SavedHandle>(info), env_(info.Env()) {}

SavedHandle::~SavedHandle() { dispose(); }

Napi::Object SavedHandle::share(Napi::Env env) const {
  if (!state_) fail(ErrorCode::Disposed, "share: the forward pass's saved state was disposed");
  return wrap(env, state_);
}

void SavedHandle::dispose() {
  if (reportedBytes_) {
    accountExternalMemory(env_, -reportedBytes_);
    reportedBytes_ = 0;
  }
  state_.reset();
}

namespace {
SavedHandle* savedArg(const Napi::CallbackInfo& info, const char* op) {
  return handleArg<SavedHandle>(info[0], op, "a saved-state handle");
}
}  // namespace

Napi::Value SavedDispose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    savedArg(info, "dispose")->dispose();
    return info.Env().Undefined();
  });
}

Napi::Value SavedShare(const Napi::CallbackInfo& info) {
  return guard(info, [&] { return Napi::Value(savedArg(info, "share")->share(info.Env())); });
}

Napi::Value SavedBytes(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(Napi::Number::New(info.Env(), static_cast<double>(savedArg(info, "bytes")->bytes())));
  });
}

}  // namespace segvol::binding
