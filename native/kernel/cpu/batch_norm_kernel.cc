// The batch-norm kernels, written once over the vector types of native/vec and compiled once per ISA
// by the one-line shims beside this file (kernel_default.cc, kernel_avx2.cc, kernel_avx512.cc), each with
// its own flags. Everything here sits in an anonymous namespace inside a per-ISA namespace, so no symbol
// compiled with AVX instructions can be shared with another translation unit; scratch memory is plain
// new[]/delete[] for the same reason (no std templates instantiated here).
//
// Two traversals of a contiguous (N, C, S) tensor:
// - planar (S large): one channel at a time, its N rows of S contiguous values, accumulators in registers;
// - interleaved (S small, down to the (N, C) of BatchNorm1d): a block of channels at a time, each row's
//   contiguous run of (channels x S) values vectorized across channels, accumulators in a scratch row.
// Either way a unit of work (a channel, a block) computes its statistics, asks the operator for its
// coefficients and normalizes while its data is still in cache, and every reduction runs in a fixed
// order inside one unit, so results do not depend on the thread count.
#ifndef BATCHNORM_CPU_NAMESPACE
#error "compile through kernel_default.cc, kernel_avx2.cc or kernel_avx512.cc"
#endif

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernel/dispatch.h"
#include "kernel/thread_pool.h"
#include "vec/vec.h"

namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE {
namespace {

using vec::Doubles;
using vec::Floats;

// Work units smaller than this many elements stay on one thread.
constexpr int64_t kMinElementsPerTask = 1 << 15;
// Interleaved blocks aim at this many bytes of input, so the three passes over a block hit the L2 cache.
constexpr int64_t kBlockBytes = 1 << 18;
// ... and at most this many positions (channels x S) per row, bounding the scratch rows.
constexpr int64_t kMaxBlockPositions = 1024;

inline int clampInt(int64_t value, int low, int high) {
  return static_cast<int>(value < low ? low : value > high ? high : value);
}
inline int64_t maxInt64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t minInt64(int64_t a, int64_t b) { return a < b ? a : b; }

// Chunk<T>: `lanes` consecutive elements of T held as double parts, so both dtypes share the arithmetic.
template <typename T>
struct Chunk;

template <>
struct Chunk<float> {
  static constexpr int parts = 2;
  static constexpr int lanes = Floats::lanes;
  Doubles part[parts];

  static Chunk load(const float* p) {
    Chunk c;
    widen(Floats::load(p), c.part[0], c.part[1]);
    return c;
  }
  static Chunk loadFirst(const float* p, int count) {
    Chunk c;
    widen(Floats::loadFirst(p, count), c.part[0], c.part[1]);
    return c;
  }
  void store(float* p) const { narrow(part[0], part[1]).store(p); }
  void storeFirst(float* p, int count) const { narrow(part[0], part[1]).storeFirst(p, count); }
};

template <>
struct Chunk<double> {
  static constexpr int parts = 1;
  static constexpr int lanes = Doubles::lanes;
  Doubles part[parts];

  static Chunk load(const double* p) {
    Chunk c;
    c.part[0] = Doubles::load(p);
    return c;
  }
  static Chunk loadFirst(const double* p, int count) {
    Chunk c;
    c.part[0] = Doubles::loadFirst(p, count);
    return c;
  }
  void store(double* p) const { part[0].store(p); }
  void storeFirst(double* p, int count) const { part[0].storeFirst(p, count); }
};

// Zeroes the lanes of part `p` that lie at or beyond `count` valid elements of the chunk.
inline Doubles keepValid(Doubles v, int p, int count) {
  return keepFirst(v, clampInt(count - p * Doubles::lanes, 0, Doubles::lanes));
}

// Visits the chunks of a row of `length` elements: full chunks two at a time (slots 0 and 1 feed
// independent accumulator chains), then a single one, then a zero-padded partial one.
template <typename T, typename Visit>
inline void forChunks(const T* row, int64_t length, Visit&& visit) {
  constexpr int lanes = Chunk<T>::lanes;
  int64_t i = 0;
  for (; i + 2 * lanes <= length; i += 2 * lanes) {
    visit(Chunk<T>::load(row + i), 0, lanes);
    visit(Chunk<T>::load(row + i + lanes), 1, lanes);
  }
  for (; i + lanes <= length; i += lanes) visit(Chunk<T>::load(row + i), 0, lanes);
  if (i < length) {
    const int count = static_cast<int>(length - i);
    visit(Chunk<T>::loadFirst(row + i, count), 1, count);
  }
}

// out[i] = f(in[i]) over a row, for elementwise passes (out may alias in).
template <typename T, typename Map>
inline void mapRow(const T* in, T* out, int64_t length, Map&& map) {
  constexpr int lanes = Chunk<T>::lanes;
  int64_t i = 0;
  for (; i + lanes <= length; i += lanes) {
    const Chunk<T> x = Chunk<T>::load(in + i);
    Chunk<T> y;
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p]);
    y.store(out + i);
  }
  if (i < length) {
    const int count = static_cast<int>(length - i);
    const Chunk<T> x = Chunk<T>::loadFirst(in + i, count);
    Chunk<T> y;
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p]);
    y.storeFirst(out + i, count);
  }
}

