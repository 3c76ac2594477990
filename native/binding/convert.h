// Conversions between JS values and native types, and the guard that turns every
// C++ exception into a JS Error with a stable `code`. Argument type errors use
// the same codes and wording as the ops' own checks.
#pragma once
#include <napi.h>

#include <string>
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

Implementation implementationArg(const Napi::CallbackInfo& info, size_t index);
const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// null or undefined -> nullptr
const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
std::vector<int64_t> intArrayArg(const Napi::Value& value, const char* op, const char* name);
int64_t intArg(const Napi::Value& value, const char* op, const char* name);
double numberArg(const Napi::Value& value, const char* op, const char* name);
bool boolArg(const Napi::Value& value, const char* op, const char* name);
std::string stringArg(const Napi::Value& value, const char* op, const char* name);
Device deviceArg(const Napi::Value& value, const char* op);

// { stride, padding, dilation: number[spatialRank], groups: number }
ConvGeometry convGeometryArg(const Napi::Value& value, int spatialRank, const char* op);
// { kernel, stride, padding, dilation: number[spatialRank], countIncludePad: boolean }
PoolGeometry poolGeometryArg(const Napi::Value& value, int spatialRank, const char* op);
// Spreads per-spatial-axis values into a (D, H, W) triple, filling D with fill for 2D.
Triple tripleFrom(const std::vector<int64_t>& values, int spatialRank, int64_t fill, const char* op, const char* name);

}  // namespace segvol::binding
