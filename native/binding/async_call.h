// A kernel call on the libuv thread pool, written on plain N-API (node-addon-api's AsyncWorker throws
// C++ exceptions from its completion when the environment is shutting down).
//
// The memory a call uses must stay valid until it settles. The arrays are referenced, so the garbage
// collector keeps them; what JavaScript could still do is detach (transfer) or shrink a buffer. lib/
// prevents that where the runtime lets it (markAsUntransferable, resizable buffers refused); where it
// cannot (a runtime whose ArrayBuffer.prototype.transfer ignores the mark), it asks for the caller's
// arrays to be staged: copied into memory this call owns, the kernel running on the copies, the written
// ones copied back on the JavaScript thread, all or none, after checking that every array is still the
// same memory. A call that fails writes back no running statistics.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "binding/calls.h"
#include "binding/guard.h"
#include "kernel/thread_pool.h"

namespace batchnorm::binding {

// Memory for staged calls, owned by one call at a time. The last large block freed is kept for the next
// call: glibc's malloc serves blocks above 32 MiB straight from mmap every time, and faulting their pages
// in cost ~11 µs per 4 KB page on the build machine (a 2 x 51 MB staging took 280 ms, the copies alone a
// few ms). Smaller blocks are freed at once: malloc reuses those without new page faults, and keeping
// one would pin the heap of the thread that allocated it (kept from a worker thread that then exited,
// such blocks grew the resident set by ~0.3 MB per terminated worker).
class StagingBlock {
 public:
  StagingBlock() = default;
  StagingBlock(const StagingBlock&) = delete;
  StagingBlock& operator=(const StagingBlock&) = delete;
  ~StagingBlock() { release(); }

  // At least `bytes` bytes (throws std::bad_alloc when they cannot be had).
  unsigned char* acquire(size_t bytes) {
    Cached* cached = spare().exchange(nullptr);
    // A much larger spare would pin memory this call does not need: free it instead.
    if (cached != nullptr && cached->bytes >= bytes && cached->bytes / 4 <= bytes) {
      block_ = cached;
    } else {
      free(cached);
      block_ = allocate(bytes);
    }
    return block_->data;
  }

  // Frees the block, or keeps it for the next staged call if it is large (see above).
  void release() {
    if (block_ == nullptr) return;
    if (block_->bytes >= kKeptFrom) {
      free(spare().exchange(block_));
    } else {
      free(block_);
    }
    block_ = nullptr;
  }

  bool active() const { return block_ != nullptr; }

 private:
  struct Cached {
    size_t bytes;
    unsigned char* data;
  };

  // glibc's largest dynamic mmap threshold on 64-bit systems.
  static constexpr size_t kKeptFrom = size_t{32} << 20;

  static std::atomic<Cached*>& spare() {
    static std::atomic<Cached*> cached{nullptr};
    return cached;
  }

  static Cached* allocate(size_t bytes) {
    std::unique_ptr<unsigned char[]> data(new (std::nothrow) unsigned char[bytes]);
    if (!data) throw std::bad_alloc();
    auto* cached = new Cached{bytes, data.get()};
    data.release();
    return cached;
  }

  static void free(Cached* cached) {
    if (cached == nullptr) return;
    delete[] cached->data;
    delete cached;
  }