// out[i] = f(a[i], b[i]) over a row.
template <typename T, typename Map>
inline void mapRow2(const T* a, const T* b, T* out, int64_t length, Map&& map) {
  constexpr int lanes = Chunk<T>::lanes;
  int64_t i = 0;
  for (; i + lanes <= length; i += lanes) {
    const Chunk<T> x = Chunk<T>::load(a + i);
    Chunk<T> y = Chunk<T>::load(b + i);
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p], y.part[p]);
    y.store(out + i);
  }
  if (i < length) {
    const int count = static_cast<int>(length - i);
    const Chunk<T> x = Chunk<T>::loadFirst(a + i, count);
    Chunk<T> y = Chunk<T>::loadFirst(b + i, count);
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p], y.part[p]);
    y.storeFirst(out + i, count);
  }
}

// A scalar sum as high + low (Knuth's TwoSum on every addition).
struct ScalarTwoSum {
  double high = 0;
  double low = 0;
  void add(double value) {
    const double sum = high + value;
    const double valuePart = sum - high;
    low += (high - (sum - valuePart)) + (value - valuePart);
    high = sum;
  }
};

// The vector form: lane-wise TwoSum. float64 input needs it so that x - mean keeps its digits when
// |mean| >> std; float32 input summed in double is already exact enough, so it skips the compensation.
template <typename T>
struct VectorSum {
  static constexpr bool compensated = std::is_same<T, double>::value;
  Doubles high = Doubles::zero();
  Doubles low = Doubles::zero();

  void add(Doubles value) {
    if (compensated) {
      const Doubles sum = high + value;
      const Doubles valuePart = sum - high;
      low = low + ((high - (sum - valuePart)) + (value - valuePart));
      high = sum;
    } else {
      high = high + value;
    }
  }
  // Lane by lane into a scalar sum, in lane order.
  void addTo(ScalarTwoSum& total) const {
    double highs[Doubles::lanes], lows[Doubles::lanes];
    high.store(highs);
    low.store(lows);
    for (int i = 0; i < Doubles::lanes; ++i) total.add(highs[i]);
    for (int i = 0; i < Doubles::lanes; ++i) total.low += lows[i];
  }
};

// mean = (high + low) / count as mean + meanLow (the fma gives the division's exact remainder). An Inf
// or NaN total makes the low part meaningless: the mean is then Inf or NaN, as in PyTorch.
inline void meanOf(const ScalarTwoSum& sum, double count, double& mean, double& meanLow) {
  if (!std::isfinite(sum.high)) {
    mean = sum.high / count;
    meanLow = 0;
    return;
  }
  const double total = sum.high + sum.low;
  const double totalLow = sum.low - (total - sum.high);
  mean = total / count;
  meanLow = (std::fma(-mean, count, total) + totalLow) / count;
}

