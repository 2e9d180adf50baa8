// The N-API surface: argument re-checks, then a call into the C++ core, synchronous or on the libuv
// thread pool. The positional contract of each function is documented in binding.d.ts.
//
// Every entry point goes through guarded() (binding/guard.h): no C++ exception leaves a callback.
#include <napi.h>

#include <atomic>
#include <cstring>

#include "binding/arguments.h"
#include "binding/async_call.h"
#include "binding/calls.h"
#include "binding/fresh_pages.h"
#include "binding/guard.h"
#include "binding/phase_calls.h"
#include "kernel/cache_sizes.h"
#include "kernel/dispatch.h"
#include "kernel/fingerprint.h"
#include "kernel/thread_pool.h"

namespace batchnorm::binding {
namespace {

// Per addon instance (one per Node environment that loads it): a reference to the process's kernel
// pool and the thread count this environment's calls use (setNumThreads; capped by the process's
// budget). In-flight async calls hold their own reference, so the pool outlives an environment torn
// down mid-call.
struct AddonData {
  ThreadPool* pool;
  std::atomic<int> threads{1};
};

AddonData& addonOf(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok || data == nullptr) {
    throw Napi::Error::New(env, "batchnorm: the addon's instance data is missing");
  }
  return *static_cast<AddonData*>(data);
}

PoolUse poolUseOf(napi_env env) {
  AddonData& addon = addonOf(env);
  return PoolUse{addon.pool, addon.threads.load(std::memory_order_relaxed)};
}

template <typename Call>
Napi::Value runHere(const Napi::CallbackInfo& info, Call call) {
  call.prepare(0);
  {
    const PoolUse use = poolUseOf(info.Env());
    const ScopedPool scope(use.pool, use.threads);
    call.run();
  }
  call.commit();
  return info.Env().Undefined();
}

Napi::Value Forward(const Napi::CallbackInfo& info) { return runHere(info, parseForward(info, false)); }
Napi::Value ForwardReference(const Napi::CallbackInfo& info) { return runHere(info, parseForward(info, true)); }
Napi::Value Backward(const Napi::CallbackInfo& info) { return runHere(info, parseBackward(info, false)); }
Napi::Value BackwardReference(const Napi::CallbackInfo& info) { return runHere(info, parseBackward(info, true)); }

// The staged-arguments mask of an async call: bit i stages argument i (binding/async_call.h).
uint32_t requireStagedMask(const Napi::Value& value) {
  const double mask = requireNumber(value, "staged");
  if (!(mask >= 0 && mask <= 4294967295.0) || mask != static_cast<double>(static_cast<uint32_t>(mask))) {
    throw Napi::RangeError::New(value.Env(), "staged must be a 32-bit mask");
  }
  return static_cast<uint32_t>(mask);
}

// forwardAsync(...the arguments of forward, staged): Promise<undefined>
Napi::Value ForwardAsync(const Napi::CallbackInfo& info) {
  ForwardCall call = parseForward(info, false);
  const uint32_t staged = requireStagedMask(info[ForwardCall::kArguments]);
  return Napi::Value(info.Env(), AsyncKernelCall<ForwardCall>::start(info, std::move(call), poolUseOf(info.Env()),
                                                                     staged));
}

// backwardAsync(...the arguments of backward, staged): Promise<undefined>
Napi::Value BackwardAsync(const Napi::CallbackInfo& info) {
  BackwardCall call = parseBackward(info, false);
  const uint32_t staged = requireStagedMask(info[BackwardCall::kArguments]);
  return Napi::Value(info.Env(), AsyncKernelCall<BackwardCall>::start(info, std::move(call), poolUseOf(info.Env()),
                                                                      staged));
}

// The split phases of a SyncBatchNorm step, sync and async (the async ones take the staged mask last).
template <typename Call, Call (*Parse)(const Napi::CallbackInfo&)>
Napi::Value RunPhase(const Napi::CallbackInfo& info) {
  return runHere(info, Parse(info));
}

template <typename Call, Call (*Parse)(const Napi::CallbackInfo&)>
Napi::Value RunPhaseAsync(const Napi::CallbackInfo& info) {
  Call call = Parse(info);
  const uint32_t staged = requireStagedMask(info[Call::kArguments]);
  return Napi::Value(info.Env(), AsyncKernelCall<Call>::start(info, std::move(call), poolUseOf(info.Env()), staged));
}

// normalizeByBlocks / gradInputByBlocks(...their arguments): the ExchangeOutcome (0 done, 1 the group
// broke, 2 timed out), on this thread (lib/sync-batchnorm.ts calls them in a worker, at one kernel
// thread).
template <typename Call, Call (*Parse)(const Napi::CallbackInfo&)>
Napi::Value RunByBlocks(const Napi::CallbackInfo& info) {
  Call call = Parse(info);
  ExchangeOutcome outcome = ExchangeOutcome::Done;
  {
    const PoolUse use = poolUseOf(info.Env());
    const ScopedPool scope(use.pool, use.threads);
    outcome = call.run();
  }
  return Napi::Number::New(info.Env(), static_cast<double>(outcome));
}

int requireThreadCount(const Napi::Value& value) {
  const double threads = requireNumber(value, "threads");
  if (!(threads >= 1 && threads <= 256) || threads != static_cast<double>(static_cast<int>(threads))) {
    throw Napi::RangeError::New(value.Env(), "threads must be an integer from 1 to 256");
  }
  return static_cast<int>(threads);
}

// setNumThreads(threads): this environment's calls use at most `threads` threads, capped by the
// process's budget. Never waits for a running call (an async call keeps the count it started with).
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  addonOf(info.Env()).threads.store(threadsWithinBudget(requireThreadCount(info[0])), std::memory_order_relaxed);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), addonOf(info.Env()).threads.load(std::memory_order_relaxed));
}

