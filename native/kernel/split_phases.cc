#include "kernel/split_phases.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "kernel/cache_sizes.h"
#include "kernel/dispatch.h"
#include "vec/always_inline.h"
#include "vec/float_precision.h"
#include "kernel/thread_pool.h"

namespace batchnorm {
namespace {

#include "kernel/channel_coefficients.h"
#include "kernel/cpu/compensated_sum.h"

// A task's work: at least this many elements, so small tensors stay on the calling thread.
constexpr int64_t kElementsPerTask = 1 << 15;

// Runs body(c0, c1) over sub-ranges of `range` on the kernel threads.
template <typename Body>
void forChannelRanges(const Geometry& g, ChannelRange range, Body body) {
  struct Context {
    Body* body;
    int64_t first;
  } context{&body, range.begin};
  const int64_t perChannel = std::max<int64_t>(1, g.perChannel());
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / perChannel);
  parallelFor(
      range.size(), grain,
      [](void* raw, int64_t begin, int64_t end) {
        auto* ranges = static_cast<Context*>(raw);
        (*ranges->body)(ranges->first + begin, ranges->first + end);
      },
      &context);
}
template <typename Body>
void forChannelRanges(const Geometry& g, Body body) {
  forChannelRanges(g, ChannelRange::all(g), body);
}

// The reductions and elementwise passes below walk channels [c0, c1) in one of two orders, so that
// memory is read in order: channel by channel over its rows when rows are long (planar), and row by row
// across the channels when each row is a single value (spatial 1: a row of the channels-last layout).
// Sums go into local accumulators (four per row on the planar walk, one per channel across rows), never
// through the output pointers, which the compiler could not keep in registers.

// sum(f(x, dy)) of one planar row, four accumulators (the compiler keeps them in registers).
template <typename T, typename Term>
inline double rowSum(const T* x, const T* dy, int64_t length, Term term) {
  double a = 0, b = 0, c = 0, d = 0;
  int64_t s = 0;
  for (; s + 4 <= length; s += 4) {
    a += term(x, dy, s);
    b += term(x, dy, s + 1);
    c += term(x, dy, s + 2);
    d += term(x, dy, s + 3);
  }
  for (; s < length; ++s) a += term(x, dy, s);
  return (a + b) + (c + d);
}

// Per channel of [c0, c1): total[c - c0] = sum of term over the channel's values (each row's sum added
// into a compensated sum on the planar walk; one accumulator per channel, in row order, across rows).
template <typename T, typename Term>
void channelSums(const Geometry& g, const T* x, const T* dy, int64_t c0, int64_t c1, Term term, CompensatedSum* total) {
  if (g.spatial == 1) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t row = b * g.channels;
      for (int64_t c = c0; c < c1; ++c) total[c - c0].add(term(x, dy, row + c));
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = (b * g.channels + c) * g.spatial;
      total[c - c0].add(rowSum(x + offset, dy == nullptr ? nullptr : dy + offset, g.spatial, term));
    }
  }
}

// out[i] = value(c, i) over the elements of channels [c0, c1).
template <typename T, typename Value>
void channelMap(const Geometry& g, T* out, int64_t c0, int64_t c1, Value value) {
  if (g.spatial == 1) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t row = b * g.channels;
      for (int64_t c = c0; c < c1; ++c) out[row + c] = static_cast<T>(value(c - c0, row + c));
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = (b * g.channels + c) * g.spatial;
      for (int64_t s = 0; s < g.spatial; ++s) out[offset + s] = static_cast<T>(value(c - c0, offset + s));
    }
  }
}

}  // namespace

// shardStatistics of the channels in `range` (each channel's whole, as over all channels).
template <typename T>
void statisticsOf(const Geometry& g, ChannelRange range, const T* input, double* mean, double* m2) {
  const double count = static_cast<double>(g.perChannel());
  const KernelTable<T>& table = kernels<T>();
  if (count > 0 && table.splitStatistics != nullptr && table.splitStatistics(g, range, input, mean, m2)) return;
  forChannelRanges(g, range, [&](int64_t c0, int64_t c1) {
    const auto width = static_cast<size_t>(c1 - c0);
    std::vector<CompensatedSum> sums(width), squares(width);
    channelSums(g, input, static_cast<const T*>(nullptr), c0, c1,
                [](const T* x, const T*, int64_t i) { return static_cast<double>(x[i]); }, sums.data());
    std::vector<double> center(width), low(width);
    for (size_t k = 0; k < width; ++k) {
      if (count > 0) meanOf(sums[k], count, center[k], low[k]);
    }
    // The second pass centers on the double-double mean. Planar rows see one channel's center, so the
    // term takes it from the row's channel; across channels, from the element's.
    for (int64_t c = c0; c < c1; ++c) {
      const auto k = static_cast<size_t>(c - c0);
      mean[c] = center[k];
      if (g.spatial == 1) continue;
      const double m = center[k], l = low[k];
      for (int64_t b = 0; b < g.batch; ++b) {
        const int64_t offset = (b * g.channels + c) * g.spatial;
        squares[k].add(rowSum(input + offset, static_cast<const T*>(nullptr), g.spatial, [m, l](const T* x, const T*, int64_t s) {
          const double centered = (static_cast<double>(x[s]) - m) - l;
          return centered * centered;
        }));
      }
    }
    if (g.spatial == 1) {
      for (int64_t b = 0; b < g.batch; ++b) {
        const T* row = input + b * g.channels;
        for (int64_t c = c0; c < c1; ++c) {
          const auto k = static_cast<size_t>(c - c0);
          const double centered = (static_cast<double>(row[c]) - center[k]) - low[k];
          squares[k].add(centered * centered);
        }
      }
    }
    for (int64_t c = c0; c < c1; ++c) m2[c] = squares[static_cast<size_t>(c - c0)].high + squares[static_cast<size_t>(c - c0)].low;
  });
}