// Scratch rows of doubles for one interleaved block, padded to whole chunks.
class Scratch {
 public:
  Scratch(int rows, int64_t length) : length_(length), data_(new double[static_cast<size_t>(rows * length)]) {}
  ~Scratch() { delete[] data_; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  double* row(int index) const { return data_ + index * length_; }
  int64_t length() const { return length_; }

 private:
  int64_t length_;
  double* data_;
};

template <typename T>
int64_t paddedLength(int64_t positions) {
  const int64_t lanes = Chunk<T>::lanes;
  return (positions + lanes - 1) / lanes * lanes;
}

template <typename T>
bool useInterleaved(const Geometry& g) {
  return g.spatial < 4 * Chunk<T>::lanes;
}

// Channels per interleaved block: enough input bytes to amortize, few enough to stay in L2, whole
// vectors of positions where the shape allows.
template <typename T>
int64_t blockChannels(const Geometry& g) {
  const int64_t bytesPerChannel = maxInt64(1, g.batch * g.spatial * static_cast<int64_t>(sizeof(T)));
  int64_t channels = kBlockBytes / bytesPerChannel;
  // At least four chunks per row segment, so rows are read in runs the prefetcher follows.
  channels = maxInt64(channels, (4 * Chunk<T>::lanes + g.spatial - 1) / g.spatial);
  channels = minInt64(channels, maxInt64(1, kMaxBlockPositions / g.spatial));
  return maxInt64(1, minInt64(channels, g.channels));
}

template <typename F>
void parallelOver(int64_t count, int64_t elementsPerItem, F& body) {
  const int64_t grain = maxInt64(1, kMinElementsPerTask / maxInt64(1, elementsPerItem));
  parallelFor(
      count, grain, [](void* context, int64_t begin, int64_t end) { (*static_cast<F*>(context))(begin, end); }, &body);
}

inline const double* broadcastRow(double* row, int64_t from, int64_t count, double value) {
  for (int64_t i = 0; i < count; ++i) row[from + i] = value;
  return row;
}

// ---------------------------------------------------------------------------------------------------
// Shared pieces of the interleaved traversal

template <typename T>
inline Chunk<T> loadChunk(const T* p, int valid) {
  return valid == Chunk<T>::lanes ? Chunk<T>::load(p) : Chunk<T>::loadFirst(p, valid);
}
template <typename T>
inline void storeChunk(const Chunk<T>& chunk, T* p, int valid) {
  if (valid == Chunk<T>::lanes) {
    chunk.store(p);
  } else {
    chunk.storeFirst(p, valid);
  }
}

// A block of channels [c0, c1) of an interleaved traversal: rows of `positions` contiguous values.
struct Block {
  int64_t c0 = 0, c1 = 0, positions = 0, first = 0, stride = 0;
  Block(const Geometry& g, int64_t from, int64_t to)
      : c0(from), c1(to), positions((to - from) * g.spatial), first(from * g.spatial), stride(g.channels * g.spatial) {}
  int64_t rowOffset(int64_t b) const { return b * stride + first; }
};

// ---------------------------------------------------------------------------------------------------
// Channel statistics
//
// float32 input: one pass of shifted sums in double, d = x - K with K the channel's first value:
// varSum = sum(d^2) - sum(d)^2 / n loses at most n * 2^-53 relative (K is a sample, so
// n (mean - K)^2 <= n^2 var), far below float32 resolution. float64 input: two passes, a compensated
// sum and then squares about the double-double mean, so x - mean keeps its digits when |mean| >> std.
// A channel whose shifted sums are not finite (Inf/NaN data) is redone exactly, as the oracle does it,
// so special values propagate as in PyTorch.

struct ChannelStats {
  double mean = 0, meanLow = 0, varSum = 0;
};

template <typename T>
constexpr bool kShiftedStats = std::is_same<T, float>::value;

template <typename T>
ChannelStats exactChannelStats(const Geometry& g, const T* input, int64_t c) {
  const int64_t stride = g.channels * g.spatial;
  ScalarTwoSum sum;
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t s = 0; s < g.spatial; ++s) sum.add(static_cast<double>(input[b * stride + c * g.spatial + s]));
  ChannelStats stats;
  meanOf(sum, static_cast<double>(g.perChannel()), stats.mean, stats.meanLow);
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t s = 0; s < g.spatial; ++s) {
      const double d = (static_cast<double>(input[b * stride + c * g.spatial + s]) - stats.mean) - stats.meanLow;
      stats.varSum += d * d;
    }
  }
  return stats;
}

