// Portable scalar kernels: the oracle every vectorized path is tested against.
//
// Each loop visits one channel's (batch x spatial) plane in memory order and accumulates in double
// in a fixed order, so results do not depend on anything but the data.
#include <cmath>
#include <cstdint>

#include "kernel/dispatch.h"

namespace batchnorm::cpu::scalar {
namespace {

// Start of channel `channel`'s row in batch item `item` of a contiguous (N, C, S) tensor.
inline int64_t rowOffset(const Geometry& geometry, int64_t item, int64_t channel) {
  return (item * geometry.channels + channel) * geometry.spatial;
}

// Sum of a sequence as an unevaluated pair high + low, exact to within a few ulps of the result
// however the terms cancel (Knuth's TwoSum on each addition, errors accumulated separately).
struct CompensatedSum {
  double high = 0;
  double low = 0;

  void add(double value) {
    const double sum = high + value;
    const double valuePart = sum - high;
    low += (high - (sum - valuePart)) + (value - valuePart);
    high = sum;
  }
};

template <typename T>
void collectStats(const Geometry& geometry, const T* input, double* mean, double* meanLow, double* varSum) {
  const double count = static_cast<double>(geometry.perChannel());
  for (int64_t c = 0; c < geometry.channels; ++c) {
    CompensatedSum sum;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const T* row = input + rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) sum.add(static_cast<double>(row[s]));
    }
    // (high + low) / count as high' + low': the fma gives the exact remainder of the first division.
    // With an Inf or NaN in the channel the low part is meaningless: the mean is Inf or NaN as in PyTorch.
    const bool finite = std::isfinite(sum.high);
    const double totalHigh = finite ? sum.high + sum.low : sum.high;
    const double totalLow = finite ? sum.low - (totalHigh - sum.high) : 0;
    const double meanHigh = totalHigh / count;
    const double meanLowPart = finite ? (std::fma(-meanHigh, count, totalHigh) + totalLow) / count : 0;
    double squares = 0;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const T* row = input + rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double centered = (static_cast<double>(row[s]) - meanHigh) - meanLowPart;
        squares += centered * centered;
      }
    }
    mean[c] = meanHigh;
    meanLow[c] = meanLowPart;
    varSum[c] = squares;
  }
}

template <typename T>
void applyAffine(const Geometry& geometry, const T* input, T* output, const double* center,
                 const double* scale, const double* shift) {
  for (int64_t b = 0; b < geometry.batch; ++b) {
    for (int64_t c = 0; c < geometry.channels; ++c) {
      const int64_t offset = rowOffset(geometry, b, c);
      const double channelCenter = center[c], channelScale = scale[c], channelShift = shift[c];
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double x = static_cast<double>(input[offset + s]);
        output[offset + s] = static_cast<T>((x - channelCenter) * channelScale + channelShift);
      }
    }
  }
}

template <typename T>
void reduceGradients(const Geometry& geometry, const T* input, const T* gradOutput, const double* center,
                     double* sumDy, double* dotp) {
  for (int64_t c = 0; c < geometry.channels; ++c) {
    double gradSum = 0, product = 0;
    for (int64_t b = 0; b < geometry.batch; ++b) {
      const int64_t offset = rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double dy = static_cast<double>(gradOutput[offset + s]);
        gradSum += dy;
        product += (static_cast<double>(input[offset + s]) - center[c]) * dy;
      }
    }
    sumDy[c] = gradSum;
    dotp[c] = product;
  }
}

template <typename T>
void trainingGradInput(const Geometry& geometry, const T* input, const T* gradOutput, T* gradInput,
                       const double* center, const double* gradMean, const double* projection,
                       const double* scale) {
  for (int64_t b = 0; b < geometry.batch; ++b) {
    for (int64_t c = 0; c < geometry.channels; ++c) {
      const int64_t offset = rowOffset(geometry, b, c);
      for (int64_t s = 0; s < geometry.spatial; ++s) {
        const double x = static_cast<double>(input[offset + s]);
        const double dy = static_cast<double>(gradOutput[offset + s]);
        gradInput[offset + s] =
            static_cast<T>((dy - gradMean[c] - (x - center[c]) * projection[c]) * scale[c]);
      }
    }
  }
}

template <typename T>
void fill(KernelTable<T>& table) {
  table.collectStats = &collectStats<T>;
  table.applyAffine = &applyAffine<T>;
  table.reduceGradients = &reduceGradients<T>;
  table.trainingGradInput = &trainingGradInput<T>;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill(floatTable);
  fill(doubleTable);
}

}  // namespace batchnorm::cpu::scalar
