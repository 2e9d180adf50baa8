// The N-API surface: argument re-checks, then a synchronous call into the C++ core.
// The positional contract of each function is documented in binding.d.ts.
#include <napi.h>

#include <cstring>
#include <initializer_list>
#include <vector>

#include "binding/arguments.h"
#include "kernel/batch_norm.h"
#include "kernel/dispatch.h"
#include "kernel/thread_pool.h"

namespace batchnorm::binding {
namespace {

struct NamedView {
  const FloatView* view;
  const char* name;
  bool written;
};

// Arrays written by a call must not share memory with any other argument (lib/ reports this with a
// friendlier message); `output` may be exactly `input` (in place).
void requireNoHarmfulOverlap(Napi::Env env, std::initializer_list<NamedView> views, const FloatView* inPlaceOutput,
                             const FloatView* inPlaceInput) {
  const std::vector<NamedView> all(views);
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) {
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

template <typename T>
void runForward(const Geometry& geometry, const FloatView& input, const FloatView& output, const FloatView& weight,
                const FloatView& bias, const FloatView& runningMean, const FloatView& runningVar,
                const FloatView& saveMean, const FloatView& saveInvstd, bool training, double momentum, double eps,
                bool useReference) {
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

// forward(input, output, batch, channels, spatial, weight, bias, runningMean, runningVar,
//         saveMean, saveInvstd, training, momentum, eps): undefined
Napi::Value ForwardWith(const Napi::CallbackInfo& info, bool useReference) {
  Napi::Env env = info.Env();
  const DType dtype = requireFloatDType(info[0], "input");
  const Geometry geometry = requireGeometry(info, 2);
  const auto elements = static_cast<size_t>(geometry.elements());
  const auto channels = static_cast<size_t>(geometry.channels);
  const bool training = requireBoolean(info[11], "training");
  const double momentum = requireNumber(info[12], "momentum");
  const double eps = requireNumber(info[13], "eps");

  const FloatView input = requireFloatArray(info[0], "input", dtype, elements);
  const FloatView output = requireFloatArray(info[1], "output", dtype, elements);
  const FloatView weight = optionalFloatArray(info[5], "weight", dtype, channels);
  const FloatView bias = optionalFloatArray(info[6], "bias", dtype, channels);
  const FloatView runningMean = training ? optionalFloatArray(info[7], "runningMean", dtype, channels)
                                         : requireFloatArray(info[7], "runningMean", dtype, channels);
  const FloatView runningVar = training ? optionalFloatArray(info[8], "runningVar", dtype, channels)
                                        : requireFloatArray(info[8], "runningVar", dtype, channels);
  const FloatView saveMean = training ? requireFloatArray(info[9], "saveMean", dtype, channels) : FloatView{};
  const FloatView saveInvstd = training ? requireFloatArray(info[10], "saveInvstd", dtype, channels) : FloatView{};
  requireNoHarmfulOverlap(env,
                          {{&input, "input", false},
                           {&output, "output", true},
                           {&weight, "weight", false},
                           {&bias, "bias", false},
                           {&runningMean, "runningMean", training},
                           {&runningVar, "runningVar", training},
                           {&saveMean, "saveMean", true},
                           {&saveInvstd, "saveInvstd", true}},
                          &output, &input);

  if (dtype == DType::Float32) {
    runForward<float>(geometry, input, output, weight, bias, runningMean, runningVar, saveMean, saveInvstd, training,
                      momentum, eps, useReference);
  } else {
    runForward<double>(geometry, input, output, weight, bias, runningMean, runningVar, saveMean, saveInvstd, training,
                       momentum, eps, useReference);
  }
  return env.Undefined();
}

Napi::Value Forward(const Napi::CallbackInfo& info) { return ForwardWith(info, false); }
Napi::Value ForwardReference(const Napi::CallbackInfo& info) { return ForwardWith(info, true); }

template <typename T>
void runBackward(const Geometry& geometry, const FloatView& gradOutput, const FloatView& input,
                 const FloatView& weight, const FloatView& runningMean, const FloatView& runningVar,
                 const FloatView& saveMean, const FloatView& saveInvstd, const FloatView& gradInput,
                 const FloatView& gradWeight, const FloatView& gradBias, bool training, double eps, bool useReference) {
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

// backward(gradOutput, input, batch, channels, spatial, weight, runningMean, runningVar, saveMean,
//          saveInvstd, gradInput, gradWeight, gradBias, training, eps): undefined
Napi::Value BackwardWith(const Napi::CallbackInfo& info, bool useReference) {
  Napi::Env env = info.Env();
  const DType dtype = requireFloatDType(info[1], "input");
  const Geometry geometry = requireGeometry(info, 2);
  const auto elements = static_cast<size_t>(geometry.elements());
  const auto channels = static_cast<size_t>(geometry.channels);
  const bool training = requireBoolean(info[13], "training");
  const double eps = requireNumber(info[14], "eps");

  const FloatView gradOutput = requireFloatArray(info[0], "gradOutput", dtype, elements);
  const FloatView input = requireFloatArray(info[1], "input", dtype, elements);
  const FloatView weight = optionalFloatArray(info[5], "weight", dtype, channels);
  const FloatView runningMean = training ? FloatView{} : requireFloatArray(info[6], "runningMean", dtype, channels);
  const FloatView runningVar = training ? FloatView{} : requireFloatArray(info[7], "runningVar", dtype, channels);
  const FloatView saveMean = training ? requireFloatArray(info[8], "saveMean", dtype, channels) : FloatView{};
  const FloatView saveInvstd = training ? requireFloatArray(info[9], "saveInvstd", dtype, channels) : FloatView{};
  const FloatView gradInput = optionalFloatArray(info[10], "gradInput", dtype, elements);
  const FloatView gradWeight = optionalFloatArray(info[11], "gradWeight", dtype, channels);
  const FloatView gradBias = optionalFloatArray(info[12], "gradBias", dtype, channels);
  requireNoHarmfulOverlap(env,
                          {{&gradOutput, "gradOutput", false},
                           {&input, "input", false},
                           {&weight, "weight", false},
                           {&runningMean, "runningMean", false},
                           {&runningVar, "runningVar", false},
                           {&saveMean, "saveMean", false},
                           {&saveInvstd, "saveInvstd", false},
                           {&gradInput, "gradInput", true},
                           {&gradWeight, "gradWeight", true},
                           {&gradBias, "gradBias", true}},
                          nullptr, nullptr);
  if (dtype == DType::Float32) {
    runBackward<float>(geometry, gradOutput, input, weight, runningMean, runningVar, saveMean, saveInvstd, gradInput,
                       gradWeight, gradBias, training, eps, useReference);
  } else {
    runBackward<double>(geometry, gradOutput, input, weight, runningMean, runningVar, saveMean, saveInvstd, gradInput,
                        gradWeight, gradBias, training, eps, useReference);
  }
  return env.Undefined();
}

Napi::Value Backward(const Napi::CallbackInfo& info) { return BackwardWith(info, false); }
Napi::Value BackwardReference(const Napi::CallbackInfo& info) { return BackwardWith(info, true); }

// setNumThreads(threads): undefined
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const double threads = requireNumber(info[0], "threads");
  if (!(threads >= 1 && threads <= 256) || threads != static_cast<double>(static_cast<int>(threads))) {
    throw Napi::RangeError::New(info.Env(), "threads must be an integer from 1 to 256");
  }
  setNumThreads(static_cast<int>(threads));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getNumThreads()); }

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
  exports.Set("forward", Napi::Function::New(env, Forward, "forward"));
  exports.Set("backward", Napi::Function::New(env, Backward, "backward"));
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
