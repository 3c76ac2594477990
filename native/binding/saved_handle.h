// The JS object that owns what a forward pass saved for its backward pass
// (gates, cells, inputs in scan layout). Opaque to JS; dispose() frees it early,
// the finalizer frees it otherwise.
#pragma once
#include <napi.h>

#include <array>
#include <memory>

#include "../ops/clstm.h"
#include "convert.h"

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

// The arguments every backward binding of a recurrent op starts with:
// (impl, saved, ...), and its output gradients from info[2] on, each a tensor or
// null (held by value, so async work keeps them alive; undefined for null).
template <typename Saved, size_t Count>
struct BackwardArgs {
  Implementation impl;
  std::shared_ptr<Saved> saved;
  std::array<Tensor, Count> grads;
};
template <typename Saved, size_t Count>
BackwardArgs<Saved, Count> backwardArgs(const Napi::CallbackInfo& info, const char* op,
                                        const std::array<const char*, Count>& names) {
  BackwardArgs<Saved, Count> a{implementationArg(info, 0), SavedHandle::unwrap<Saved>(info[1], op), {}};
  for (size_t i = 0; i < Count; ++i) a.grads[i] = heldTensorArg(info, 2 + i, op, names[i]);
  return a;
}

}  // namespace segvol::binding
