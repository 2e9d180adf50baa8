// The positions of the arguments of forward(), backward() and the split phases (binding.d.ts), by name.
// Written by scripts/write-argument-names.js from the lists of lib/native-arguments.ts: edit those and
// run it, never this file (test/native-boundary.test.ts checks that the two agree).
#pragma once

#include <cstddef>

namespace batchnorm::binding {

struct ForwardArgument {
  enum : size_t {
    input,
    output,
    batch,
    channels,
    spatial,
    weight,
    bias,
    runningMean,
    runningVar,
    saveMean,
    saveInvstd,
    training,
    momentum,
    eps,
    privateRunningStats,
    count,
  };
};

struct BackwardArgument {
  enum : size_t {
    gradOutput,
    input,
    batch,
    channels,
    spatial,
    weight,
    runningMean,
    runningVar,
    saveMean,
    saveInvstd,
    gradInput,
    gradWeight,
    gradBias,
    training,
    eps,
    count,
  };
};

// The phases of a SyncBatchNorm step (kernel/split_phases.h).
struct ShardStatisticsArgument {
  enum : size_t {
    input,
    batch,
    channels,
    spatial,
    mean,
    m2,
    count,
  };
};

struct NormalizeWithArgument {
  enum : size_t {
    input,
    output,
    batch,
    channels,
    spatial,
    mean,
    invstd,
    weight,
    bias,
    count,
  };
};

struct ShardGradientSumsArgument {
  enum : size_t {
    gradOutput,
    input,
    batch,
    channels,
    spatial,
    mean,
    sumDy,
    dotp,
    count,
  };
};

struct GradInputWithArgument {
  enum : size_t {
    gradOutput,
    input,
    gradInput,
    batch,
    channels,
    spatial,
    mean,
    invstd,
    weight,
    sumDy,
    dotp,
    total,
    count,
  };
};

struct NormalizeByBlocksArgument {
  enum : size_t {
    input,
    output,
    batch,
    channels,
    spatial,
    weight,
    bias,
    eps,
    counts,
    mean,
    m2,
    invstd,
    channelBytes,
    control,
    exchange,
    rank,
    size,
    slotLength,
    progressWord,
    timeoutMs,
    count,
  };
};

struct GradInputByBlocksArgument {
  enum : size_t {
    gradOutput,
    input,
    gradInput,
    batch,
    channels,
    spatial,
    mean,
    invstd,
    weight,
    sumDy,
    dotp,
    total,
    channelBytes,
    control,
    exchange,
    rank,
    size,
    slotLength,
    progressWord,
    timeoutMs,
    count,
  };
};

}  // namespace batchnorm::binding
