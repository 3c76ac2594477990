#include "convert.h"

#include <cmath>

#include "tensor_handle.h"

namespace segvol::binding {

Napi::Error toJsError(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, "segvol: " + message);
  error.Set("code", Napi::String::New(env, errorCodeName(code)));
  return error;
}

namespace {
[[noreturn]] void badArgument(const char* op, const char* name, const std::string& expected, const Napi::Value& v) {
  std::string received = v.IsUndefined() ? "undefined"
                         : v.IsNull()    ? "null"
                         : v.IsNumber()  ? "the number " + std::to_string(v.As<Napi::Number>().DoubleValue())
                         : v.IsString()  ? "the string '" + v.As<Napi::String>().Utf8Value() + "'"
                         : v.IsArray()   ? "an array"
                                         : "a value of another type";
  fail(ErrorCode::Argument, std::string(op) + ": expected " + name + " to be " + expected + ", received " + received);
}
}  // namespace

Implementation implementationArg(const Napi::CallbackInfo& info, size_t index) {
  std::string s = stringArg(info[index], "op", "implementation");
  if (s == "optimized") return Implementation::Optimized;
  if (s == "reference") return Implementation::Reference;
  fail(ErrorCode::Argument, "op: expected implementation 'optimized' or 'reference', received '" + s + "'");
}

const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  return TensorHandle::unwrap(info[index], op, name);
}

const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (info[index].IsNull() || info[index].IsUndefined()) return nullptr;
  return &TensorHandle::unwrap(info[index], op, name);
}

int64_t intArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsNumber()) badArgument(op, name, "an integer", value);
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.0e15) badArgument(op, name, "an integer", value);
  return static_cast<int64_t>(d);
}

double numberArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsNumber()) badArgument(op, name, "a number", value);
  return value.As<Napi::Number>().DoubleValue();
}

bool boolArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsBoolean()) badArgument(op, name, "a boolean", value);
  return value.As<Napi::Boolean>().Value();
}

std::string stringArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsString()) badArgument(op, name, "a string", value);
  return value.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> intArrayArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsArray()) badArgument(op, name, "an array of integers", value);
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(intArg(array.Get(i), op, name));
  return out;
}

Device deviceArg(const Napi::Value& value, const char* op) {
  std::string s = stringArg(value, op, "device");
  if (s == "cpu") return Device::Cpu;
  if (s == "cuda") return Device::Cuda;
  fail(ErrorCode::Argument, std::string(op) + ": expected device 'cpu' or 'cuda', received '" + s + "'");
}

Triple tripleFrom(const std::vector<int64_t>& values, int spatialRank, int64_t fill, const char* op,
                  const char* name) {
  if (static_cast<int>(values.size()) != spatialRank) {
    fail(ErrorCode::Argument, std::string(op) + ": expected " + name + " with " + std::to_string(spatialRank) +
                                  " entries (one per spatial axis), received " + std::to_string(values.size()));
  }
  Triple t{fill, fill, fill};
  for (int a = 0; a < spatialRank; ++a) t[3 - spatialRank + a] = values[a];
  return t;
}

namespace {
Napi::Object objectArg(const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsObject()) badArgument(op, name, "an options object", value);
  return value.As<Napi::Object>();
}
}  // namespace

ConvGeometry convGeometryArg(const Napi::Value& value, int spatialRank, const char* op) {
  if (spatialRank < 2 || spatialRank > 3) {
    fail(ErrorCode::Shape, std::string(op) + ": expected a 2D or 3D input (rank 4 or 5), received " +
                               std::to_string(spatialRank + 2) + " axes");
  }
  Napi::Object o = objectArg(value, op, "options");
  ConvGeometry g;
  g.spatialRank = spatialRank;
  g.stride = tripleFrom(intArrayArg(o.Get("stride"), op, "stride"), spatialRank, 1, op, "stride");
  g.padding = tripleFrom(intArrayArg(o.Get("padding"), op, "padding"), spatialRank, 0, op, "padding");
  g.dilation = tripleFrom(intArrayArg(o.Get("dilation"), op, "dilation"), spatialRank, 1, op, "dilation");
  g.groups = intArg(o.Get("groups"), op, "groups");
  return g;
}

PoolGeometry poolGeometryArg(const Napi::Value& value, int spatialRank, const char* op) {
  if (spatialRank < 2 || spatialRank > 3) {
    fail(ErrorCode::Shape, std::string(op) + ": expected a 2D or 3D input (rank 4 or 5), received " +
                               std::to_string(spatialRank + 2) + " axes");
  }
  Napi::Object o = objectArg(value, op, "options");
  PoolGeometry g;
  g.spatialRank = spatialRank;
  g.kernel = tripleFrom(intArrayArg(o.Get("kernel"), op, "kernel"), spatialRank, 1, op, "kernel");
  g.stride = tripleFrom(intArrayArg(o.Get("stride"), op, "stride"), spatialRank, 1, op, "stride");
  g.padding = tripleFrom(intArrayArg(o.Get("padding"), op, "padding"), spatialRank, 0, op, "padding");
  g.dilation = tripleFrom(intArrayArg(o.Get("dilation"), op, "dilation"), spatialRank, 1, op, "dilation");
  g.countIncludePad = boolArg(o.Get("countIncludePad"), op, "countIncludePad");
  return g;
}

}  // namespace segvol::binding
