#include "kernel/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace batchnorm {
namespace {

constexpr int kMaxThreads = 256;

class ThreadPool {
 public:
  ~ThreadPool() { stopWorkers(); }

  int threads() {
    std::lock_guard<std::mutex> dispatch(dispatch_);
    return static_cast<int>(workers_.size()) + 1;
  }

  void resize(int threads) {
    std::lock_guard<std::mutex> dispatch(dispatch_);
    stopWorkers();
    uint64_t current;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = false;
      current = generation_;
    }
    // New workers wait for the next job, not the last one (whose context is gone).
    for (int index = 0; index + 1 < threads; ++index) {
      workers_.emplace_back([this, index, current] { workerLoop(index, current); });
    }
  }

  void run(int64_t count, int64_t grain, ParallelBody body, void* context) {
    std::unique_lock<std::mutex> dispatch(dispatch_, std::try_to_lock);
    const int64_t maxTasks = dispatch.owns_lock() ? static_cast<int64_t>(workers_.size()) + 1 : 1;
    const int64_t tasks = std::min(maxTasks, std::max<int64_t>(1, count / std::max<int64_t>(1, grain)));
    if (tasks <= 1) {
      body(context, 0, count);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      body_ = body;
      context_ = context;
      count_ = count;
      tasks_ = tasks;
      pending_ = tasks - 1;
      ++generation_;
    }
    wake_.notify_all();
    body(context, 0, rangeEnd(0));
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  int64_t rangeEnd(int64_t task) const { return count_ * (task + 1) / tasks_; }

  void workerLoop(int index, uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      const int64_t task = index + 1;
      if (task >= tasks_) continue;
      const ParallelBody body = body_;
      void* const context = context_;
      const int64_t begin = count_ * task / tasks_;
      const int64_t end = rangeEnd(task);
      lock.unlock();
      body(context, begin, end);
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  void stopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
  }

  std::mutex dispatch_;  // one parallelFor (or resize) at a time
  std::mutex mutex_;     // guards the job fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  ParallelBody body_ = nullptr;
  void* context_ = nullptr;
  int64_t count_ = 0, tasks_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

ThreadPool& pool() {
  static ThreadPool instance;
  return instance;
}

}  // namespace

void parallelFor(int64_t count, int64_t grain, ParallelBody body, void* context) {
  if (count <= 0) return;
  pool().run(count, grain, body, context);
}

void setNumThreads(int threads) { pool().resize(std::clamp(threads, 1, kMaxThreads)); }

int getNumThreads() { return pool().threads(); }

}  // namespace batchnorm
