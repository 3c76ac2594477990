// Runs native work off the main thread (on the compute thread, waited for by a
// libuv pool thread) and settles a Promise with the result, so long ops (a PyraMiD-LSTM layer over a volume) leave the event loop
// free. Execute() computes in pure C++ (no JS values); Finish() converts the
// result on the main thread. Errors keep their segvol code.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "compute_thread.h"
#include "convert.h"

namespace segvol::binding {

template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using Finish = std::function<Napi::Value(Napi::Env, Result&)>;

  // ordered: run in submission order on thread (ComputeThread::runInOrder), for collectives.
  static Napi::Promise start(Napi::Env env, Work work, Finish finish, ComputeThread& thread = ComputeThread::instance(), bool ordered = false) {
    auto* worker = new PromiseWorker(env, std::move(work), std::move(finish), thread);
    Napi::Promise promise = worker->deferred_.Promise();
    if (ordered) worker->ticket_ = thread.ticket();  // taken last: a ticket must never go unused
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      result_ = std::make_unique<Result>(ticket_ ? thread_.runInOrder(*ticket_, work_) : thread_.run(work_));
    } catch (const Error& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = ErrorCode::Memory;
      message_ = "out of memory; use smaller volumes or dispose() tensors you no longer need";
    } catch (const std::exception& e) {
      code_ = ErrorCode::Native;
      message_ = std::string("unexpected native failure: ") + e.what();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!result_) {
      deferred_.Reject(toJsError(env, code_, message_).Value());
      return;
    }
    try {
      deferred_.Resolve(finish_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const Error& e) {
      deferred_.Reject(toJsError(env, e.code(), e.what()).Value());
    }
  }

 private:
  PromiseWorker(Napi::Env env, Work work, Finish finish, ComputeThread& thread)
      : Napi::AsyncWorker(env, "segvol"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        finish_(std::move(finish)), thread_(thread) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  ComputeThread& thread_;
  std::optional<uint64_t> ticket_;
  std::unique_ptr<Result> result_;
  ErrorCode code_ = ErrorCode::Native;
  std::string message_;
};

// Runs work and converts its result with finish(env, result): here and now, or,
// when async, on the compute thread, returning a Promise of the converted result.
// work must hold its own references to every tensor it reads (capture by value).
template <typename Work, typename Finish>
Napi::Value runMaybeAsync(Napi::Env env, bool async, Work work, Finish finish) {
  using Result = decltype(work());
  if (async) return PromiseWorker<Result>::start(env, std::move(work), std::move(finish));
  Result result = work();
  return finish(env, result);
}

// Runs work on the communication thread (ComputeThread::communication()), in the order the
// calls were made on the main thread, and settles a Promise.
template <typename Work, typename Finish>
Napi::Value runOnCommunicationThread(Napi::Env env, Work work, Finish finish) {
  using Result = decltype(work());
  return PromiseWorker<Result>::start(env, std::move(work), std::move(finish), ComputeThread::communication(), true);
}

}  // namespace segvol::binding