// setThreadBudget(threads): number. Sets the process's budget if no environment has (the first wins)
// and returns the budget in force.
Napi::Value SetThreadBudget(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), setThreadBudget(requireThreadCount(info[0])));
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

// fingerprint(array): bigint. A hash of the array's bytes (kernel/fingerprint.h).
Napi::Value Fingerprint(const Napi::CallbackInfo& info) {
  const DType dtype = requireFloatDType(info[0], "array");
  const size_t length = info[0].As<Napi::TypedArray>().ElementLength();
  const FloatView array = requireFloatArray(info[0], "array", dtype, length);
  const PoolUse use = poolUseOf(info.Env());
  const ScopedPool scope(use.pool, use.threads);
  return Napi::BigInt::New(info.Env(), fingerprint(array.data, array.byteLength()));
}

// adviseHugePages(array): boolean. For an output the package has just allocated (binding/fresh_pages.h).
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  const DType dtype = requireFloatDType(info[0], "array");
  const size_t length = info[0].As<Napi::TypedArray>().ElementLength();
  const FloatView array = requireFloatArray(info[0], "array", dtype, length);
  return Napi::Boolean::New(info.Env(), adviseHugePages(array.data, array.byteLength()));
}

Napi::Value CpuCapability(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), cpuCapability());
}

// kernelPlan(float64, batch, channels, spatial, phase, useReference, threads): the planner's answer for a
// call on `threads` threads (capped by the budget) (kernel/dispatch.h WalkPlan), without running it.
Napi::Value KernelPlan(const Napi::CallbackInfo& info) {
  const bool float64 = requireBoolean(info[0], "float64");
  const Geometry geometry = requireGeometry(info, 1);
  const double phase = requireNumber(info[4], "phase");
  if (!(phase == 0 || phase == 1 || phase == 2)) throw Napi::RangeError::New(info.Env(), "phase must be 0, 1 or 2");
  const bool useReference = requireBoolean(info[5], "useReference");
  const double requested = requireNumber(info[6], "threads");
  if (!(requested >= 1 && requested <= 256)) throw Napi::RangeError::New(info.Env(), "threads must be from 1 to 256");
  const int threads = threadsWithinBudget(static_cast<int>(requested));
  WalkPlan plan;
  const auto which = static_cast<Phase>(static_cast<int>(phase));
  if (float64) {
    (useReference ? referenceKernels<double>() : kernels<double>()).describe(geometry, which, threads, plan);
  } else {
    (useReference ? referenceKernels<float>() : kernels<float>()).describe(geometry, which, threads, plan);
  }
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("traversal", plan.traversal);
  result.Set("reduction", plan.reduction);
  result.Set("elementwise", plan.elementwise);
  result.Set("reductionLast", plan.reductionLast);
  result.Set("elementwiseLast", plan.elementwiseLast);
  result.Set("arithmetic", plan.arithmetic);
  result.Set("blockChannels", static_cast<double>(plan.blockChannels));
  result.Set("blockRows", static_cast<double>(plan.blockRows));
  result.Set("streamed", plan.streamed);
  result.Set("threads", plan.threads);
  result.Set("ranges", static_cast<double>(plan.ranges));
  return result;
}

