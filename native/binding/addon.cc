// The N-API surface: argument re-checks, then a call into the C++ core, synchronous or on the libuv
// thread pool.
// The positional contract of each function is documented in binding.d.ts.
#include <napi.h>

#include <cstring>
#include <exception>
#include <initializer_list>
#include <atomic>
#include <string>
#include <vector>

#include "binding/arguments.h"
#include "kernel/batch_norm.h"
#include "kernel/dispatch.h"
#include "kernel/thread_pool.h"

namespace batchnorm::binding {
namespace {

// A counted reference to a kernel thread pool. (std::shared_ptr would do, but GCC 12's libstdc++ makes it
// consult glibc 2.32's __libc_single_threaded, raising the glibc a prebuilt binary needs.)
class PoolHandle {
 public:
  explicit PoolHandle(ThreadPool* pool) : shared_(new Shared{pool, {1}}) {}
  PoolHandle(const PoolHandle& other) : shared_(other.shared_) { shared_->references.fetch_add(1); }
  PoolHandle& operator=(const PoolHandle&) = delete;
  ~PoolHandle() {
    if (shared_->references.fetch_sub(1) == 1) {
      destroyThreadPool(shared_->pool);
      delete shared_;
    }
  }
  ThreadPool* get() const { return shared_->pool; }

 private:
  struct Shared {
    ThreadPool* pool;
    std::atomic<int> references;
  };
  Shared* shared_;
};

// Per-environment state (the main thread and each worker thread have their own): the kernels' thread pool.
// Shared with in-flight async calls, so a pool outlives an environment torn down mid-call.
struct AddonData {
  PoolHandle pool;
};

PoolHandle poolOf(Napi::Env env) { return env.GetInstanceData<AddonData>()->pool; }

struct NamedView {
  const FloatView* view;
  const char* name;
  bool written;
};

// Arrays written by a call must not share memory with any other argument (lib/ reports this with a
// friendlier message); `output` may be exactly `input` (in place).
void requireNoHarmfulOverlap(Napi::Env env, std::initializer_list<NamedView> views, const FloatView* inPlaceOutput,
                             const FloatView* inPlaceInput) {
  const NamedView* all = views.begin();  // no copy: this runs on every call
  for (size_t i = 0; i < views.size(); ++i) {
    for (size_t j = i + 1; j < views.size(); ++j) {
      if (!all[i].written && !all[j].written) continue;
      const bool inPlacePair = (all[i].view == inPlaceOutput && all[j].view == inPlaceInput) ||
                               (all[i].view == inPlaceInput && all[j].view == inPlaceOutput);
      if (inPlacePair) {
        requireDisjointOrSame(env, *all[i].view, all[i].name, *all[j].view, all[j].name);
      } else {
        requireDisjoint(env, *all[i].view, all[i].name, *all[j].view, all[j].name);
      }
    }
  }
}

// A forward call with every argument checked, ready to run on any thread.
struct ForwardCall {
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView input, output, weight, bias, runningMean, runningVar, saveMean, saveInvstd;
  bool training = false;
  double momentum = 0.1, eps = 1e-5;
  bool useReference = false;

  template <typename T>
  void runAs() const {
    ForwardArgs<T> args;
    args.input = input.as<T>();
    args.output = output.as<T>();
    args.weight = weight.as<T>();
    args.bias = bias.as<T>();
    args.runningMean = runningMean.as<T>();
    args.runningVar = runningVar.as<T>();
    args.saveMean = saveMean.as<T>();
    args.saveInvstd = saveInvstd.as<T>();
    args.training = training;
    args.momentum = momentum;
    args.eps = eps;
    args.useReference = useReference;
    batchNormForward<T>(geometry, args);
  }
  void run() const { dtype == DType::Float32 ? runAs<float>() : runAs<double>(); }
};

// forward(input, output, batch, channels, spatial, weight, bias, runningMean, runningVar,
//         saveMean, saveInvstd, training, momentum, eps)
ForwardCall parseForward(const Napi::CallbackInfo& info, bool useReference) {
  Napi::Env env = info.Env();
  ForwardCall call;
  call.useReference = useReference;
  call.dtype = requireFloatDType(info[0], "input");
  call.geometry = requireGeometry(info, 2);
  const auto elements = static_cast<size_t>(call.geometry.elements());
  const auto channels = static_cast<size_t>(call.geometry.channels);
  const DType dtype = call.dtype;
  const bool training = call.training = requireBoolean(info[11], "training");
  call.momentum = requireNumber(info[12], "momentum");
  call.eps = requireNumber(info[13], "eps");
  call.input = requireFloatArray(info[0], "input", dtype, elements);
  call.output = requireFloatArray(info[1], "output", dtype, elements);
  call.weight = optionalFloatArray(info[5], "weight", dtype, channels);
  call.bias = optionalFloatArray(info[6], "bias", dtype, channels);
  call.runningMean = training ? optionalFloatArray(info[7], "runningMean", dtype, channels)
                              : requireFloatArray(info[7], "runningMean", dtype, channels);
  call.runningVar = training ? optionalFloatArray(info[8], "runningVar", dtype, channels)
                             : requireFloatArray(info[8], "runningVar", dtype, channels);
  call.saveMean = training ? requireFloatArray(info[9], "saveMean", dtype, channels) : FloatView{};
  call.saveInvstd = training ? requireFloatArray(info[10], "saveInvstd", dtype, channels) : FloatView{};
  requireNoHarmfulOverlap(env,
                          {{&call.input, "input", false},
                           {&call.output, "output", true},
                           {&call.weight, "weight", false},
                           {&call.bias, "bias", false},
                           {&call.runningMean, "runningMean", training},
                           {&call.runningVar, "runningVar", training},
                           {&call.saveMean, "saveMean", true},
                           {&call.saveInvstd, "saveInvstd", true}},
                          &call.output, &call.input);
  return call;
}

struct BackwardCall {
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView gradOutput, input, weight, runningMean, runningVar, saveMean, saveInvstd, gradInput, gradWeight, gradBias;
  bool training = false;
  double eps = 1e-5;
  bool useReference = false;