// Statistics from shifted sums, or exactly when they are not finite.
template <typename T>
ChannelStats fromShiftedSums(const Geometry& g, const T* input, int64_t c, double pivot, double sum, double squares) {
  if (!std::isfinite(sum) || !std::isfinite(squares)) return exactChannelStats(g, input, c);
  const double count = static_cast<double>(g.perChannel());
  const double offset = sum / count;
  ChannelStats stats;
  stats.mean = pivot + offset;
  const double pivotPart = stats.mean - offset;
  stats.meanLow = (pivot - pivotPart) + (offset - (stats.mean - pivotPart));
  const double varSum = squares - sum * offset;
  stats.varSum = varSum > 0 ? varSum : 0;
  return stats;
}

template <typename T>
ChannelStats planarStats(const Geometry& g, const T* input, int64_t c) {
  constexpr int parts = Chunk<T>::parts;
  const int64_t stride = g.channels * g.spatial;
  if (kShiftedStats<T>) {
    const double pivot = static_cast<double>(input[c * g.spatial]);
    const Doubles pivotV = Doubles::broadcast(pivot);
    Doubles sums[2 * parts], squares[2 * parts];
    for (int i = 0; i < 2 * parts; ++i) sums[i] = squares[i] = Doubles::zero();
    for (int64_t b = 0; b < g.batch; ++b) {
      forChunks(input + b * stride + c * g.spatial, g.spatial, [&](const Chunk<T>& x, int slot, int valid) {
        for (int p = 0; p < parts; ++p) {
          const Doubles d = keepValid(x.part[p] - pivotV, p, valid);
          sums[slot * parts + p] = sums[slot * parts + p] + d;
          squares[slot * parts + p] = fmadd(d, d, squares[slot * parts + p]);
        }
      });
    }
    for (int i = 1; i < 2 * parts; ++i) {
      sums[0] = sums[0] + sums[i];
      squares[0] = squares[0] + squares[i];
    }
    return fromShiftedSums(g, input, c, pivot, sums[0].sum(), squares[0].sum());
  }
  VectorSum<T> sums[2 * parts];
  for (int64_t b = 0; b < g.batch; ++b) {
    forChunks(input + b * stride + c * g.spatial, g.spatial, [&](const Chunk<T>& x, int slot, int) {
      for (int p = 0; p < parts; ++p) sums[slot * parts + p].add(x.part[p]);
    });
  }
  ScalarTwoSum total;
  for (const VectorSum<T>& sum : sums) sum.addTo(total);
  ChannelStats stats;
  meanOf(total, static_cast<double>(g.perChannel()), stats.mean, stats.meanLow);
  const Doubles meanHigh = Doubles::broadcast(stats.mean), meanLow = Doubles::broadcast(stats.meanLow);
  Doubles squares[2 * parts];
  for (Doubles& square : squares) square = Doubles::zero();
  for (int64_t b = 0; b < g.batch; ++b) {
    forChunks(input + b * stride + c * g.spatial, g.spatial, [&](const Chunk<T>& x, int slot, int valid) {
      for (int p = 0; p < parts; ++p) {
        const Doubles d = keepValid((x.part[p] - meanHigh) - meanLow, p, valid);
        squares[slot * parts + p] = fmadd(d, d, squares[slot * parts + p]);
      }
    });
  }
  for (int i = 1; i < 2 * parts; ++i) squares[0] = squares[0] + squares[i];
  stats.varSum = squares[0].sum();
  return stats;
}

// Per-position accumulation over the rows of a block. Rows are the outer loop, so memory is read in
// long contiguous runs; two rows share each load and store of the scratch accumulators.
// `step.add(xs, rows, at)` gets the chunks at position `at` of `rows` (1 or 2) consecutive rows.
template <typename T, typename Step>
void accumulateBlock(const Geometry& g, const T* input, const Block& block, Step&& step) {
  constexpr int lanes = Chunk<T>::lanes;
  for (int64_t b = 0; b < g.batch; b += 2) {
    const int rows = g.batch - b >= 2 ? 2 : 1;
    const T* first = input + block.rowOffset(b);
    const T* second = rows == 2 ? input + block.rowOffset(b + 1) : first;
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const Chunk<T> xs[2] = {loadChunk(first + at, valid), loadChunk(second + at, valid)};
      step.add(xs, rows, at);
    }
  }
}