// cacheSizes(): the caches the planner sizes its blocks by (kernel/cache_sizes.h).
Napi::Value CacheSizes(const Napi::CallbackInfo& info) {
  const batchnorm::CacheSizes& sizes = cacheSizes();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("l2Bytes", static_cast<double>(sizes.l2Bytes));
  result.Set("lastLevelBytes", static_cast<double>(sizes.lastLevelBytes));
  result.Set("source", sizes.source);
  return result;
}

void releaseAddonData(napi_env /*env*/, void* data, void* /*hint*/) {
  auto* addon = static_cast<AddonData*>(data);
  releasePool(addon->pool);
  delete addon;
}

template <Napi::Value (*Body)(const Napi::CallbackInfo&)>
void exportFunction(napi_env env, napi_value exports, const char* name) {
  napi_value function = nullptr;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, guarded<Body>, nullptr, &function));
  NAPI_THROW_IF_FAILED_VOID(env, napi_set_named_property(env, exports, name, function));
}

napi_value initialize(napi_env env, napi_value exports) {
  auto* addon = new AddonData{acquirePool()};
  if (napi_set_instance_data(env, addon, releaseAddonData, nullptr) != napi_ok) {
    releaseAddonData(env, addon, nullptr);
    NAPI_THROW(Napi::Error::New(env), nullptr);
  }
  exportFunction<Forward>(env, exports, "forward");
  exportFunction<Backward>(env, exports, "backward");
  exportFunction<ForwardAsync>(env, exports, "forwardAsync");
  exportFunction<BackwardAsync>(env, exports, "backwardAsync");
  exportFunction<ForwardReference>(env, exports, "forwardReference");
  exportFunction<BackwardReference>(env, exports, "backwardReference");
  exportFunction<RunPhase<ShardStatisticsCall, parseShardStatistics>>(env, exports, "shardStatistics");
  exportFunction<RunPhaseAsync<ShardStatisticsCall, parseShardStatistics>>(env, exports, "shardStatisticsAsync");
  exportFunction<RunPhase<NormalizeWithCall, parseNormalizeWith>>(env, exports, "normalizeWith");
  exportFunction<RunPhaseAsync<NormalizeWithCall, parseNormalizeWith>>(env, exports, "normalizeWithAsync");
  exportFunction<RunPhase<ShardGradientSumsCall, parseShardGradientSums>>(env, exports, "shardGradientSums");
  exportFunction<RunPhaseAsync<ShardGradientSumsCall, parseShardGradientSums>>(env, exports, "shardGradientSumsAsync");
  exportFunction<RunPhase<GradInputWithCall, parseGradInputWith>>(env, exports, "gradInputWith");
  exportFunction<RunPhaseAsync<GradInputWithCall, parseGradInputWith>>(env, exports, "gradInputWithAsync");
  exportFunction<RunByBlocks<NormalizeByBlocksCall, parseNormalizeByBlocks>>(env, exports, "normalizeByBlocks");
  exportFunction<RunByBlocks<GradInputByBlocksCall, parseGradInputByBlocks>>(env, exports, "gradInputByBlocks");
  exportFunction<SetNumThreads>(env, exports, "setNumThreads");
  exportFunction<GetNumThreads>(env, exports, "getNumThreads");
  exportFunction<SetThreadBudget>(env, exports, "setThreadBudget");
  exportFunction<Copy>(env, exports, "copy");
  exportFunction<Fingerprint>(env, exports, "fingerprint");
  exportFunction<AdviseHugePages>(env, exports, "adviseHugePages");
  exportFunction<CpuCapability>(env, exports, "cpuCapability");
  exportFunction<KernelPlan>(env, exports, "kernelPlan");
  exportFunction<CacheSizes>(env, exports, "cacheSizes");
  Napi::Object(env, exports).Set("blockMinSpatial", static_cast<double>(kBlockMinSpatial));
  return exports;
}

}  // namespace
}  // namespace batchnorm::binding

// The module's entry point, guarded like every callback: a failed load throws into JavaScript.
NAPI_MODULE_INIT() {
  try {
    return batchnorm::binding::initialize(env, exports);
  } catch (...) {
    batchnorm::binding::throwCurrentException(env);
  }
  return nullptr;
}