// normalizeWith over the channels in `range`: the kernels' normalization of evaluation, on both
// traversals (float arithmetic where the coefficients allow), which every dispatched table has; a part
// of the channels only on planar tensors (the steps by blocks run only on those).
template <typename T>
void normalizeOf(const Geometry& g, ChannelRange range, const T* input, T* output, const double* mean,
                 const double* invstd, const T* weight, const T* bias) {
  if (g.elements() == 0) return;
  std::unique_ptr<ChannelAffine[]> affine(new ChannelAffine[static_cast<size_t>(range.size())]);
  for (int64_t c = range.begin; c < range.end; ++c) {
    const double alpha = invstd[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1);
    affine[c - range.begin] = affineFor(mean[c], 0, alpha, bias != nullptr ? static_cast<double>(bias[c]) : 0);
  }
  if (!kernels<T>().splitAffine(g, range, input, output, affine.get())) {
    throw std::logic_error("normalizeOf: a part of the channels of an interleaved tensor");
  }
}

// sum(dy) and sum((x - center) dy) of one planar row in one read of both, four accumulators each.
template <typename T>
inline void rowGradientSums(const T* x, const T* dy, int64_t length, double center, double& gradSum, double& product) {
  double g[4] = {0, 0, 0, 0}, p[4] = {0, 0, 0, 0};
  int64_t s = 0;
  for (; s + 4 <= length; s += 4) {
    for (int k = 0; k < 4; ++k) {
      const double d = static_cast<double>(dy[s + k]);
      g[k] += d;
      p[k] += (static_cast<double>(x[s + k]) - center) * d;
    }
  }
  for (; s < length; ++s) {
    const double d = static_cast<double>(dy[s]);
    g[0] += d;
    p[0] += (static_cast<double>(x[s]) - center) * d;
  }
  gradSum = (g[0] + g[1]) + (g[2] + g[3]);
  product = (p[0] + p[1]) + (p[2] + p[3]);
}