  Cached* block_ = nullptr;
};

// An async call on a tensor of at most this many elements runs on the JavaScript thread that made it
// (the main thread or a worker's) instead of the pool. The round trip to libuv's pool and back cost 25
// to 60 µs on the build machine at every size (a (2, 4) training forward 36 µs async against about 2 µs
// sync), more than such a call's work (a (128, 512) backward, 65,536 elements, took 16 µs), so it holds
// the event loop for less time than the round trip would delay its result (docs/PERFORMANCE.md, "Async
// calls"; in a worker, a (2, 4) module step about 4x faster).
constexpr int64_t kInlineElements = int64_t{1} << 16;

template <typename Call>
class AsyncKernelCall {
 public:
  // Queues `call` (already checked) and returns its promise; throws (queuing nothing) on failure.
  // Bit i of `stagedArguments` stages JavaScript argument i. A call of at most kInlineElements
  // elements runs here and returns its promise settled: nothing else runs meanwhile, so it stages
  // nothing and keeps no references; its outcome is the queued call's (results, errors, running
  // statistics all or none).
  static napi_value start(const Napi::CallbackInfo& info, Call call, PoolUse pool, uint32_t stagedArguments) {
    napi_env env = info.Env();
    std::unique_ptr<AsyncKernelCall> self(new AsyncKernelCall(env, std::move(call), pool));
    if (self->call_.geometry.elements() <= kInlineElements) {
      self->call_.prepare(0);
      napi_value promise = nullptr;
      check(env, napi_create_promise(env, &self->deferred_, &promise));
      execute(env, self.get());
      complete(env, napi_ok, self.release());
      return promise;
    }
    self->keepArrays(info);
    self->call_.prepare(self->stage(stagedArguments));
    napi_value name = nullptr, promise = nullptr;
    check(env, napi_create_string_utf8(env, "batchnorm", NAPI_AUTO_LENGTH, &name));
    check(env, napi_create_async_work(env, nullptr, name, &execute, &complete, self.get(), &self->work_));
    check(env, napi_create_promise(env, &self->deferred_, &promise));
    const napi_status queued = napi_queue_async_work(env, self->work_);
    if (queued != napi_ok) {
      napi_value error = nullptr, text = nullptr;
      napi_create_string_utf8(env, "batchnorm: the async call could not be queued", NAPI_AUTO_LENGTH, &text);
      napi_create_error(env, nullptr, text, &error);
      napi_reject_deferred(env, self->deferred_, error);
      return promise;
    }
    self.release();  // owned by the queued work until complete()
    return promise;
  }

  ~AsyncKernelCall() {
    for (const KeptArray& kept : kept_) napi_delete_reference(env_, kept.reference);
    if (work_ != nullptr) napi_delete_async_work(env_, work_);
    releasePool(pool_);
  }
  AsyncKernelCall(const AsyncKernelCall&) = delete;
  AsyncKernelCall& operator=(const AsyncKernelCall&) = delete;

 private:
  struct KeptArray {
    napi_ref reference = nullptr;
    FloatView* view = nullptr;
    void* userData = nullptr;  // where the caller's array was when the call started
    size_t length = 0;
    bool written = false;
    bool staged = false;
    bool overwritten = false;
    size_t argument = 0;
  };

  AsyncKernelCall(napi_env env, Call call, PoolUse pool)
      : env_(env), call_(std::move(call)), pool_(pool.pool), threads_(pool.threads) {
    retainPool(pool_);
  }

  static void check(napi_env env, napi_status status) {
    if (status != napi_ok) NAPI_THROW_VOID(Napi::Error::New(env));
  }

  void keepArrays(const Napi::CallbackInfo& info) {
    for (const ArrayArgument& array : call_.arrays()) {
      if (array.view->data == nullptr) continue;
      KeptArray kept;
      kept.view = array.view;
      kept.userData = array.view->data;
      kept.length = array.view->length;
      kept.written = array.written;
      kept.argument = array.argument;
      kept.overwritten = array.overwritten;
      kept_.push_back(kept);
      check(env_, napi_create_reference(env_, info[array.argument], 1, &kept_.back().reference));
    }
  }

  // Copies the chosen arrays into one block owned by the call, each at the caller's offset modulo 64
  // bytes (the kernels' walks depend on alignment; results must not). Returns the mask of the arguments
  // it staged.
  uint32_t stage(uint32_t stagedArguments) {
    constexpr size_t kAlignment = 64;
    size_t total = kAlignment;
    uint32_t staged = 0;
    for (KeptArray& kept : kept_) {
      kept.staged = kept.argument < 32 && ((stagedArguments >> kept.argument) & 1) != 0;
      if (!kept.staged) continue;
      total += kept.view->byteLength() + kAlignment;
      staged |= uint32_t{1} << kept.argument;
    }
    if (staged == 0) return 0;
    uintptr_t next = reinterpret_cast<uintptr_t>(staging_.acquire(total));
    for (KeptArray& kept : kept_) {
      if (!kept.staged) continue;
      const uintptr_t offset = reinterpret_cast<uintptr_t>(kept.userData) % kAlignment;
      next += (offset + kAlignment - next % kAlignment) % kAlignment;
      void* copy = reinterpret_cast<void*>(next);
      if (!kept.overwritten) std::memcpy(copy, kept.userData, kept.view->byteLength());
      kept.view->data = copy;
      next += kept.view->byteLength();
    }
    return staged;
  }

