// The two kernel calls as the binding prepares them: every argument checked on the JavaScript thread,
// then run on any thread. A training forward updates its running statistics in private copies and
// writes them back in commit(), so a call that fails (or whose async completion finds its arrays gone)
// leaves them as they were.
#pragma once

#include <napi.h>

#include <array>
#include <cstddef>
#include <memory>

#include "binding/argument_names.h"
#include "binding/array_argument.h"
#include "binding/arguments.h"
#include "kernel/batch_norm.h"

namespace batchnorm::binding {

struct ForwardCall {
  static constexpr size_t kArguments = ForwardArgument::count;

  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView input, output, weight, bias, runningMean, runningVar, saveMean, saveInvstd;
  bool training = false;
  double momentum = 0.1, eps = 1e-5;
  bool useReference = false;
  // Two rows of `channels` elements: the running mean and variance the kernels update.
  std::unique_ptr<double[]> runningScratch;

  std::array<ArrayArgument, 8> arrays();
  void run();
  void commit();
};

struct BackwardCall {
  static constexpr size_t kArguments = BackwardArgument::count;

  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView gradOutput, input, weight, runningMean, runningVar, saveMean, saveInvstd, gradInput, gradWeight, gradBias;
  bool training = false;
  double eps = 1e-5;
  bool useReference = false;

  std::array<ArrayArgument, 10> arrays();
  void run();
  void commit() {}
};

// forward(...ForwardArgument order; binding.d.ts)
ForwardCall parseForward(const Napi::CallbackInfo& info, bool useReference);

// backward(...BackwardArgument order; binding.d.ts)
BackwardCall parseBackward(const Napi::CallbackInfo& info, bool useReference);

}  // namespace batchnorm::binding