  template <typename T>
  void runAs() const {
    BackwardArgs<T> args;
    args.gradOutput = gradOutput.as<T>();
    args.input = input.as<T>();
    args.weight = weight.as<T>();
    args.runningMean = runningMean.as<T>();
    args.runningVar = runningVar.as<T>();
    args.saveMean = saveMean.as<T>();
    args.saveInvstd = saveInvstd.as<T>();
    args.gradInput = gradInput.as<T>();
    args.gradWeight = gradWeight.as<T>();
    args.gradBias = gradBias.as<T>();
    args.training = training;
    args.eps = eps;
    args.useReference = useReference;
    batchNormBackward<T>(geometry, args);
  }
  void run() const { dtype == DType::Float32 ? runAs<float>() : runAs<double>(); }
};

// backward(gradOutput, input, batch, channels, spatial, weight, runningMean, runningVar, saveMean,
//          saveInvstd, gradInput, gradWeight, gradBias, training, eps)
BackwardCall parseBackward(const Napi::CallbackInfo& info, bool useReference) {
  Napi::Env env = info.Env();
  BackwardCall call;
  call.useReference = useReference;
  const DType dtype = call.dtype = requireFloatDType(info[1], "input");
  call.geometry = requireGeometry(info, 2);
  const auto elements = static_cast<size_t>(call.geometry.elements());
  const auto channels = static_cast<size_t>(call.geometry.channels);
  const bool training = call.training = requireBoolean(info[13], "training");
  call.eps = requireNumber(info[14], "eps");
  call.gradOutput = requireFloatArray(info[0], "gradOutput", dtype, elements);
  call.input = requireFloatArray(info[1], "input", dtype, elements);
  call.weight = optionalFloatArray(info[5], "weight", dtype, channels);
  call.runningMean = training ? FloatView{} : requireFloatArray(info[6], "runningMean", dtype, channels);
  call.runningVar = training ? FloatView{} : requireFloatArray(info[7], "runningVar", dtype, channels);
  call.saveMean = training ? requireFloatArray(info[8], "saveMean", dtype, channels) : FloatView{};
  call.saveInvstd = training ? requireFloatArray(info[9], "saveInvstd", dtype, channels) : FloatView{};
  call.gradInput = optionalFloatArray(info[10], "gradInput", dtype, elements);
  call.gradWeight = optionalFloatArray(info[11], "gradWeight", dtype, channels);
  call.gradBias = optionalFloatArray(info[12], "gradBias", dtype, channels);
  requireNoHarmfulOverlap(env,
                          {{&call.gradOutput, "gradOutput", false},
                           {&call.input, "input", false},
                           {&call.weight, "weight", false},
                           {&call.runningMean, "runningMean", false},
                           {&call.runningVar, "runningVar", false},
                           {&call.saveMean, "saveMean", false},
                           {&call.saveInvstd, "saveInvstd", false},
                           {&call.gradInput, "gradInput", true},
                           {&call.gradWeight, "gradWeight", true},
                           {&call.gradBias, "gradBias", true}},
                          nullptr, nullptr);
  return call;
}

// Runs a checked call on this thread with the environment's pool.
template <typename Call>
Napi::Value runHere(const Napi::CallbackInfo& info, const Call& call) {
  const PoolHandle pool = poolOf(info.Env());
  const ScopedPool scope(pool.get());
  call.run();
  return info.Env().Undefined();
}

Napi::Value Forward(const Napi::CallbackInfo& info) { return runHere(info, parseForward(info, false)); }
Napi::Value ForwardReference(const Napi::CallbackInfo& info) { return runHere(info, parseForward(info, true)); }
Napi::Value Backward(const Napi::CallbackInfo& info) { return runHere(info, parseBackward(info, false)); }
Napi::Value BackwardReference(const Napi::CallbackInfo& info) { return runHere(info, parseBackward(info, true)); }

// Runs a checked call on the libuv thread pool. Every typed-array argument is held by a reference until
// the work completes, so the garbage collector cannot free memory the kernels use. Detaching a buffer
// (transferring it) while the work runs cannot be prevented through N-API; it is reported as an error.
template <typename Call>
class KernelWorker : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, Call call, const Napi::CallbackInfo& info, size_t arguments)
      : Napi::AsyncWorker(env, "batchnorm"),
        call_(call),
        pool_(poolOf(env)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    for (size_t i = 0; i < arguments; ++i) {
      if (info[i].IsTypedArray()) kept_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      const ScopedPool scope(pool_.get());
      call_.run();
    } catch (const std::exception& error) {
      error_ = error.what();
      failed_ = true;
    }
  }

