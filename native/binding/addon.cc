// The N-API surface: argument re-checks, then a synchronous call into the C++ core.
// The positional contract of each function is documented in binding.d.ts.
#include <napi.h>

#include <initializer_list>
#include <vector>

#include "binding/arguments.h"
#include "kernel/batch_norm.h"
#include "kernel/dispatch.h"

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
                const FloatView& saveMean, const FloatView& saveInvstd, bool training, double momentum, double eps) {
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
  batchNormForward<T>(geometry, args);
}

// forward(input, output, batch, channels, spatial, weight, bias, runningMean, runningVar,
//         saveMean, saveInvstd, training, momentum, eps): undefined
Napi::Value Forward(const Napi::CallbackInfo& info) {
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
                      momentum, eps);
  } else {
    runForward<double>(geometry, input, output, weight, bias, runningMean, runningVar, saveMean, saveInvstd, training,
                       momentum, eps);
  }
  return env.Undefined();
}

template <typename T>
void runBackward(const Geometry& geometry, const FloatView& gradOutput, const FloatView& input,
                 const FloatView& weight, const FloatView& runningMean, const FloatView& runningVar,
                 const FloatView& saveMean, const FloatView& saveInvstd, const FloatView& gradInput,
                 const FloatView& gradWeight, const FloatView& gradBias, bool training, double eps) {
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
  batchNormBackward<T>(geometry, args);
}

// backward(gradOutput, input, batch, channels, spatial, weight, runningMean, runningVar, saveMean,
//          saveInvstd, gradInput, gradWeight, gradBias, training, eps): undefined
Napi::Value Backward(const Napi::CallbackInfo& info) {
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
                       gradWeight, gradBias, training, eps);
  } else {
    runBackward<double>(geometry, gradOutput, input, weight, runningMean, runningVar, saveMean, saveInvstd, gradInput,
                        gradWeight, gradBias, training, eps);
  }
  return env.Undefined();
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
  exports.Set("cpuCapability", Napi::Function::New(env, CpuCapability, "cpuCapability"));
  return exports;
}

}  // namespace

NODE_API_MODULE(batchnorm, InitBatchnorm)
