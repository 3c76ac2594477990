// The JS object that owns what a forward pass saved for its backward pass
// (gates, cells, inputs in scan layout). Opaque to JS; dispose() frees it early,
// the finalizer frees it otherwise.
#pragma once
#include <napi.h>

#include <memory>

#include "../ops/clstm.h"

namespace segvol::binding {

class SavedHandle : public Napi::ObjectWrap<SavedHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<ops::SavedState> state);
  // The live state of the expected kind; ERR_ARGUMENT or ERR_DISPOSED otherwise.
  template <typename T>
  static std::shared_ptr<T> unwrap(const Napi::Value& v, const char* op);

  explicit SavedHandle(const Napi::CallbackInfo& info);
  ~SavedHandle() override;
  void dispose();
  // A second handle on the same state (the gradient tape keeps one while the caller may dispose its own).
  Napi::Object share(Napi::Env env) const;
  // Bytes held (0 once disposed).
  size_t bytes() const { return state_ ? state_->bytes() : 0; }

 private:
  static std::shared_ptr<ops::SavedState> unwrapAny(const Napi::Value& v, const char* op, const char* kind);
  Napi::Env env_;
  std::shared_ptr<ops::SavedState> state_;
  int64_t reportedBytes_ = 0;
};

template <typename T>
std::shared_ptr<T> SavedHandle::unwrap(const Napi::Value& v, const char* op) {
  return std::static_pointer_cast<T>(unwrapAny(v, op, T().kind()));
}

}  // namespace segvol::binding
