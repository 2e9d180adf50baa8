// The split phases of a SyncBatchNorm step (kernel/split_phases.h) as the binding prepares them: every
// argument checked on the JavaScript thread, then run on any thread (the same shape as calls.h, so
// async_call.h runs them on the libuv pool). Per-channel partials and coefficients are Float64Arrays
// whatever the tensor's dtype.
#pragma once

#include <napi.h>

#include <array>
#include <cstddef>

#include "binding/argument_names.h"
#include "binding/array_argument.h"
#include "binding/worker_group_exchange.h"
#include "kernel/batch_norm.h"

namespace batchnorm::binding {

struct ShardStatisticsCall {
  static constexpr size_t kArguments = ShardStatisticsArgument::count;
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView input, mean, m2;
  std::array<ArrayArgument, 3> arrays();
  void prepare(uint32_t) {}
  void run();
  void commit() {}
};

struct NormalizeWithCall {
  static constexpr size_t kArguments = NormalizeWithArgument::count;
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView input, output, mean, invstd, weight, bias;
  std::array<ArrayArgument, 6> arrays();
  void prepare(uint32_t) {}
  void run();
  void commit() {}
};

struct ShardGradientSumsCall {
  static constexpr size_t kArguments = ShardGradientSumsArgument::count;
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView gradOutput, input, mean, sumDy, dotp;
  std::array<ArrayArgument, 5> arrays();
  void prepare(uint32_t) {}
  void run();
  void commit() {}
};

struct GradInputWithCall {
  static constexpr size_t kArguments = GradInputWithArgument::count;
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView gradOutput, input, gradInput, mean, invstd, weight, sumDy, dotp;
  double total = 0;  // values per channel over all ranks
  std::array<ArrayArgument, 8> arrays();
  void prepare(uint32_t) {}
  void run();
  void commit() {}
};

// SyncBatchNorm's steps by blocks of channels over a worker group's shared memory (kernel/split_phases.h;
// a worker's own thread only: it spins while its peers finish each block). run() returns the
// ExchangeOutcome, which the binding returns as a number.
struct BlockRound {
  WorkerGroupMemory memory;
  FloatView exchange;  // the round's buffer, memory.slots
  int64_t blockChannels = 1;
};

// Training forward: the merged mean, m2 and invstd of every channel come out.
struct NormalizeByBlocksCall {
  static constexpr size_t kArguments = NormalizeByBlocksArgument::count;
  DType dtype = DType::Float32;
  Geometry geometry;
  FloatView input, output, weight, bias, counts, mean, m2, invstd;
  double eps = 0;
  BlockRound round;
  std::array<ArrayArgument, 9> arrays();
  ExchangeOutcome run();
};

// Backward: gradInputWith's result; sumDy/dotp receive this rank's sums of every channel.
struct GradInputByBlocksCall {
  static constexpr size_t kArguments = GradInputByBlocksArgument::count;
  GradInputWithCall pass;  // its first arguments are gradInputWith's
  BlockRound round;
  std::array<ArrayArgument, 9> arrays();
  ExchangeOutcome run();
};

ShardStatisticsCall parseShardStatistics(const Napi::CallbackInfo& info);
NormalizeWithCall parseNormalizeWith(const Napi::CallbackInfo& info);
ShardGradientSumsCall parseShardGradientSums(const Napi::CallbackInfo& info);
GradInputWithCall parseGradInputWith(const Napi::CallbackInfo& info);
NormalizeByBlocksCall parseNormalizeByBlocks(const Napi::CallbackInfo& info);
GradInputByBlocksCall parseGradInputByBlocks(const Napi::CallbackInfo& info);

}  // namespace batchnorm::binding
