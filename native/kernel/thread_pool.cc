// The kernels' thread pool, on POSIX threads directly: no std::thread / std::mutex /
// std::condition_variable, whose libstdc++ entry points would raise the GLIBCXX and glibc versions a
// prebuilt binary needs (see glibc_compat.h). Windows uses the equivalent std primitives.
#include "kernel/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <vector>

#include "kernel/glibc_compat.h"

#if defined(_WIN32)
#include <condition_variable>
#include <mutex>
#include <thread>
#else
#include <pthread.h>
#endif

namespace batchnorm {
namespace {

constexpr int kMaxThreads = 256;

// How long a worker keeps polling for the next job, and the caller for the workers' completion, before
// blocking. Waking a thread blocked in the kernel costs tens of microseconds (more in a virtual machine),
// as much as a whole small batch-norm call; training loops call the kernels back to back, so a short
// poll catches the next job, and an idle pool still goes to sleep soon after.
constexpr auto kSpinTime = std::chrono::microseconds(200);

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls until ready() or kSpinTime has passed; true if ready() became true.
template <typename Ready>
bool spinUntil(Ready ready) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      cpuRelax();
    }
    if (Clock::now() >= deadline) return ready();
  }
}

#if defined(_WIN32)
class Mutex {
 public:
  void lock() { mutex_.lock(); }
  bool tryLock() { return mutex_.try_lock(); }
  void unlock() { mutex_.unlock(); }
  std::mutex& native() { return mutex_; }

 private:
  std::mutex mutex_;
};
class Condition {
 public:
  void wait(Mutex& mutex) {
    std::unique_lock<std::mutex> lock(mutex.native(), std::adopt_lock);
    condition_.wait(lock);
    lock.release();
  }
  void signalAll() { condition_.notify_all(); }

 private:
  std::condition_variable condition_;
};
class Thread {
 public:
  bool start(void* (*entry)(void*), void* argument) {
    thread_ = std::thread([entry, argument] { entry(argument); });
    return true;
  }
  void join() { thread_.join(); }

 private:
  std::thread thread_;
};
#else
class Mutex {
 public:
  Mutex() { pthread_mutex_init(&mutex_, nullptr); }
  ~Mutex() { pthread_mutex_destroy(&mutex_); }
  void lock() { pthread_mutex_lock(&mutex_); }
  bool tryLock() { return pthread_mutex_trylock(&mutex_) == 0; }
  void unlock() { pthread_mutex_unlock(&mutex_); }
  pthread_mutex_t* native() { return &mutex_; }

 private:
  pthread_mutex_t mutex_;
};
class Condition {
 public:
  Condition() { pthread_cond_init(&condition_, nullptr); }
  ~Condition() { pthread_cond_destroy(&condition_); }
  void wait(Mutex& mutex) { pthread_cond_wait(&condition_, mutex.native()); }
  void signalAll() { pthread_cond_broadcast(&condition_); }

 private:
  pthread_cond_t condition_;
};
class Thread {
 public:
  bool start(void* (*entry)(void*), void* argument) { return pthread_create(&thread_, nullptr, entry, argument) == 0; }
  void join() { pthread_join(thread_, nullptr); }

 private:
  pthread_t thread_{};
};
#endif

class Lock {
 public:
  explicit Lock(Mutex& mutex) : mutex_(mutex) { mutex_.lock(); }
  ~Lock() { mutex_.unlock(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  Mutex& mutex_;
};

}  // namespace

class ThreadPool {
 public:
  ThreadPool() = default;
  ~ThreadPool() { stopWorkers(); }

  std::atomic<int>& references() { return references_; }

