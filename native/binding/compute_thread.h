// One long-lived thread runs all Promise-based native work, in order. oneDNN and
// the kernels use OpenMP, and OpenMP keeps a thread team per calling thread:
// work arriving on several libuv pool threads would start several teams whose
// idle threads compete for the same cores. One compute thread keeps one team
// (and runs requests in order, which a 2-core machine needs anyway). The pool
// thread only waits here, blocked.
#pragma once
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <future>
#include <mutex>
#include <thread>

namespace segvol::binding {

class ComputeThread {
 public:
  static ComputeThread& instance() {
    // Never destroyed: a static destructor would destroy the condition variable
    // its (detached) worker waits on, and glibc blocks exit on that.
    static ComputeThread* thread = new ComputeThread();
    return *thread;
  }

  // The thread of distributed training's collectives (binding/distributed.cpp): MPI is
  // initialised there and every MPI call comes from it (FUNNELED), and a gradient
  // allreduce runs there while the compute thread goes on with backward.
  static ComputeThread& communication() {
    static ComputeThread* thread = new ComputeThread();
    return *thread;
  }

  // Runs fn on the compute thread and returns its result (or rethrows its exception).
  template <typename Fn>
  auto run(Fn&& fn) -> decltype(fn()) {
    using Result = decltype(fn());
    std::packaged_task<Result()> task(std::forward<Fn>(fn));
    std::future<Result> future = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.emplace_back([&task] { task(); });
    }
    ready_.notify_one();
    return future.get();
  }

  // A place in line, taken on the main thread when work is submitted: runInOrder runs
  // work in the order of its tickets, whatever order the libuv pool threads that wait on
  // it arrive in. Collectives need it: every rank must issue them in the same order.
  uint64_t ticket() {
    std::lock_guard<std::mutex> lock(mutex_);
    return nextTicket_++;
  }
  template <typename Fn>
  auto runInOrder(uint64_t ticket, Fn&& fn) -> decltype(fn()) {
    using Result = decltype(fn());
    std::packaged_task<Result()> task(std::forward<Fn>(fn));
    std::future<Result> future = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ordered_.emplace(ticket, [&task] { task(); });
    }
    ready_.notify_all();
    return future.get();
  }

 private:
  ComputeThread() : worker_([this] { loop(); }) { worker_.detach(); }

  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty() || ordered_.count(nextRun_) > 0; });
        if (!queue_.empty()) {
          job = std::move(queue_.front());
          queue_.pop_front();
        } else {
          auto it = ordered_.find(nextRun_);
          job = std::move(it->second);
          ordered_.erase(it);
          ++nextRun_;
        }
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  std::map<uint64_t, std::function<void()>> ordered_;
  uint64_t nextTicket_ = 0, nextRun_ = 0;
  std::thread worker_;
};

}  // namespace segvol::binding
