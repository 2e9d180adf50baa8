// The positions of the arguments of forward() and backward() (binding.d.ts), by name. lib/native-arguments.ts
// holds the same two lists; test/native-boundary.test.ts reads this file and checks that they agree, so
// neither side can reorder an argument alone.
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

}  // namespace batchnorm::binding