// Loads/stores of one chunk's worth of scratch doubles at a position.
template <typename T>
struct ScratchChunk {
  Doubles v[Chunk<T>::parts];
  static ScratchChunk load(const double* row, int64_t at) {
    ScratchChunk r;
    for (int p = 0; p < Chunk<T>::parts; ++p) r.v[p] = Doubles::load(row + at + p * Doubles::lanes);
    return r;
  }
  void store(double* row, int64_t at) const {
    for (int p = 0; p < Chunk<T>::parts; ++p) v[p].store(row + at + p * Doubles::lanes);
  }
};

// Statistics of every channel of an interleaved block; scratch needs 4 rows of the padded positions.
template <typename T>
void blockStats(const Geometry& g, const T* input, const Block& block, const Scratch& scratch, ChannelStats* stats) {
  constexpr int parts = Chunk<T>::parts;
  double* rowA = scratch.row(0);
  double* rowB = scratch.row(1);
  double* rowC = scratch.row(2);
  double* rowD = scratch.row(3);
  const int64_t spatial = g.spatial;
  if (kShiftedStats<T>) {
    // rowA: pivot per position; rowB, rowC: shifted sums and squares.
    for (int64_t c = block.c0; c < block.c1; ++c)
      broadcastRow(rowA, (c - block.c0) * spatial, spatial, static_cast<double>(input[c * spatial]));
    struct {
      const double* pivots;
      double *sums, *squares;
      void add(const Chunk<T>* xs, int rows, int64_t at) {
        const auto pivot = ScratchChunk<T>::load(pivots, at);
        auto sum = ScratchChunk<T>::load(sums, at), square = ScratchChunk<T>::load(squares, at);
        for (int r = 0; r < rows; ++r) {
          for (int p = 0; p < parts; ++p) {
            const Doubles d = xs[r].part[p] - pivot.v[p];
            sum.v[p] = sum.v[p] + d;
            square.v[p] = fmadd(d, d, square.v[p]);
          }
        }
        sum.store(sums, at);
        square.store(squares, at);
      }
    } step{rowA, rowB, rowC};
    for (int64_t i = 0; i < scratch.length(); ++i) rowB[i] = rowC[i] = 0;
    accumulateBlock(g, input, block, step);
    for (int64_t c = block.c0; c < block.c1; ++c) {
      const int64_t from = (c - block.c0) * spatial;
      double sum = 0, squares = 0;
      for (int64_t s = 0; s < spatial; ++s) {
        sum += rowB[from + s];
        squares += rowC[from + s];
      }
      stats[c - block.c0] = fromShiftedSums(g, input, c, rowA[from], sum, squares);
    }
    return;
  }
  // float64: compensated sums (rowA high, rowB low), then squares about the mean (rowC, rowD its parts).
  struct {
    double *highs, *lows;
    void add(const Chunk<T>* xs, int rows, int64_t at) {
      for (int p = 0; p < parts; ++p) {
        const int64_t offset = at + p * Doubles::lanes;
        VectorSum<T> sum{Doubles::load(highs + offset), Doubles::load(lows + offset)};
        for (int r = 0; r < rows; ++r) sum.add(xs[r].part[p]);
        sum.high.store(highs + offset);
        sum.low.store(lows + offset);
      }
    }
  } sumStep{rowA, rowB};
  for (int64_t i = 0; i < scratch.length(); ++i) rowA[i] = rowB[i] = 0;
  accumulateBlock(g, input, block, sumStep);
  for (int64_t c = block.c0; c < block.c1; ++c) {
    const int64_t from = (c - block.c0) * spatial;
    ScalarTwoSum total;
    for (int64_t s = 0; s < spatial; ++s) total.add(rowA[from + s]);
    for (int64_t s = 0; s < spatial; ++s) total.low += rowB[from + s];
    ChannelStats& channel = stats[c - block.c0];
    meanOf(total, static_cast<double>(g.perChannel()), channel.mean, channel.meanLow);
    broadcastRow(rowC, from, spatial, channel.mean);
    broadcastRow(rowD, from, spatial, channel.meanLow);
  }
  struct {
    const double *meanHighs, *meanLows;
    double* squares;
    void add(const Chunk<T>* xs, int rows, int64_t at) {
      const auto meanHigh = ScratchChunk<T>::load(meanHighs, at), meanLow = ScratchChunk<T>::load(meanLows, at);
      auto square = ScratchChunk<T>::load(squares, at);
      for (int r = 0; r < rows; ++r) {
        for (int p = 0; p < parts; ++p) {
          const Doubles d = (xs[r].part[p] - meanHigh.v[p]) - meanLow.v[p];
          square.v[p] = fmadd(d, d, square.v[p]);
        }
      }
      square.store(squares, at);
    }
  } squareStep{rowC, rowD, rowA};
  for (int64_t i = 0; i < scratch.length(); ++i) rowA[i] = 0;
  accumulateBlock(g, input, block, squareStep);
  for (int64_t c = block.c0; c < block.c1; ++c) {
    const int64_t from = (c - block.c0) * spatial;
    double varSum = 0;
    for (int64_t s = 0; s < spatial; ++s) varSum += rowA[from + s];
    stats[c - block.c0].varSum = varSum;
  }
}

