// Conversions between JS values and native types shared by the binding files,
// the guard that turns every C++ exception into a JS Error with a stable `code`,
// and the registration of exported functions. Argument type errors use the same
// codes and wording as the ops' own checks.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "../core/backend.h"
#include "../core/error.h"
#include "../registry/registry.h"

namespace segvol::binding {

Napi::Error toJsError(Napi::Env env, ErrorCode code, const std::string& message);

// Runs body, converting any exception into a thrown JS error.
template <typename Body>
Napi::Value guard(const Napi::CallbackInfo& info, Body&& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw toJsError(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw toJsError(env, ErrorCode::Memory,
                    "out of memory while running a native op; use smaller volumes or batches, or dispose() tensors "
                    "you no longer need");
  } catch (const std::exception& e) {
    throw toJsError(env, ErrorCode::Native, std::string("unexpected native failure: ") + e.what() +
                                                "; this is a bug in segvol, please report it with the call that caused it");
  }
}

// ---- arguments in. Each names the op and the argument in its errors.
Implementation implementationArg(const Napi::CallbackInfo& info, size_t index);
const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// null or undefined -> nullptr
const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// An optional tensor argument held by value (async work keeps it alive); undefined for null or undefined.
Tensor heldTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// The tensor, or nullptr when undefined (the pointer form the ops take for optional tensors).
inline const Tensor* definedOrNull(const Tensor& t) { return t.defined() ? &t : nullptr; }
// The object behind a handle argument, disposed or not (for dispose() and its
// queries); what: the handle's kind in the error, e.g. "a tensor handle".
template <typename Handle>
Handle* handleArg(const Napi::Value& value, const char* op, const char* what) {
  if (!value.IsObject()) fail(ErrorCode::Argument, std::string(op) + ": expected " + what);
  return Handle::Unwrap(value.As<Napi::Object>());
}
// An array of tensor handles.
std::vector<const Tensor*> tensorListArg(const Napi::Value& value, const char* op);
std::vector<int64_t> intArrayArg(const Napi::Value& value, const char* op, const char* name);
int64_t intArg(const Napi::Value& value, const char* op, const char* name);
double numberArg(const Napi::Value& value, const char* op, const char* name);
bool boolArg(const Napi::Value& value, const char* op, const char* name);
std::string stringArg(const Napi::Value& value, const char* op, const char* name);
Device deviceArg(const Napi::Value& value, const char* op);

// A copy of a typed array's elements; anything else fails with "<op>: expected <what>".
// Copied because the work runs off the main thread, after JS may have changed the array.
template <typename Array, typename T>
std::vector<T> typedArrayCopy(const Napi::Value& value, napi_typedarray_type type, const char* op, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) fail(ErrorCode::Argument, std::string(op) + ": expected " + what);
  Array a = value.As<Array>();
  return std::vector<T>(a.Data(), a.Data() + a.ElementLength());
}

// One of a fixed set of strings, as its enum value. The error reads
// "<op>: expected <what>'a', 'b' or 'c', received 'd'".
template <typename E>
struct Choice {
  const char* name;
  E value;
};
[[noreturn]] void badChoice(const char* op, const char* what, const std::vector<const char*>& names,
                            const std::string& received);
template <typename E>
E choiceArg(const Napi::Value& value, const char* op, const char* name, const char* what,
            std::initializer_list<Choice<E>> choices) {
  const std::string s = stringArg(value, op, name);
  std::vector<const char*> names;
  for (const Choice<E>& c : choices) {
    if (s == c.name) return c.value;
    names.push_back(c.name);
  }
  badChoice(op, what, names, s);
}

// { stride, padding, dilation: number[spatialRank], groups: number }
ConvGeometry convGeometryArg(const Napi::Value& value, int spatialRank, const char* op);
// { kernel, stride, padding, dilation: number[spatialRank], countIncludePad: boolean }
PoolGeometry poolGeometryArg(const Napi::Value& value, int spatialRank, const char* op);
// Spreads per-spatial-axis values into a (D, H, W) triple, filling D with fill for 2D.
Triple tripleFrom(const std::vector<int64_t>& values, int spatialRank, int64_t fill, const char* op, const char* name);

// ---- results out
// A handle owning t, or null when t is undefined (a gradient not asked for).
Napi::Value wrapOrNull(Napi::Env env, const Tensor& t);
// A plain object of tensors (wrapOrNull each): { name: handle | null, ... }.
Napi::Object tensorsObject(Napi::Env env, std::initializer_list<std::pair<const char*, const Tensor*>> fields);
// A JS array with one object per item, filled by fill(object, item).
template <typename T, typename Fill>
Napi::Array arrayOf(Napi::Env env, const std::vector<T>& items, Fill&& fill) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    fill(o, items[i]);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// ---- registration: each binding file exports its functions under these names.
struct Export {
  const char* name;
  Napi::Function::Callback callback;
};
void exportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Export> functions);

}  // namespace segvol::binding
