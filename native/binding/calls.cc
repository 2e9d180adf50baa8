#include "binding/calls.h"

#include <cstring>
#include <new>

namespace batchnorm::binding {
namespace {

// Arrays written by a call must not share memory with any other argument (lib/ reports this with a
// friendlier message); `output` may be exactly `input` (in place).
template <size_t N>
void requireNoHarmfulOverlap(Napi::Env env, const std::array<ArrayArgument, N>& arrays, const FloatView* inPlaceOutput,
                             const FloatView* inPlaceInput) {
  for (size_t i = 0; i < N; ++i) {
    for (size_t j = i + 1; j < N; ++j) {
      const ArrayArgument& a = arrays[i];
      const ArrayArgument& b = arrays[j];
      if (!a.written && !b.written) continue;
      const bool inPlacePair = (a.view == inPlaceOutput && b.view == inPlaceInput) ||
                               (a.view == inPlaceInput && b.view == inPlaceOutput);
      if (inPlacePair) {
        requireDisjointOrSame(env, *a.view, a.name, *b.view, b.name);
      } else {
        requireDisjoint(env, *a.view, a.name, *b.view, b.name);
      }
    }
  }
}

template <typename T>
void forwardAs(ForwardCall& call) {
  ForwardArgs<T> args;
  args.input = call.input.as<T>();
  args.output = call.output.as<T>();
  args.weight = call.weight.as<T>();
  args.bias = call.bias.as<T>();
  args.saveMean = call.saveMean.as<T>();
  args.saveInvstd = call.saveInvstd.as<T>();
  args.training = call.training;
  args.momentum = call.momentum;
  args.eps = call.eps;
  args.useReference = call.useReference;
  if (call.runningScratch) {
    const auto channels = static_cast<size_t>(call.geometry.channels);
    T* scratch = reinterpret_cast<T*>(call.runningScratch.get());
    if (call.runningMean.data != nullptr) {
      args.runningMean = scratch;
      std::memcpy(scratch, call.runningMean.data, call.runningMean.byteLength());
    }
    if (call.runningVar.data != nullptr) {
      args.runningVar = scratch + channels;
      std::memcpy(scratch + channels, call.runningVar.data, call.runningVar.byteLength());
    }
  } else {
    args.runningMean = call.runningMean.as<T>();
    args.runningVar = call.runningVar.as<T>();
  }
  batchNormForward<T>(call.geometry, args);
}

template <typename T>
void backwardAs(const BackwardCall& call) {
  BackwardArgs<T> args;
  args.gradOutput = call.gradOutput.as<T>();
  args.input = call.input.as<T>();
  args.weight = call.weight.as<T>();
  args.runningMean = call.runningMean.as<T>();
  args.runningVar = call.runningVar.as<T>();
  args.saveMean = call.saveMean.as<T>();
  args.saveInvstd = call.saveInvstd.as<T>();
  args.gradInput = call.gradInput.as<T>();
  args.gradWeight = call.gradWeight.as<T>();
  args.gradBias = call.gradBias.as<T>();
  args.training = call.training;
  args.eps = call.eps;
  args.useReference = call.useReference;
  batchNormBackward<T>(call.geometry, args);
}

}  // namespace

std::array<ArrayArgument, 8> ForwardCall::arrays() {
  return {{{&input, "input", false, 0, false},
           {&output, "output", true, 1, true},
           {&weight, "weight", false, 5, false},
           {&bias, "bias", false, 6, false},
           {&runningMean, "runningMean", training, 7, false},
           {&runningVar, "runningVar", training, 8, false},
           {&saveMean, "saveMean", true, 9, true},
           {&saveInvstd, "saveInvstd", true, 10, true}}};
}

void ForwardCall::run() { dtype == DType::Float32 ? forwardAs<float>(*this) : forwardAs<double>(*this); }

void ForwardCall::commit() {
  if (!runningScratch) return;
  const auto* scratch = reinterpret_cast<const unsigned char*>(runningScratch.get());
  if (runningMean.data != nullptr) std::memcpy(runningMean.data, scratch, runningMean.byteLength());
  if (runningVar.data != nullptr) {
    std::memcpy(runningVar.data, scratch + runningMean.elementSize() * static_cast<size_t>(geometry.channels),
                runningVar.byteLength());
  }
}

std::array<ArrayArgument, 10> BackwardCall::arrays() {
  return {{{&gradOutput, "gradOutput", false, 0, false},
           {&input, "input", false, 1, false},
           {&weight, "weight", false, 5, false},
           {&runningMean, "runningMean", false, 6, false},
           {&runningVar, "runningVar", false, 7, false},
           {&saveMean, "saveMean", false, 8, false},
           {&saveInvstd, "saveInvstd", false, 9, false},
           {&gradInput, "gradInput", true, 10, true},
           {&gradWeight, "gradWeight", true, 11, true},
           {&gradBias, "gradBias", true, 12, true}}};
}

void BackwardCall::run() { dtype == DType::Float32 ? backwardAs<float>(*this) : backwardAs<double>(*this); }

ForwardCall parseForward(const Napi::CallbackInfo& info, bool useReference) {
  ForwardCall call;
  call.useReference = useReference;
  const DType dtype = call.dtype = requireFloatDType(info[0], "input");
  call.geometry = requireGeometry(info, 2);
  const auto elements = static_cast<size_t>(call.geometry.elements());
  const auto channels = static_cast<size_t>(call.geometry.channels);
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
  requireNoHarmfulOverlap(info.Env(), call.arrays(), &call.output, &call.input);
  if (training && (call.runningMean.data != nullptr || call.runningVar.data != nullptr)) {
    // Doubles hold two rows of either element type; float32 needs only half of them.
    call.runningScratch.reset(new (std::nothrow) double[dtype == DType::Float32 ? channels : 2 * channels]);
    if (!call.runningScratch) throw std::bad_alloc();
  }
  return call;
}

BackwardCall parseBackward(const Napi::CallbackInfo& info, bool useReference) {
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
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

}  // namespace batchnorm::binding