// y = (x - center) * scale + shift over a block, coefficients per position in three scratch rows.
template <typename T>
void normalizeBlock(const Geometry& g, const T* input, T* output, const Block& block, const double* centers,
                    const double* scales, const double* shifts) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int lanes = Chunk<T>::lanes;
  for (int64_t b = 0; b < g.batch; b += 2) {
    const int rows = g.batch - b >= 2 ? 2 : 1;
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const auto center = ScratchChunk<T>::load(centers, at);
      const auto scale = ScratchChunk<T>::load(scales, at);
      const auto shift = ScratchChunk<T>::load(shifts, at);
      for (int r = 0; r < rows; ++r) {
        const int64_t offset = block.rowOffset(b + r) + at;
        Chunk<T> x = loadChunk(input + offset, valid);
        for (int p = 0; p < parts; ++p) x.part[p] = fmadd(x.part[p] - center.v[p], scale.v[p], shift.v[p]);
        storeChunk(x, output + offset, valid);
      }
    }
  }
}

template <typename T>
int64_t paddedTiles(int64_t positions) {
  return paddedLength<T>(positions);
}

// ---------------------------------------------------------------------------------------------------
// Training forward

template <typename T>
void planarTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan, int64_t c) {
  const ChannelStats stats = planarStats(g, input, c);
  const ChannelAffine affine = plan.fromStats(plan.context, c, stats.mean, stats.meanLow, stats.varSum);
  const Doubles center = Doubles::broadcast(affine.center), scale = Doubles::broadcast(affine.scale),
                shift = Doubles::broadcast(affine.shift);
  const int64_t stride = g.channels * g.spatial;
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + c * g.spatial;
    mapRow(input + offset, output + offset, g.spatial, [&](Doubles x) { return fmadd(x - center, scale, shift); });
  }
}

template <typename T>
void interleavedTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan,
                                const Block& block, ChannelStats* stats) {
  Scratch scratch(4, paddedTiles<T>(block.positions));
  blockStats(g, input, block, scratch, stats);
  double* centers = scratch.row(0);
  double* scales = scratch.row(1);
  double* shifts = scratch.row(2);
  for (int64_t c = block.c0; c < block.c1; ++c) {
    const ChannelStats& s = stats[c - block.c0];
    const ChannelAffine affine = plan.fromStats(plan.context, c, s.mean, s.meanLow, s.varSum);
    const int64_t from = (c - block.c0) * g.spatial;
    broadcastRow(centers, from, g.spatial, affine.center);
    broadcastRow(scales, from, g.spatial, affine.scale);
    broadcastRow(shifts, from, g.spatial, affine.shift);
  }
  normalizeBlock(g, input, output, block, centers, scales, shifts);
}

template <typename T>
void trainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      ChannelStats* stats = new ChannelStats[static_cast<size_t>(perBlock)];
      for (int64_t index = begin; index < end; ++index) {
        const int64_t c0 = index * perBlock;
        interleavedTrainingForward(g, input, output, plan, Block(g, c0, minInt64(c0 + perBlock, g.channels)), stats);
      }
      delete[] stats;
    };
    parallelOver(blocks, g.perChannel() * perBlock, body);
  } else {
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarTrainingForward(g, input, output, plan, c);
    };
    parallelOver(g.channels, g.perChannel(), body);
  }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation forward: a per-channel affine map, as fast as a copy

