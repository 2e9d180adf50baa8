// Pools of worker threads for the kernels (compiled once, without ISA flags).
//
// Each Node environment (the main thread, every worker thread) owns its pool; a call into the core
// names the pool its kernels may use with a ScopedPool on the thread that runs it, and parallelFor finds
// it there (no pool: serial). parallelFor takes a plain function pointer and context rather than
// std::function: a template instantiated inside an ISA-specific translation unit could otherwise
// become the copy the linker keeps for every caller. Work is split into contiguous ranges; callers make
// results independent of the split (each reduction runs whole inside one range, in a fixed order), so
// any thread count gives identical bits.
#pragma once

#include <cstdint>

namespace batchnorm {

using ParallelBody = void (*)(void* context, int64_t begin, int64_t end);

class ThreadPool;

// Pools are counted references, one per owner key (the binding uses a Node environment's event loop):
// every load of the addon in one environment shares that environment's pool, so reloading the addon
// starts no threads. A new pool has one thread (no workers). The pool is destroyed, its threads joined,
// at the last release.
ThreadPool* acquirePool(const void* owner);
void retainPool(ThreadPool* pool);
void releasePool(ThreadPool* pool);

// Threads in all, counting the caller (1 to 256). Never waits: a pool busy with a call applies a new
// count when its next call starts; getNumThreads returns the count last set.
void setNumThreads(ThreadPool& pool, int threads);
int getNumThreads(const ThreadPool& pool);

// Makes `pool` the one parallelFor uses on this thread until the scope ends.
class ScopedPool {
 public:
  explicit ScopedPool(ThreadPool* pool);
  ~ScopedPool();
  ScopedPool(const ScopedPool&) = delete;
  ScopedPool& operator=(const ScopedPool&) = delete;

 private:
  ThreadPool* previous_;
};

// Runs body over [0, count) in at most the current pool's thread count of contiguous ranges of at least
// `grain` items; the calling thread takes the first range. Without a current pool, or while the pool is
// busy with another call, it runs serially on the calling thread. An exception thrown by body on any
// thread is rethrown to the caller once every range has finished.
void parallelFor(int64_t count, int64_t grain, ParallelBody body, void* context);

}  // namespace batchnorm
