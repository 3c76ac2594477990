// Bindings of the distributed collectives (lib/core/distributed.ts, lib/ops/collective.ts).
// Every MPI call runs on the communication thread, the one MPI was initialised from
// (FUNNELED), and returns a Promise: a slow peer never blocks the event loop, and a
// gradient allreduce runs while the compute thread goes on with backward.
#include "../distributed/communicator.h"
#include "async.h"
#include "convert.h"
#include "modules.h"

namespace segvol::binding {
namespace {

std::vector<uint8_t> bytesArg(const Napi::Value& value, const char* op) {
  return typedArrayCopy<Napi::Uint8Array, uint8_t>(value, napi_uint8_array, op, "a Uint8Array");
}

Napi::Value bytesValue(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::Uint8Array a = Napi::Uint8Array::New(env, bytes.size());
  std::copy(bytes.begin(), bytes.end(), a.Data());
  return a;
}

}  // namespace

// () -> { available, reason, plugin }
Napi::Value DistributedStatus(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Napi::Object o = Napi::Object::New(info.Env());
    const std::string reason = distributed::unavailableReason();
    o.Set("available", reason.empty());
    o.Set("reason", reason);
    o.Set("plugin", distributed::pluginPath());
    o.Set("cudaCollective", distributed::cudaCollective());
    o.Set("ncclReductions", static_cast<double>(distributed::ncclReductions()));
    o.Set("reductions", static_cast<double>(distributed::reductions()));
    return Napi::Value(o);
  });
}

// (timeoutSeconds) -> Promise<{ rank, size, implementation }>
Napi::Value DistributedInit(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const double timeout = numberArg(info[0], "distributed init", "timeoutSeconds");
    return runOnCommunicationThread(info.Env(), [timeout] { return distributed::init(timeout); },
                         [](Napi::Env env, distributed::Group& g) {
                           Napi::Object o = Napi::Object::New(env);
                           o.Set("rank", g.rank);
                           o.Set("size", g.size);
                           o.Set("implementation", g.implementation);
                           return Napi::Value(o);
                         });
  });
}

// (tensors[], timeoutSeconds, what) -> Promise<tensor handles[]>: each tensor's mean over the ranks
Napi::Value DistributedAllreduceMean(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    std::vector<Tensor> tensors;
    for (const Tensor* t : tensorListArg(info[0], "allreduceMean")) tensors.push_back(*t);
    const double timeout = numberArg(info[1], "allreduceMean", "timeoutSeconds");
    const std::string what = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "allreduceMean";
    return runOnCommunicationThread(
        info.Env(),
        [tensors, timeout, what] {
          std::vector<const Tensor*> pointers;
          for (const Tensor& t : tensors) pointers.push_back(&t);
          return distributed::allreduceMean(pointers, timeout, what);
        },
        [](Napi::Env env, std::vector<Tensor>& means) {
          Napi::Array a = Napi::Array::New(env, means.size());
          for (size_t i = 0; i < means.size(); ++i) a.Set(static_cast<uint32_t>(i), wrapOrNull(env, means[i]));
          return Napi::Value(a);
        });
  });
}

// (bytes, root, timeoutSeconds, what) -> Promise<Uint8Array>: root's bytes
Napi::Value DistributedBroadcast(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    std::vector<uint8_t> bytes = bytesArg(info[0], "broadcast");
    const int root = static_cast<int>(numberArg(info[1], "broadcast", "root"));
    const double timeout = numberArg(info[2], "broadcast", "timeoutSeconds");
    const std::string what = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "broadcast";
    return runOnCommunicationThread(info.Env(), [bytes, root, timeout, what] { return distributed::broadcast(bytes, root, timeout, what); },
                         [](Napi::Env env, std::vector<uint8_t>& out) { return bytesValue(env, out); });
  });
}

// (bytes, timeoutSeconds, what) -> Promise<Uint8Array[]>: every rank's bytes, in rank order
Napi::Value DistributedAllgather(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    std::vector<uint8_t> bytes = bytesArg(info[0], "allgather");
    const double timeout = numberArg(info[1], "allgather", "timeoutSeconds");
    const std::string what = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "allgather";
    return runOnCommunicationThread(info.Env(), [bytes, timeout, what] { return distributed::allgather(bytes, timeout, what); },
                         [](Napi::Env env, std::vector<std::vector<uint8_t>>& parts) {
                           Napi::Array a = Napi::Array::New(env, parts.size());
                           for (size_t i = 0; i < parts.size(); ++i) a.Set(static_cast<uint32_t>(i), bytesValue(env, parts[i]));
                           return Napi::Value(a);
                         });
  });
}

// () -> Promise<undefined>
Napi::Value DistributedFinalize(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return runOnCommunicationThread(info.Env(), [] { distributed::finalize(); return true; },
                         [](Napi::Env env, bool&) { return env.Undefined(); });
  });
}

}  // namespace segvol::binding