template <typename T>
void affineForward(const Geometry& g, const T* input, T* output, const ChannelAffine* channels) {
  // Without a reduction, rows of a few chunks already vectorize well with broadcast coefficients;
  // only rows shorter than a chunk go across channels.
  if (g.spatial < Chunk<T>::lanes) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t index = begin; index < end; ++index) {
        const int64_t c0 = index * perBlock;
        const Block block(g, c0, minInt64(c0 + perBlock, g.channels));
        Scratch scratch(3, paddedTiles<T>(block.positions));
        for (int64_t c = block.c0; c < block.c1; ++c) {
          const int64_t from = (c - block.c0) * g.spatial;
          broadcastRow(scratch.row(0), from, g.spatial, channels[c].center);
          broadcastRow(scratch.row(1), from, g.spatial, channels[c].scale);
          broadcastRow(scratch.row(2), from, g.spatial, channels[c].shift);
        }
        normalizeBlock(g, input, output, block, scratch.row(0), scratch.row(1), scratch.row(2));
      }
    };
    parallelOver(blocks, g.perChannel() * perBlock, body);
    return;
  }
  // Planar: one (batch item, channel) row at a time.
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t rowIndex = begin; rowIndex < end; ++rowIndex) {
      const ChannelAffine& affine = channels[rowIndex % g.channels];
      const Doubles center = Doubles::broadcast(affine.center), scale = Doubles::broadcast(affine.scale),
                    shift = Doubles::broadcast(affine.shift);
      const int64_t offset = rowIndex * g.spatial;
      mapRow(input + offset, output + offset, g.spatial, [&](Doubles x) { return fmadd(x - center, scale, shift); });
    }
  };
  parallelOver(g.batch * g.channels, g.spatial, body);
}

// ---------------------------------------------------------------------------------------------------
// Backward

template <typename T>
void planarBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardPlan& plan,
                    int64_t c) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int lanes = Chunk<T>::lanes;
  const int64_t stride = g.channels * g.spatial;
  double sumDy = 0, dotp = 0;
  if (plan.needSums) {
    const Doubles center = Doubles::broadcast(plan.center[c]);
    Doubles gradSums[2 * parts], products[2 * parts];
    for (int i = 0; i < 2 * parts; ++i) gradSums[i] = products[i] = Doubles::zero();
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = b * stride + c * g.spatial;
      const T* x = input + offset;
      const T* dy = gradOutput + offset;
      int64_t i = 0;
      for (; i + 2 * lanes <= g.spatial; i += 2 * lanes) {
        for (int slot = 0; slot < 2; ++slot) {
          const Chunk<T> xs = Chunk<T>::load(x + i + slot * lanes), dys = Chunk<T>::load(dy + i + slot * lanes);
          for (int p = 0; p < parts; ++p) {
            gradSums[slot * parts + p] = gradSums[slot * parts + p] + dys.part[p];
            products[slot * parts + p] = fmadd(xs.part[p] - center, dys.part[p], products[slot * parts + p]);
          }
        }
      }
      for (; i < g.spatial; i += lanes) {
        const int valid = static_cast<int>(minInt64(lanes, g.spatial - i));
        const Chunk<T> xs = loadChunk(x + i, valid), dys = loadChunk(dy + i, valid);
        for (int p = 0; p < parts; ++p) {
          gradSums[p] = gradSums[p] + dys.part[p];
          products[p] = products[p] + keepValid((xs.part[p] - center) * dys.part[p], p, valid);
        }
      }
    }
    for (int i = 1; i < 2 * parts; ++i) {
      gradSums[0] = gradSums[0] + gradSums[i];
      products[0] = products[0] + products[i];
    }
    sumDy = gradSums[0].sum();
    dotp = products[0].sum();
  }
  const GradientAffine coef = plan.fromSums(plan.context, c, sumDy, dotp);
  if (gradInput == nullptr) return;
  const Doubles center = Doubles::broadcast(coef.center), gradMean = Doubles::broadcast(coef.gradMean),
                projection = Doubles::broadcast(coef.projection), scale = Doubles::broadcast(coef.scale);
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + c * g.spatial;
    if (coef.readsInput) {
      mapRow2(input + offset, gradOutput + offset, gradInput + offset, g.spatial, [&](Doubles x, Doubles dy) {
        return (dy - gradMean - (x - center) * projection) * scale;
      });
    } else {
      mapRow(gradOutput + offset, gradInput + offset, g.spatial, [&](Doubles dy) { return dy * scale; });
    }
  }
}

