#include "binding/calls.h"

#include <cstring>
#include <new>

namespace batchnorm::binding {
namespace {

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
  return {{{&input, "input", false, ForwardArgument::input, false},
           {&output, "output", true, ForwardArgument::output, true},
           {&weight, "weight", false, ForwardArgument::weight, false},
           {&bias, "bias", false, ForwardArgument::bias, false},
           {&runningMean, "runningMean", training, ForwardArgument::runningMean, false},
           {&runningVar, "runningVar", training, ForwardArgument::runningVar, false},
           {&saveMean, "saveMean", true, ForwardArgument::saveMean, true},
           {&saveInvstd, "saveInvstd", true, ForwardArgument::saveInvstd, true}}};
}

void ForwardCall::prepare(uint32_t stagedArguments) {
  const auto unstaged = [stagedArguments](const FloatView& view, size_t argument) {
    return view.data != nullptr && ((stagedArguments >> argument) & 1) == 0;
  };
  if (!training || privateRunningStats ||
      !(unstaged(runningMean, ForwardArgument::runningMean) || unstaged(runningVar, ForwardArgument::runningVar))) {
    return;
  }
  const auto channels = static_cast<size_t>(geometry.channels);
  // Doubles hold two rows of either element type; float32 needs only half of them.
  runningScratch.reset(new (std::nothrow) double[dtype == DType::Float32 ? channels : 2 * channels]);
  if (!runningScratch) throw std::bad_alloc();
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
  return {{{&gradOutput, "gradOutput", false, BackwardArgument::gradOutput, false},
           {&input, "input", false, BackwardArgument::input, false},
           {&weight, "weight", false, BackwardArgument::weight, false},
           {&runningMean, "runningMean", false, BackwardArgument::runningMean, false},
           {&runningVar, "runningVar", false, BackwardArgument::runningVar, false},
           {&saveMean, "saveMean", false, BackwardArgument::saveMean, false},
           {&saveInvstd, "saveInvstd", false, BackwardArgument::saveInvstd, false},
           {&gradInput, "gradInput", true, BackwardArgument::gradInput, true},
           {&gradWeight, "gradWeight", true, BackwardArgument::gradWeight, true},
           {&gradBias, "gradBias", true, BackwardArgument::gradBias, true}}};
}

void BackwardCall::run() { dtype == DType::Float32 ? backwardAs<float>(*this) : backwardAs<double>(*this); }

// requireGeometry reads the three sizes from consecutive arguments.
static_assert(ForwardArgument::channels == ForwardArgument::batch + 1 && ForwardArgument::spatial == ForwardArgument::batch + 2,
              "forward's sizes are consecutive");
static_assert(BackwardArgument::channels == BackwardArgument::batch + 1 &&
                  BackwardArgument::spatial == BackwardArgument::batch + 2,
              "backward's sizes are consecutive");

ForwardCall parseForward(const Napi::CallbackInfo& info, bool useReference) {
  ForwardCall call;
  call.useReference = useReference;
  const DType dtype = call.dtype = requireFloatDType(info[ForwardArgument::input], "input");
  call.geometry = requireGeometry(info, ForwardArgument::batch);
  const auto elements = static_cast<size_t>(call.geometry.elements());
  const auto channels = static_cast<size_t>(call.geometry.channels);
  const bool training = call.training = requireBoolean(info[ForwardArgument::training], "training");
  call.momentum = requireNumber(info[ForwardArgument::momentum], "momentum");
  call.eps = requireNumber(info[ForwardArgument::eps], "eps");
  call.input = requireFloatArray(info[ForwardArgument::input], "input", dtype, elements);
  call.output = requireFloatArray(info[ForwardArgument::output], "output", dtype, elements);
  call.weight = optionalFloatArray(info[ForwardArgument::weight], "weight", dtype, channels);
  call.bias = optionalFloatArray(info[ForwardArgument::bias], "bias", dtype, channels);
  call.runningMean = training ? optionalFloatArray(info[ForwardArgument::runningMean], "runningMean", dtype, channels)
                              : requireFloatArray(info[ForwardArgument::runningMean], "runningMean", dtype, channels);
  call.runningVar = training ? optionalFloatArray(info[ForwardArgument::runningVar], "runningVar", dtype, channels)
                             : requireFloatArray(info[ForwardArgument::runningVar], "runningVar", dtype, channels);
  call.saveMean = training ? requireFloatArray(info[ForwardArgument::saveMean], "saveMean", dtype, channels) : FloatView{};
  call.saveInvstd = training ? requireFloatArray(info[ForwardArgument::saveInvstd], "saveInvstd", dtype, channels) : FloatView{};
  call.privateRunningStats = requireBoolean(info[ForwardArgument::privateRunningStats], "privateRunningStats");
  requireNoHarmfulOverlap(info.Env(), call.arrays(), &call.output, &call.input);
  return call;
}

BackwardCall parseBackward(const Napi::CallbackInfo& info, bool useReference) {
  BackwardCall call;
  call.useReference = useReference;
  const DType dtype = call.dtype = requireFloatDType(info[BackwardArgument::input], "input");
  call.geometry = requireGeometry(info, BackwardArgument::batch);
  const auto elements = static_cast<size_t>(call.geometry.elements());
  const auto channels = static_cast<size_t>(call.geometry.channels);
  const bool training = call.training = requireBoolean(info[BackwardArgument::training], "training");
  call.eps = requireNumber(info[BackwardArgument::eps], "eps");
  call.gradOutput = requireFloatArray(info[BackwardArgument::gradOutput], "gradOutput", dtype, elements);
  call.input = requireFloatArray(info[BackwardArgument::input], "input", dtype, elements);
  call.weight = optionalFloatArray(info[BackwardArgument::weight], "weight", dtype, channels);
  call.runningMean = training ? FloatView{} : requireFloatArray(info[BackwardArgument::runningMean], "runningMean", dtype, channels);
  call.runningVar = training ? FloatView{} : requireFloatArray(info[BackwardArgument::runningVar], "runningVar", dtype, channels);
  call.saveMean = training ? requireFloatArray(info[BackwardArgument::saveMean], "saveMean", dtype, channels) : FloatView{};
  call.saveInvstd = training ? requireFloatArray(info[BackwardArgument::saveInvstd], "saveInvstd", dtype, channels) : FloatView{};
  call.gradInput = optionalFloatArray(info[BackwardArgument::gradInput], "gradInput", dtype, elements);
  call.gradWeight = optionalFloatArray(info[BackwardArgument::gradWeight], "gradWeight", dtype, channels);
  call.gradBias = optionalFloatArray(info[BackwardArgument::gradBias], "gradBias", dtype, channels);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

}  // namespace batchnorm::binding
