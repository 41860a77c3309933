// A small persistent pool of native threads for the tokenizer's parallel loops.
//
// Starting a thread per call costs its creation plus a wake-up of an idle vCPU, which on
// virtual machines can take a millisecond: as much as encoding a whole batch of stories.
// Workers therefore stay alive between calls and spin (yielding) for a short while after each
// job before blocking, so that back-to-back calls find them awake.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tinygpt {

class WorkerPool {
 public:
  // Runs fn(0) .. fn(n-1) concurrently, fn(0) on the calling thread; returns when all are done
  // and then rethrows the first exception any of them threw.
  static void run(int n, const std::function<void(int)>& body) {
    if (n <= 1) {
      body(0);
      return;
    }
    std::mutex err_mu;
    std::exception_ptr err;
    const std::function<void(int)> fn = [&](int t) {
      try {
        body(t);
      } catch (...) {
        std::lock_guard<std::mutex> g(err_mu);
        if (!err) err = std::current_exception();
      }
    };
    run_caught(n, fn);
    if (err) std::rethrow_exception(err);
  }

 private:
  static void run_caught(int n, const std::function<void(int)>& fn) {
    WorkerPool& pool = instance();
    std::unique_lock<std::mutex> busy(pool.run_mu_, std::try_to_lock);
    if (!busy.owns_lock() || pool.pid_ != getpid()) {
      // Another Python thread is using the pool (or we are in a forked child, where the pool's
      // threads do not exist): fall back to threads of our own.
      std::vector<std::thread> ts;
      for (int t = 1; t < n; ++t) ts.emplace_back(fn, t);
      fn(0);
      for (auto& t : ts) t.join();
      return;
    }
    pool.dispatch(n, fn);
  }

  static WorkerPool& instance() {
    // Never destroyed: its threads may still be parked when the process exits.
    static WorkerPool* pool = new WorkerPool();
    return *pool;
  }
  WorkerPool() : pid_(getpid()) {}

  void dispatch(int n, const std::function<void(int)>& fn) {
    {
      std::lock_guard<std::mutex> g(mu_);
      while (static_cast<int>(threads_.size()) < n - 1) {
        int index = static_cast<int>(threads_.size()) + 1;
        threads_.emplace_back([this, index] { loop(index); });
      }
      job_ = &fn;
      width_ = n;
      pending_.store(n - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0);
    while (pending_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

  void loop(int index) {
    uint64_t seen = 0;
    while (true) {
      // Spin a little before sleeping: the next call usually comes soon.
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
      while (generation_.load(std::memory_order_acquire) == seen &&
             std::chrono::steady_clock::now() < until)
        std::this_thread::yield();
      const std::function<void(int)>* job;
      int width;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        width = width_;
      }
      if (index < width) {
        (*job)(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;
  int width_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const pid_t pid_;
};

}  // namespace tinygpt