template <typename T>
void interleavedBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput,
                         const BackwardPlan& plan, const Block& block) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int lanes = Chunk<T>::lanes;
  Scratch scratch(4, paddedTiles<T>(block.positions));
  double* centers = scratch.row(0);
  double* gradSums = scratch.row(1);    // then gradMean
  double* products = scratch.row(2);    // then projection
  double* scales = scratch.row(3);
  for (int64_t c = block.c0; c < block.c1; ++c) broadcastRow(centers, (c - block.c0) * g.spatial, g.spatial, plan.center[c]);

  if (plan.needSums) {
    for (int64_t i = 0; i < scratch.length(); ++i) gradSums[i] = products[i] = 0;
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = block.rowOffset(b);
      for (int64_t at = 0; at < block.positions; at += lanes) {
        const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
        const Chunk<T> xs = loadChunk(input + offset + at, valid);
        const Chunk<T> dys = loadChunk(gradOutput + offset + at, valid);
        const auto center = ScratchChunk<T>::load(centers, at);
        auto sum = ScratchChunk<T>::load(gradSums, at), product = ScratchChunk<T>::load(products, at);
        for (int p = 0; p < parts; ++p) {
          sum.v[p] = sum.v[p] + dys.part[p];
          product.v[p] = fmadd(xs.part[p] - center.v[p], dys.part[p], product.v[p]);
        }
        sum.store(gradSums, at);
        product.store(products, at);
      }
    }
  }
  bool readsInput = false;
  for (int64_t c = block.c0; c < block.c1; ++c) {
    const int64_t from = (c - block.c0) * g.spatial;
    double sumDy = 0, dotp = 0;
    if (plan.needSums) {
      for (int64_t s = 0; s < g.spatial; ++s) {
        sumDy += gradSums[from + s];
        dotp += products[from + s];
      }
    }
    const GradientAffine coef = plan.fromSums(plan.context, c, sumDy, dotp);
    readsInput = coef.readsInput;
    broadcastRow(centers, from, g.spatial, coef.center);
    broadcastRow(gradSums, from, g.spatial, coef.gradMean);
    broadcastRow(products, from, g.spatial, coef.projection);
    broadcastRow(scales, from, g.spatial, coef.scale);
  }
  if (gradInput == nullptr) return;
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = block.rowOffset(b);
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const auto scale = ScratchChunk<T>::load(scales, at);
      Chunk<T> dys = loadChunk(gradOutput + offset + at, valid);
      if (readsInput) {
        const auto center = ScratchChunk<T>::load(centers, at);
        const auto gradMean = ScratchChunk<T>::load(gradSums, at);
        const auto projection = ScratchChunk<T>::load(products, at);
        const Chunk<T> xs = loadChunk(input + offset + at, valid);
        for (int p = 0; p < parts; ++p) {
          dys.part[p] = (dys.part[p] - gradMean.v[p] - (xs.part[p] - center.v[p]) * projection.v[p]) * scale.v[p];
        }
      } else {
        for (int p = 0; p < parts; ++p) dys.part[p] = dys.part[p] * scale.v[p];
      }
      storeChunk(dys, gradInput + offset + at, valid);
    }
  }
}

template <typename T>
void backward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t index = begin; index < end; ++index) {
        const int64_t c0 = index * perBlock;
        interleavedBackward(g, input, gradOutput, gradInput, plan, Block(g, c0, minInt64(c0 + perBlock, g.channels)));
      }
    };
    parallelOver(blocks, g.perChannel() * perBlock, body);
  } else {
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarBackward(g, input, gradOutput, gradInput, plan, c);
    };
    parallelOver(g.channels, g.perChannel(), body);
  }
}

template <typename T>
void fill(KernelTable<T>& table) {
  table.trainingForward = &trainingForward<T>;
  table.affineForward = &affineForward<T>;
  table.backward = &backward<T>;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill(floatTable);
  fill(doubleTable);
}

}  // namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE
