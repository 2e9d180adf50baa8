#include "kernel/split_phases.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernel/thread_pool.h"

namespace batchnorm {
namespace {

#include "kernel/cpu/compensated_sum.h"

// A task's work: at least this many elements, so small tensors stay on the calling thread.
constexpr int64_t kElementsPerTask = 1 << 15;

// Runs body(c0, c1) over channel ranges on the kernel threads.
template <typename Body>
void forChannelRanges(const Geometry& g, Body body) {
  struct Context {
    Body* body;
  } context{&body};
  const int64_t perChannel = std::max<int64_t>(1, g.perChannel());
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / perChannel);
  parallelFor(
      g.channels, grain,
      [](void* raw, int64_t begin, int64_t end) { (*static_cast<Context*>(raw)->body)(begin, end); }, &context);
}

// Calls visit(c, value index) for every element of channels [c0, c1), channel by channel when rows are
// long (each channel's rows in turn) and row by row when they are single values (spatial 1: a row of
// the channels-last layout), so memory is read in order either way. Per channel, elements come in the
// same order both ways: batch item by batch item, then position.
template <typename Visit>
void forElements(const Geometry& g, int64_t c0, int64_t c1, Visit visit) {
  if (g.spatial == 1) {
    for (int64_t b = 0; b < g.batch; ++b) {
      for (int64_t c = c0; c < c1; ++c) visit(c, b * g.channels + c);
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t row = (b * g.channels + c) * g.spatial;
      for (int64_t s = 0; s < g.spatial; ++s) visit(c, row + s);
    }
  }
}

}  // namespace

template <typename T>
void shardStatistics(const Geometry& g, const T* input, double* mean, double* m2) {
  const double count = static_cast<double>(g.perChannel());
  forChannelRanges(g, [&](int64_t c0, int64_t c1) {
    std::vector<CompensatedSum> sums(static_cast<size_t>(c1 - c0));
    forElements(g, c0, c1, [&](int64_t c, int64_t i) { sums[static_cast<size_t>(c - c0)].add(static_cast<double>(input[i])); });
    std::vector<double> low(static_cast<size_t>(c1 - c0));
    for (int64_t c = c0; c < c1; ++c) {
      double meanLow = 0;
      if (count > 0) meanOf(sums[static_cast<size_t>(c - c0)], count, mean[c], meanLow);
      else mean[c] = 0;
      low[static_cast<size_t>(c - c0)] = meanLow;
      m2[c] = 0;
    }
    forElements(g, c0, c1, [&](int64_t c, int64_t i) {
      const double centered = (static_cast<double>(input[i]) - mean[c]) - low[static_cast<size_t>(c - c0)];
      m2[c] += centered * centered;
    });
  });
}

template <typename T>
void normalizeWith(const Geometry& g, const T* input, T* output, const double* mean, const double* invstd,
                   const T* weight, const T* bias) {
  forChannelRanges(g, [&](int64_t c0, int64_t c1) {
    std::vector<double> scale(static_cast<size_t>(c1 - c0)), shift(static_cast<size_t>(c1 - c0));
    for (int64_t c = c0; c < c1; ++c) {
      scale[static_cast<size_t>(c - c0)] = invstd[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1);
      shift[static_cast<size_t>(c - c0)] = bias != nullptr ? static_cast<double>(bias[c]) : 0;
    }
    forElements(g, c0, c1, [&](int64_t c, int64_t i) {
      const auto k = static_cast<size_t>(c - c0);
      output[i] = static_cast<T>((static_cast<double>(input[i]) - mean[c]) * scale[k] + shift[k]);
    });
  });
}

template <typename T>
void shardGradientSums(const Geometry& g, const T* input, const T* gradOutput, const double* mean, double* sumDy,
                       double* dotp) {
  forChannelRanges(g, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) sumDy[c] = dotp[c] = 0;
    forElements(g, c0, c1, [&](int64_t c, int64_t i) {
      const double dy = static_cast<double>(gradOutput[i]);
      sumDy[c] += dy;
      dotp[c] += (static_cast<double>(input[i]) - mean[c]) * dy;
    });
  });
}

template <typename T>
void gradInputWith(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const double* mean,
                   const double* invstd, const T* weight, const double* sumDy, const double* dotp, double count) {
  forChannelRanges(g, [&](int64_t c0, int64_t c1) {
    const auto width = static_cast<size_t>(c1 - c0);
    std::vector<double> gradMean(width), projection(width), scale(width);
    for (int64_t c = c0; c < c1; ++c) {
      const auto k = static_cast<size_t>(c - c0);
      gradMean[k] = sumDy[c] / count;
      projection[k] = dotp[c] * invstd[c] * invstd[c] / count;
      scale[k] = invstd[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1);
    }
    forElements(g, c0, c1, [&](int64_t c, int64_t i) {
      const auto k = static_cast<size_t>(c - c0);
      const double x = static_cast<double>(input[i]);
      const double dy = static_cast<double>(gradOutput[i]);
      gradInput[i] = static_cast<T>((dy - gradMean[k] - (x - mean[c]) * projection[k]) * scale[k]);
    });
  });
}

#define BATCHNORM_SPLIT_PHASES(T)                                                                                     \
  template void shardStatistics<T>(const Geometry&, const T*, double*, double*);                                     \
  template void normalizeWith<T>(const Geometry&, const T*, T*, const double*, const double*, const T*, const T*);   \
  template void shardGradientSums<T>(const Geometry&, const T*, const T*, const double*, double*, double*);          \
  template void gradInputWith<T>(const Geometry&, const T*, const T*, T*, const double*, const double*, const T*,    \
                                 const double*, const double*, double);
BATCHNORM_SPLIT_PHASES(float)
BATCHNORM_SPLIT_PHASES(double)
#undef BATCHNORM_SPLIT_PHASES

}  // namespace batchnorm
