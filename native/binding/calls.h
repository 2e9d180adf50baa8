// The two kernel calls as the binding prepares them: every argument checked on the JavaScript thread
// (parse), what run() needs allocated (prepare, told which arguments an async call staged), then run on
// any thread, and its results committed on the JavaScript thread.
//
// A training forward's running statistics change all at once or not at all, through exactly one copy:
// the caller's own (privateRunningStats: a module's copies, lib/norm-base.ts, which it commits itself),
// the async call's staging (written back only when the call succeeds), or else runningScratch here,
// which the kernels update and commit() writes back.
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
  bool privateRunningStats = false;
  // Two rows of `channels` elements: the running mean and variance the kernels update, where no other
  // copy keeps the update all or nothing (prepare).
  std::unique_ptr<double[]> runningScratch;

  std::array<ArrayArgument, 8> arrays();
  void prepare(uint32_t stagedArguments);
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
  void prepare(uint32_t) {}
  void run();
  void commit() {}
};

// forward(...ForwardArgument order; binding.d.ts)
ForwardCall parseForward(const Napi::CallbackInfo& info, bool useReference);

// backward(...BackwardArgument order; binding.d.ts)
BackwardCall parseBackward(const Napi::CallbackInfo& info, bool useReference);

}  // namespace batchnorm::binding
