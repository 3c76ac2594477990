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

void badChoice(const char* op, const char* what, const std::vector<const char*>& names, const std::string& received) {
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + std::string("'") + names[i] + "'";
  }
  fail(ErrorCode::Argument, std::string(op) + ": expected " + what + list + ", received '" + received + "'");
}

Implementation implementationArg(const Napi::CallbackInfo& info, size_t index) {
  return choiceArg<Implementation>(info[index], "op", "implementation", "implementation ",
                                   {{"optimized", Implementation::Optimized}, {"reference", Implementation::Reference}});
}

const Tensor& tensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  return TensorHandle::unwrap(info[index], op, name);
}

const Tensor* optionalTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (info[index].IsNull() || info[index].IsUndefined()) return nullptr;
  return &TensorHandle::unwrap(info[index], op, name);
}

Tensor heldTensorArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  const Tensor* t = optionalTensorArg(info, index, op, name);
  return t ? *t : Tensor();
}

std::vector<const Tensor*> tensorListArg(const Napi::Value& value, const char* op) {
  if (!value.IsArray()) fail(ErrorCode::Argument, std::string(op) + ": expected an array of tensors");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<const Tensor*> xs;
  for (uint32_t i = 0; i < array.Length(); ++i) xs.push_back(&TensorHandle::unwrap(array.Get(i), op, "each tensor"));
  return xs;
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
  return choiceArg<Device>(value, op, "device", "device ", {{"cpu", Device::Cpu}, {"cuda", Device::Cuda}});
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

namespace {
// The options object of a 2D or 3D op's geometry; checks the input's rank first.
Napi::Object geometryObject(const Napi::Value& value, int spatialRank, const char* op) {
  if (spatialRank < 2 || spatialRank > 3) {
    fail(ErrorCode::Shape, std::string(op) + ": expected a 2D or 3D input (rank 4 or 5), received " +
                               std::to_string(spatialRank + 2) + " axes");
  }
  return objectArg(value, op, "options");
}

// Option `key` of o, one entry per spatial axis, as a (D, H, W) triple.
Triple tripleOption(const Napi::Object& o, const char* key, int spatialRank, int64_t fill, const char* op) {
  return tripleFrom(intArrayArg(o.Get(key), op, key), spatialRank, fill, op, key);
}

// The options both geometries share: stride, padding and dilation.
template <typename Geometry>
void readSpacing(Geometry& g, const Napi::Object& o, int spatialRank, const char* op) {
  g.spatialRank = spatialRank;
  g.stride = tripleOption(o, "stride", spatialRank, 1, op);
  g.padding = tripleOption(o, "padding", spatialRank, 0, op);
  g.dilation = tripleOption(o, "dilation", spatialRank, 1, op);
}
}  // namespace

ConvGeometry convGeometryArg(const Napi::Value& value, int spatialRank, const char* op) {
  Napi::Object o = geometryObject(value, spatialRank, op);
  ConvGeometry g;
  readSpacing(g, o, spatialRank, op);
  g.groups = intArg(o.Get("groups"), op, "groups");
  return g;
}

PoolGeometry poolGeometryArg(const Napi::Value& value, int spatialRank, const char* op) {
  Napi::Object o = geometryObject(value, spatialRank, op);
  PoolGeometry g;
  g.kernel = tripleOption(o, "kernel", spatialRank, 1, op);
  readSpacing(g, o, spatialRank, op);
  g.countIncludePad = boolArg(o.Get("countIncludePad"), op, "countIncludePad");
  return g;
}

Napi::Value wrapOrNull(Napi::Env env, const Tensor& t) {
  return t.defined() ? Napi::Value(TensorHandle::wrap(env, t)) : env.Null();
}

Napi::Object tensorsObject(Napi::Env env, std::initializer_list<std::pair<const char*, const Tensor*>> fields) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, t] : fields) o.Set(name, wrapOrNull(env, *t));
  return o;
}

void exportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Export> functions) {
  for (const Export& f : functions) exports.Set(f.name, Napi::Function::New(env, f.callback, f.name));
}

}  // namespace segvol::binding
