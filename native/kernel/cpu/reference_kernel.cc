// The portable scalar oracle: the simplest loops that implement the kernel contract, one channel at a
// time on one thread, in double. Every vectorized path is tested against it; it is not used for speed.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <cstdint>

#include "kernel/dispatch.h"
#include "vec/always_inline.h"
#include "vec/float_precision.h"

namespace batchnorm::cpu::reference {
namespace {

// Start of channel `channel`'s row in batch item `item` of a contiguous (N, C, S) tensor.
inline int64_t rowOffset(const Geometry& geometry, int64_t item, int64_t channel) {
  return (item * geometry.channels + channel) * geometry.spatial;
}

#include "kernel/channel_coefficients.h"
#include "kernel/cpu/compensated_sum.h"

template <typename T>
void trainingForward(const Geometry& geometry, const T* input, T* output, const ForwardChannels<T>& in) {
  const double count = static_cast<double>(geometry.perChannel());
  for (int64_t c = 0; c < geometry.channels; ++c) {
    CompensatedSum sum;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const T* row = input + rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) sum.add(static_cast<double>(row[s]));
    }
    double mean = 0, meanLow = 0;
    meanOf(sum, count, mean, meanLow);
    double squares = 0;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const T* row = input + rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double centered = (static_cast<double>(row[s]) - mean) - meanLow;
        squares += centered * centered;
      }
    }
    const ChannelAffine affine = finishStatistics(in, c, mean, meanLow, squares);
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const int64_t offset = rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double x = static_cast<double>(input[offset + s]);
        output[offset + s] = static_cast<T>((x - affine.center) * affine.scale + affine.shift);
      }
    }
  }
}

template <typename T>
void evalForward(const Geometry& geometry, const T* input, T* output, const EvalChannels<T>& channels) {
  for (int64_t b = 0; b < geometry.batch; ++b) {
    for (int64_t c = 0; c < geometry.channels; ++c) {
      const int64_t offset = rowOffset(geometry, b, c);
      const ChannelAffine affine = evalAffine(channels, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double x = static_cast<double>(input[offset + s]);
        output[offset + s] = static_cast<T>((x - affine.center) * affine.scale + affine.shift);
      }
    }
  }
}

template <typename T>
void backward(const Geometry& geometry, const T* input, const T* gradOutput, T* gradInput, const BackwardChannels<T>& in) {
  for (int64_t c = 0; c < geometry.channels; ++c) {
    double sumDy = 0, dotp = 0;
    if (in.needSums) {
      for (int64_t b = 0; b < geometry.batch; ++b) {
        const int64_t offset = rowOffset(geometry, b, c);
        for (int64_t s = 0; s < geometry.spatial; ++s) {
          const double dy = static_cast<double>(gradOutput[offset + s]);
          sumDy += dy;
          dotp += (static_cast<double>(input[offset + s]) - in.center[c]) * dy;
        }
      }
    }
    const GradientAffine g = finishGradients(in, c, sumDy, dotp);
    if (gradInput == nullptr) continue;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const int64_t offset = rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double dy = static_cast<double>(gradOutput[offset + s]);
        double dx;
        if (in.readsInput) {
          const double x = static_cast<double>(input[offset + s]);
          dx = (dy - g.gradMean - (x - g.center) * g.projection) * g.scale;
        } else {
          dx = dy * g.scale;
        }
        gradInput[offset + s] = static_cast<T>(dx);
      }
    }
  }
}

template <typename T>
void fill(KernelTable<T>& table) {
  table.describe = [](const Geometry&, Phase, int, WalkPlan& plan) {
    plan = WalkPlan{};  // serial: one thread, one range
    plan.traversal = "reference";
    plan.arithmetic = "double";
  };
  table.trainingForward = &trainingForward<T>;
  table.evalForward = &evalForward<T>;
  table.backward = &backward<T>;
  // No split passes: split_phases.cc never runs the oracle's table.
  table.splitStatistics = nullptr;
  table.splitAffine = nullptr;
  table.splitGradientSums = nullptr;
  table.splitGradInput = nullptr;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill(floatTable);
  fill(doubleTable);
}

}  // namespace batchnorm::cpu::reference