  // `threads` counts the caller; the pool may lack workers for all of them (a failed start).
  void run(int64_t count, int64_t grain, ParallelBody body, void* context, int threads) {
    const bool owned = dispatch_.tryLock();
    if (owned) startWorkers(threads - 1);
    const int64_t maxTasks = owned ? std::min<int64_t>(threads, static_cast<int64_t>(workers_.size()) + 1) : 1;
    const int64_t tasks = std::min(maxTasks, std::max<int64_t>(1, count / std::max<int64_t>(1, grain)));
    if (tasks <= 1) {
      const Unlocker release(owned ? &dispatch_ : nullptr);
      body(context, 0, count);
      return;
    }
    bool anyAsleep = false;
    {
      Lock lock(mutex_);
      anyAsleep = sleepers_ > 0;
      body_ = body;
      context_ = context;
      count_ = count;
      tasks_ = tasks;
      failure_ = RangeFailure{};
      pending_.store(tasks - 1, std::memory_order_relaxed);
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    if (anyAsleep) wake_.signalAll();
    runRange(body, context, 0, rangeEnd(0));
    // The workers use the caller's context: wait for them even when the caller's own range failed.
    if (!spinUntil([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      Lock lock(mutex_);
      while (pending_.load(std::memory_order_acquire) != 0) done_.wait(mutex_);
    }
    RangeFailure failure;
    {
      Lock lock(mutex_);
      failure = failure_;
      failure_ = RangeFailure{};
    }
    dispatch_.unlock();
    failure.rethrow();
  }

 private:
  class Unlocker {
   public:
    explicit Unlocker(Mutex* mutex) : mutex_(mutex) {}
    ~Unlocker() {
      if (mutex_ != nullptr) mutex_->unlock();
    }
    Unlocker(const Unlocker&) = delete;
    Unlocker& operator=(const Unlocker&) = delete;

   private:
    Mutex* mutex_;
  };

  // Called with dispatch_ held. Workers only ever grow (a call wanting fewer leaves the rest idle,
  // asleep after kSpinTime); restarting them is rare, as the budget caps how many a call can ask for.
  void startWorkers(int wanted) {
    if (wanted <= static_cast<int>(workers_.size()) || startFailed_) return;
    stopWorkers();
    {
      Lock lock(mutex_);
      stop_ = false;
    }
    starts_.assign(static_cast<size_t>(wanted), WorkerStart{});
    workers_ = std::vector<Thread>(static_cast<size_t>(wanted));  // Thread is not copyable on Windows
    for (int index = 0; index < wanted; ++index) {
      // New workers wait for the next job, not the last one (whose context is gone).
      starts_[static_cast<size_t>(index)] = WorkerStart{this, index, generation_};
      if (!workers_[static_cast<size_t>(index)].start(&ThreadPool::entry, &starts_[static_cast<size_t>(index)])) {
        std::fprintf(stderr, "batchnorm: could not start kernel thread %d; using %d\n", index + 1, index + 1);
        workers_.resize(static_cast<size_t>(index));
        startFailed_ = true;
        break;
      }
    }
  }

  // A range's exception, kept for the caller as its kind and message rather than as a
  // std::exception_ptr: copying or destroying one calls libstdc++ functions versioned CXXABI_1.3.13
  // (GCC 11), which would raise the libstdc++ a prebuilt binary needs from GCC 5's. Kernels throw
  // std::bad_alloc (rethrown as such, a RangeError in JS) or nothing.
  struct RangeFailure {
    enum class Kind { None, OutOfMemory, Other } kind = Kind::None;
    char message[160] = {};

    void rethrow() const {
      if (kind == Kind::OutOfMemory) throw std::bad_alloc();
      if (kind == Kind::Other) throw std::runtime_error(message);
    }
  };

  // The first failure of a call's ranges wins; no exception may leave a worker thread.
  void runRange(ParallelBody body, void* context, int64_t begin, int64_t end) {
    try {
      body(context, begin, end);
    } catch (const std::bad_alloc&) {
      recordFailure(RangeFailure::Kind::OutOfMemory, "");
    } catch (const std::exception& error) {
      recordFailure(RangeFailure::Kind::Other, error.what());
    } catch (...) {
      recordFailure(RangeFailure::Kind::Other, "batchnorm: unknown exception in a kernel thread");
    }
  }

  void recordFailure(RangeFailure::Kind kind, const char* message) {
    Lock lock(mutex_);
    if (failure_.kind != RangeFailure::Kind::None) return;
    failure_.kind = kind;
    std::strncpy(failure_.message, message, sizeof failure_.message - 1);
  }

  struct WorkerStart {
    ThreadPool* pool = nullptr;
    int index = 0;
    uint64_t seen = 0;
  };

  static void* entry(void* argument) {
    const WorkerStart start = *static_cast<WorkerStart*>(argument);
    start.pool->workerLoop(start.index, start.seen);
    return nullptr;
  }

  int64_t rangeEnd(int64_t task) const { return count_ * (task + 1) / tasks_; }

  void workerLoop(int index, uint64_t seen) {
    for (;;) {
      spinUntil([&] {
        return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_relaxed);
      });
      mutex_.lock();
      while (!stop_ && generation_.load(std::memory_order_relaxed) == seen) {
        ++sleepers_;
        wake_.wait(mutex_);
        --sleepers_;
      }
      if (stop_) {
        mutex_.unlock();
        return;
      }
      seen = generation_.load(std::memory_order_relaxed);
      const int64_t task = index + 1;
      if (task >= tasks_) {
        mutex_.unlock();
        continue;
      }
      const ParallelBody body = body_;
      void* const context = context_;
      const int64_t begin = count_ * task / tasks_;
      const int64_t end = rangeEnd(task);
      mutex_.unlock();
      runRange(body, context, begin, end);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // Taking the mutex orders this signal after a caller that gave up polling starts waiting.
        mutex_.lock();
        mutex_.unlock();
        done_.signalAll();
      }
    }
  }

  void stopWorkers() {
    {
      Lock lock(mutex_);
      stop_ = true;
    }
    wake_.signalAll();
    for (Thread& worker : workers_) worker.join();
    workers_.clear();
  }

  Mutex dispatch_;  // one parallelFor (or resize) at a time
  Mutex mutex_;     // guards the job fields below
  Condition wake_, done_;
  std::vector<Thread> workers_;
  std::vector<WorkerStart> starts_;
  ParallelBody body_ = nullptr;
  void* context_ = nullptr;
  int64_t count_ = 0, tasks_ = 0;
  int sleepers_ = 0;  // workers blocked on wake_
  RangeFailure failure_;  // the first exception of the current call's ranges
  std::atomic<int> references_{1};
  bool startFailed_ = false;  // the system refused a thread: run with the workers there are
  // Written under mutex_, also polled without it.
  std::atomic<int64_t> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

namespace {

thread_local ThreadPool* currentPool = nullptr;
thread_local int currentThreads = 1;

std::atomic<int> budget{0};

// The process's pool and its references. Never destroyed itself: releases can come from environment
// teardown after static destructors have run.
Mutex& poolMutex() {
  static Mutex* const mutex = new Mutex();
  return *mutex;
}
ThreadPool* processPool = nullptr;

}  // namespace

ThreadPool* acquirePool() {
  Lock lock(poolMutex());
  if (processPool != nullptr) {
    processPool->references().fetch_add(1, std::memory_order_relaxed);
  } else {
    processPool = new ThreadPool();
  }
  return processPool;
}

void retainPool(ThreadPool* pool) { pool->references().fetch_add(1, std::memory_order_relaxed); }

void releasePool(ThreadPool* pool) {
  {
    Lock lock(poolMutex());
    if (pool->references().fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    processPool = nullptr;
  }
  delete pool;  // joins its threads, outside the lock
}

int setThreadBudget(int threads) {
  int expected = 0;
  budget.compare_exchange_strong(expected, std::clamp(threads, 1, kMaxThreads));
  return budget.load();
}

int threadBudget() { return budget.load(std::memory_order_relaxed); }

int threadsWithinBudget(int threads) {
  const int cap = threadBudget();
  return std::clamp(threads, 1, cap == 0 ? kMaxThreads : cap);
}

ScopedPool::ScopedPool(ThreadPool* pool, int threads) : previousPool_(currentPool), previousThreads_(currentThreads) {
  currentPool = pool;
  currentThreads = threadsWithinBudget(threads);
}

ScopedPool::~ScopedPool() {
  currentPool = previousPool_;
  currentThreads = previousThreads_;
}

void parallelFor(int64_t count, int64_t grain, ParallelBody body, void* context) {
  if (count <= 0) return;
  if (currentPool == nullptr || currentThreads <= 1) {
    body(context, 0, count);
    return;
  }
  currentPool->run(count, grain, body, context, currentThreads);
}

int currentThreadCount() { return currentPool == nullptr ? 1 : currentThreads; }

}  // namespace batchnorm
