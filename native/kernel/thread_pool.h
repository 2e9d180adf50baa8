// The kernels' worker threads (compiled once, without ISA flags).
//
// One pool serves the whole process: every Node environment (the main thread, every worker thread) that
// loads the addon shares it, so the kernel threads of all of them together stay within one budget, as
// OpenMP's one pool does for PyTorch. A call into the core names the pool and how many threads it may
// use with a ScopedPool on the thread that runs it, and parallelFor finds them there (no pool: serial).
// A call that finds the pool busy with another environment's call runs serially on its own thread. parallelFor takes a plain function pointer and context rather than
// std::function: a template instantiated inside an ISA-specific translation unit could otherwise
// become the copy the linker keeps for every caller. Work is split into contiguous ranges; callers make
// results independent of the split (each reduction runs whole inside one range, in a fixed order), so
// any thread count gives identical bits.
#pragma once

#include <cstdint>

namespace batchnorm {

using ParallelBody = void (*)(void* context, int64_t begin, int64_t end);

class ThreadPool;

// A pool and the thread count a caller may use of it.
struct PoolUse {
  ThreadPool* pool;
  int threads;
};

// The process's pool, as a counted reference: created with no workers at the first acquire, destroyed
// (its threads joined) at the last release. Workers start when a call first asks for them and never
// exceed the thread budget less one (the calling thread is the budget's other thread).
ThreadPool* acquirePool();
void retainPool(ThreadPool* pool);
void releasePool(ThreadPool* pool);

// The process's thread budget (1 to 256): the most threads any call uses, its caller included. The
// first call sets it and returns it; later calls return the budget already set (it is fixed for the
// life of the process, whatever environment asks). Until set, calls are not capped (the C++ tests).
int setThreadBudget(int threads);
// The budget, or 0 when it has not been set.
int threadBudget();
// `threads` capped by the budget (1 to 256).
int threadsWithinBudget(int threads);

// Makes `pool` the one parallelFor uses on this thread until the scope ends, with at most `threads`
// threads (the caller's; capped by the budget).
class ScopedPool {
 public:
  ScopedPool(ThreadPool* pool, int threads);
  ~ScopedPool();
  ScopedPool(const ScopedPool&) = delete;
  ScopedPool& operator=(const ScopedPool&) = delete;

 private:
  ThreadPool* previousPool_;
  int previousThreads_;
};

// Runs body over [0, count) in at most the current scope's thread count of contiguous ranges of at least
// `grain` items; the calling thread takes the first range. Without a current pool, or while the pool is
// busy with another call, it runs serially on the calling thread. An exception thrown by body on any
// thread is rethrown to the caller once every range has finished.
void parallelFor(int64_t count, int64_t grain, ParallelBody body, void* context);

// The most threads a parallelFor on this thread may use now: the current scope's count, 1 without a
// pool. The planner reads it once per call, on the calling thread, for decisions that do not change
// results (how outputs are stored), never for the order of a reduction.
int currentThreadCount();

}  // namespace batchnorm