  // Replaces node-addon-api's completion, whose handle scope throws a C++ exception (and so terminates
  // the process) when the environment is being torn down, e.g. a worker thread terminated mid-call.
  // Here nothing may throw: if JavaScript can no longer run, the promise is simply dropped.
  void OnWorkComplete(Napi::Env env, napi_status status) override {
    napi_handle_scope scope = nullptr;
    if (status != napi_cancelled && napi_open_handle_scope(env, &scope) == napi_ok) {
      try {
        settle(env);
      } catch (...) {
        // The environment is shutting down; there is no one left to tell.
      }
      napi_close_handle_scope(env, scope);
    }
    Destroy();
  }

 private:
  void settle(Napi::Env env) {
    if (failed_) {
      deferred_.Reject(Napi::Error::New(env, error_).Value());
      return;
    }
    for (Napi::ObjectReference& reference : kept_) {
      bool detached = false;
      const Napi::TypedArray array = reference.Value().As<Napi::TypedArray>();
      napi_is_detached_arraybuffer(env, array.ArrayBuffer(), &detached);
      if (detached) {
        deferred_.Reject(Napi::Error::New(env, "an array passed to an async batchnorm call was detached (transferred) "
                                               "before the call completed; its result is undefined").Value());
        return;
      }
    }
    deferred_.Resolve(env.Undefined());
  }

  Call call_;
  PoolHandle pool_;
  std::string error_;
  bool failed_ = false;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> kept_;
};

// forwardAsync(...same arguments as forward): Promise<undefined>
Napi::Value ForwardAsync(const Napi::CallbackInfo& info) {
  auto* worker = new KernelWorker<ForwardCall>(info.Env(), parseForward(info, false), info, 14);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// backwardAsync(...same arguments as backward): Promise<undefined>
Napi::Value BackwardAsync(const Napi::CallbackInfo& info) {
  auto* worker = new KernelWorker<BackwardCall>(info.Env(), parseBackward(info, false), info, 15);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// setNumThreads(threads): undefined
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const double threads = requireNumber(info[0], "threads");
  if (!(threads >= 1 && threads <= 256) || threads != static_cast<double>(static_cast<int>(threads))) {
    throw Napi::RangeError::New(info.Env(), "threads must be an integer from 1 to 256");
  }
  setNumThreads(*poolOf(info.Env()).get(), static_cast<int>(threads));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), getNumThreads(*poolOf(info.Env()).get()));
}

// copy(destination, source): undefined. A plain memcpy of equal-sized float arrays: the benchmark's
// roofline unit, measured the same way as the kernels (same call path, same arrays).
Napi::Value Copy(const Napi::CallbackInfo& info) {
  const DType dtype = requireFloatDType(info[1], "source");
  const size_t length = info[1].As<Napi::TypedArray>().ElementLength();
  const FloatView source = requireFloatArray(info[1], "source", dtype, length);
  const FloatView destination = requireFloatArray(info[0], "destination", dtype, length);
  requireDisjoint(info.Env(), destination, "destination", source, "source");
  if (length > 0) std::memcpy(destination.data, source.data, source.byteLength());
  return info.Env().Undefined();
}

Napi::Value CpuCapability(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cpuCapability());
}

}  // namespace
}  // namespace batchnorm::binding

namespace {

Napi::Object InitBatchnorm(Napi::Env env, Napi::Object exports) {
  using namespace batchnorm::binding;
  env.SetInstanceData(new AddonData{PoolHandle(batchnorm::createThreadPool(1))});
  exports.Set("forward", Napi::Function::New(env, Forward, "forward"));
  exports.Set("backward", Napi::Function::New(env, Backward, "backward"));
  exports.Set("forwardAsync", Napi::Function::New(env, ForwardAsync, "forwardAsync"));
  exports.Set("backwardAsync", Napi::Function::New(env, BackwardAsync, "backwardAsync"));
  exports.Set("forwardReference", Napi::Function::New(env, ForwardReference, "forwardReference"));
  exports.Set("backwardReference", Napi::Function::New(env, BackwardReference, "backwardReference"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("cpuCapability", Napi::Function::New(env, CpuCapability, "cpuCapability"));
  return exports;
}

}  // namespace

NODE_API_MODULE(batchnorm, InitBatchnorm)