// shardGradientSums of the channels in `range` (each channel's sums whole, as over all channels).
template <typename T>
void gradientSumsOf(const Geometry& g, ChannelRange range, const T* input, const T* gradOutput, const double* mean,
                    double* sumDy, double* dotp) {
  const KernelTable<T>& table = kernels<T>();
  if (g.elements() > 0 && table.splitGradientSums != nullptr &&
      table.splitGradientSums(g, range, input, gradOutput, mean, sumDy, dotp)) {
    return;
  }
  forChannelRanges(g, range, [&](int64_t c0, int64_t c1) {
    const auto width = static_cast<size_t>(c1 - c0);
    std::vector<CompensatedSum> gradSums(width), products(width);
    if (g.spatial == 1) {
      for (int64_t b = 0; b < g.batch; ++b) {
        const int64_t row = b * g.channels;
        for (int64_t c = c0; c < c1; ++c) {
          const auto k = static_cast<size_t>(c - c0);
          const double dy = static_cast<double>(gradOutput[row + c]);
          gradSums[k].add(dy);
          products[k].add((static_cast<double>(input[row + c]) - mean[c]) * dy);
        }
      }
    } else {
      for (int64_t c = c0; c < c1; ++c) {
        const auto k = static_cast<size_t>(c - c0);
        for (int64_t b = 0; b < g.batch; ++b) {
          const int64_t offset = (b * g.channels + c) * g.spatial;
          double gradSum = 0, product = 0;
          rowGradientSums(input + offset, gradOutput + offset, g.spatial, mean[c], gradSum, product);
          gradSums[k].add(gradSum);
          products[k].add(product);
        }
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      const auto k = static_cast<size_t>(c - c0);
      sumDy[c] = gradSums[k].high + gradSums[k].low;
      dotp[c] = products[k].high + products[k].low;
    }
  });
}

// gradInputWith over the channels in `range`.
template <typename T>
void gradInputOf(const Geometry& g, ChannelRange range, const T* input, const T* gradOutput, T* gradInput,
                 const double* mean, const double* invstd, const T* weight, const double* sumDy, const double* dotp,
                 double count) {
  if (g.elements() == 0) return;
  const KernelTable<T>& table = kernels<T>();
  if (table.splitGradInput != nullptr) {
    std::unique_ptr<GradientAffine[]> coefficients(new GradientAffine[static_cast<size_t>(range.size())]);
    for (int64_t c = range.begin; c < range.end; ++c) {
      GradientAffine& coef = coefficients[c - range.begin];
      coef.center = mean[c];
      coef.gradMean = sumDy[c] / count;
      coef.projection = dotp[c] * invstd[c] * invstd[c] / count;
      coef.scale = invstd[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1);
    }
    if (table.splitGradInput(g, range, input, gradOutput, gradInput, coefficients.get())) return;
  }
  forChannelRanges(g, range, [&](int64_t c0, int64_t c1) {
    const auto width = static_cast<size_t>(c1 - c0);
    std::vector<double> center(width), gradMean(width), projection(width), scale(width);
    for (int64_t c = c0; c < c1; ++c) {
      const auto k = static_cast<size_t>(c - c0);
      center[k] = mean[c];
      gradMean[k] = sumDy[c] / count;
      projection[k] = dotp[c] * invstd[c] * invstd[c] / count;
      scale[k] = invstd[c] * (weight != nullptr ? static_cast<double>(weight[c]) : 1);
    }
    channelMap(g, gradInput, c0, c1, [&](int64_t k, int64_t i) {
      const auto j = static_cast<size_t>(k);
      const double x = static_cast<double>(input[i]);
      const double dy = static_cast<double>(gradOutput[i]);
      return (dy - gradMean[j] - (x - center[j]) * projection[j]) * scale[j];
    });
  });
}

namespace {

// The rank-order merges of the exchanged partials, with the arithmetic of lib/process-group.ts's
// mergeStatistics and sumGradientParts (its additions in the same order, no contractions: the build has
// -ffp-contract=off), so that a step by blocks has the bits of the step in two passes.
void mergeStatisticsOf(ChannelRange block, const BlockExchange& exchange, const double* counts, double* mean,
                       double* m2) {
  for (int64_t c = block.begin; c < block.end; ++c) {
    double count = 0, mergedMean = 0, mergedM2 = 0;
    for (int r = 0; r < exchange.ranks(); ++r) {
      const double partCount = counts[r];
      if (partCount == 0) continue;
      const double partMean = exchange.first(r)[c], partM2 = exchange.second(r)[c];
      if (count == 0) {
        mergedMean = partMean;
        mergedM2 = partM2;
        count = partCount;
        continue;
      }
      const double total = count + partCount;
      const double weight = partCount / total;
      const double cross = (count * partCount) / total;
      const double delta = partMean - mergedMean;
      mergedMean += delta * weight;
      mergedM2 += partM2 + delta * delta * cross;
      count = total;
    }
    mean[c] = mergedMean;
    m2[c] = mergedM2;
  }
}

void sumGradientsOf(ChannelRange block, const BlockExchange& exchange, double* totalDy, double* totalDotp) {
  for (int64_t c = block.begin; c < block.end; ++c) {
    double dy = 0, product = 0;
    for (int r = 0; r < exchange.ranks(); ++r) {
      dy += exchange.first(r)[c];
      product += exchange.second(r)[c];
    }
    totalDy[c] = dy;
    totalDotp[c] = product;
  }
}

}  // namespace

template <typename T>
void shardStatistics(const Geometry& g, const T* input, double* mean, double* m2) {
  statisticsOf(g, ChannelRange::all(g), input, mean, m2);
}

template <typename T>
void normalizeWith(const Geometry& g, const T* input, T* output, const double* mean, const double* invstd,
                   const T* weight, const T* bias) {
  normalizeOf(g, ChannelRange::all(g), input, output, mean, invstd, weight, bias);
}

template <typename T>
void shardGradientSums(const Geometry& g, const T* input, const T* gradOutput, const double* mean, double* sumDy,
                       double* dotp) {
  gradientSumsOf(g, ChannelRange::all(g), input, gradOutput, mean, sumDy, dotp);
}

template <typename T>
void gradInputWith(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const double* mean,
                   const double* invstd, const T* weight, const double* sumDy, const double* dotp, double count) {
  gradInputOf(g, ChannelRange::all(g), input, gradOutput, gradInput, mean, invstd, weight, sumDy, dotp, count);
}

int64_t channelsPerBlock(const Geometry& g, int64_t channelBytes) {
  // A block's x (and dy) stay in the L2 between its two passes: half of it, as the rest holds what else
  // the passes touch (a (16,64,56,56) float shard: blocks of 2 channels in forward, 1 in backward; a
  // whole L2's worth measured slower, a quarter no faster: docs/PERFORMANCE.md "SyncBatchNorm").
  // 0 bytes: one block.
  const int64_t budget = cacheSizes().l2Bytes / 2;
  return std::clamp<int64_t>(budget / std::max<int64_t>(1, channelBytes), 1, std::max<int64_t>(1, g.channels));
}

namespace {

// The blocks of a step by blocks, in order: partials(block) writes this rank's two partials of the
// block's channels into first/second, which the exchange publishes; once every rank's are there,
// finish(block) merges them and runs the block's elementwise pass.
template <typename Partials, typename Finish>
bool runBlocks(const Geometry& g, int64_t blockChannels, BlockExchange& exchange, const double* first,
               const double* second, Partials partials, Finish finish) {
  // Each block waits for its own exchange before the next block's partials: computing those first, to
  // hide the wait, was slower (two blocks then compete for the L2; docs/PERFORMANCE.md, "SyncBatchNorm").
  for (int64_t c0 = 0; c0 < g.channels; c0 += blockChannels) {
    const ChannelRange block{c0, std::min(g.channels, c0 + blockChannels)};
    partials(block);
    exchange.publish(block, first, second);
    if (!exchange.waitForBlock()) return false;
    finish(block);
  }
  return true;
}

}  // namespace

template <typename T>
bool normalizeByBlocks(const Geometry& g, int64_t blockChannels, const T* input, T* output, const T* weight,
                       const T* bias, double eps, const double* counts, double* mean, double* m2, double* invstd,
                       BlockExchange& exchange) {
  std::vector<double> shardMean(static_cast<size_t>(g.channels)), shardM2(static_cast<size_t>(g.channels));
  double total = 0;
  for (int r = 0; r < exchange.ranks(); ++r) total += counts[r];
  return runBlocks(
      g, blockChannels, exchange, shardMean.data(), shardM2.data(),
      [&](ChannelRange block) { statisticsOf(g, block, input, shardMean.data(), shardM2.data()); },
      [&](ChannelRange block) {
        mergeStatisticsOf(block, exchange, counts, mean, m2);
        for (int64_t c = block.begin; c < block.end; ++c) {
          // lib/sync-batchnorm.ts invStd: 0 where the variance and eps are both 0, as the kernels.
          const double variance = m2[c] / total;
          invstd[c] = variance == 0 && eps == 0 ? 0 : 1 / std::sqrt(variance + eps);
        }
        normalizeOf(g, block, input, output, mean, invstd, weight, bias);
      });
}

template <typename T>
bool gradInputByBlocks(const Geometry& g, int64_t blockChannels, const T* input, const T* gradOutput, T* gradInput,
                       const double* mean, const double* invstd, const T* weight, double count, double* sumDy,
                       double* dotp, BlockExchange& exchange) {
  std::vector<double> totalDy(static_cast<size_t>(g.channels)), totalDotp(static_cast<size_t>(g.channels));
  return runBlocks(
      g, blockChannels, exchange, sumDy, dotp,
      [&](ChannelRange block) { gradientSumsOf(g, block, input, gradOutput, mean, sumDy, dotp); },
      [&](ChannelRange block) {
        sumGradientsOf(block, exchange, totalDy.data(), totalDotp.data());
        gradInputOf(g, block, input, gradOutput, gradInput, mean, invstd, weight, totalDy.data(), totalDotp.data(),
                    count);
      });
}

#define BATCHNORM_SPLIT_PHASES(T)                                                                                     \
  template void shardStatistics<T>(const Geometry&, const T*, double*, double*);                                     \
  template void normalizeWith<T>(const Geometry&, const T*, T*, const double*, const double*, const T*, const T*);   \
  template void shardGradientSums<T>(const Geometry&, const T*, const T*, const double*, double*, double*);          \
  template void gradInputWith<T>(const Geometry&, const T*, const T*, T*, const double*, const double*, const T*,    \
                                 const double*, const double*, double);                                             \
  template bool normalizeByBlocks<T>(const Geometry&, int64_t, const T*, T*, const T*, const T*, double,             \
                                     const double*, double*, double*, double*, BlockExchange&);                       \
  template bool gradInputByBlocks<T>(const Geometry&, int64_t, const T*, const T*, T*, const double*, const double*,  \
                                     const T*, double, double*, double*, BlockExchange&);
BATCHNORM_SPLIT_PHASES(float)
BATCHNORM_SPLIT_PHASES(double)
#undef BATCHNORM_SPLIT_PHASES

}  // namespace batchnorm