  static void execute(napi_env /*env*/, void* data) noexcept {
    auto* self = static_cast<AsyncKernelCall*>(data);
    try {
      const ScopedPool scope(self->pool_, self->threads_);
      self->call_.run();
    } catch (const std::bad_alloc&) {
      self->failure_ = Failure::OutOfMemory;
    } catch (const std::exception& error) {
      self->failure_ = Failure::Native;
      try {
        self->message_ = error.what();
      } catch (...) {
      }
    } catch (...) {
      self->failure_ = Failure::Native;
    }
  }

  // Runs on the JavaScript thread, also while a worker's environment is being torn down; every N-API
  // status is allowed to fail there, and the call's memory is released whatever happens.
  static void complete(napi_env env, napi_status status, void* data) noexcept {
    std::unique_ptr<AsyncKernelCall> self(static_cast<AsyncKernelCall*>(data));
    napi_handle_scope scope = nullptr;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    if (status != napi_ok) self->failure_ = Failure::Cancelled;
    napi_value error = nullptr, undefined = nullptr;
    napi_get_undefined(env, &undefined);
    if (self->settle(env, &error)) {
      napi_resolve_deferred(env, self->deferred_, undefined);
    } else {
      napi_reject_deferred(env, self->deferred_, error != nullptr ? error : undefined);
    }
    napi_close_handle_scope(env, scope);
  }

  // Writes the results back if the call succeeded and its arrays are intact (true); otherwise sets
  // *error to the rejection (null if even that cannot be made: the environment is going away).
  bool settle(napi_env env, napi_value* error) noexcept {
    if (failure_ == Failure::None && !arraysIntact(env)) failure_ = Failure::Detached;
    switch (failure_) {
      case Failure::None:
        break;
      case Failure::OutOfMemory:
        *error = errorValue(env, napi_create_range_error, outOfMemoryMessage());
        return false;
      case Failure::Detached:
        *error = errorValue(env, napi_create_type_error,
                            "an array passed to an async batchnorm call was detached or resized before the call "
                            "completed; nothing was written back");
        return false;
      case Failure::Cancelled:
        *error = errorValue(env, napi_create_error, "batchnorm: the async call was cancelled");
        return false;
      case Failure::Native:
        *error = errorValue(env, napi_create_error, message_.empty() ? "batchnorm: native error" : message_.c_str());
        return false;
    }
    call_.commit();
    if (staging_.active()) {
      for (const KeptArray& kept : kept_) {
        if (kept.written && kept.staged) std::memcpy(kept.userData, kept.view->data, kept.view->byteLength());
      }
    }
    return true;
  }

  bool arraysIntact(napi_env env) noexcept {
    for (const KeptArray& kept : kept_) {
      napi_value array = nullptr;
      napi_typedarray_type type;
      size_t length = 0;
      void* data = nullptr;
      if (napi_get_reference_value(env, kept.reference, &array) != napi_ok || array == nullptr) return false;
      if (napi_get_typedarray_info(env, array, &type, &length, &data, nullptr, nullptr) != napi_ok) return false;
      if (length != kept.length || data != kept.userData) return false;
    }
    return true;
  }

  static napi_value errorValue(napi_env env, napi_status (*create)(napi_env, napi_value, napi_value, napi_value*),
                               const char* message) noexcept {
    napi_value text = nullptr, error = nullptr;
    if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok) return nullptr;
    if (create(env, nullptr, text, &error) != napi_ok) return nullptr;
    return error;
  }

  enum class Failure { None, OutOfMemory, Native, Detached, Cancelled };

  napi_env env_;
  Call call_;
  ThreadPool* pool_;
  int threads_;  // the environment's thread count when the call started
  napi_async_work work_ = nullptr;
  napi_deferred deferred_ = nullptr;
  std::vector<KeptArray> kept_;
  StagingBlock staging_;
  Failure failure_ = Failure::None;
  std::string message_;
};

}  // namespace batchnorm::binding
