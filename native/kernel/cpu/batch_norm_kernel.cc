// The batch-norm kernels, written once over the vector types of native/vec and compiled once per ISA
// by the one-line shims beside this file (kernel_default.cc, kernel_avx2.cc, kernel_avx512.cc), each with
// its own flags. Everything here sits in an anonymous namespace inside a per-ISA namespace, so no symbol
// compiled with AVX instructions can be shared with another translation unit; scratch memory is plain
// new[]/delete[] for the same reason (no std templates instantiated here).
//
// Two traversals of a contiguous (N, C, S) tensor:
// - planar (S >= 64): one channel at a time, its N rows of S contiguous values, accumulators in registers;
// - interleaved (S < 64, down to the (N, C) of BatchNorm1d and channels-last): a block of channels at a
//   time, each row's contiguous run of (channels x S) values vectorized across channels, accumulators in
//   a scratch row (or, for rows of whole chunks, in registers, a column group of up to four chunks at a
//   time); large tensors whose rows follow each other are normalized in one flat walk with non-temporal
//   stores (forStreamedRows), and interleaved reads are prefetched a few rows ahead.
// float32 reductions run in double; float32 normalization runs in floats on the FMA paths (see "float32
// normalization in float arithmetic").
// Either way a unit of work (a channel, a block) computes its statistics, asks the operator for its
// coefficients and normalizes while its data is still in cache, and every reduction runs in a fixed
// order inside one unit, so results do not depend on the thread count.
#ifndef BATCHNORM_CPU_NAMESPACE
#error "compile through kernel_default.cc, kernel_avx2.cc or kernel_avx512.cc"
#endif

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
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
// Rows of an interleaved block that share each load and store of the per-position accumulators.
constexpr int kAccumulatedRows = 4;

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
    loadWidened(p, c.part[0], c.part[1]);
    return c;
  }
  static Chunk loadFirst(const float* p, int count) {
    Chunk c;
    widen(Floats::loadFirst(p, count), c.part[0], c.part[1]);
    return c;
  }
  void store(float* p) const { storeNarrowed(p, part[0], part[1]); }
  void storeFirst(float* p, int count) const { narrow(part[0], part[1]).storeFirst(p, count); }
  void stream(float* p) const { narrow(part[0], part[1]).stream(p); }
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
  void stream(double* p) const { part[0].stream(p); }
};

// Zeroes the lanes of part `p` that lie at or beyond `count` valid elements of the chunk.
inline Doubles keepValid(Doubles v, int p, int count) {
  return keepFirst(v, clampInt(count - p * Doubles::lanes, 0, Doubles::lanes));
}

constexpr int64_t kLineBytes = 64;
// How far ahead of a row's reduction its lines are requested.
constexpr int64_t kPrefetchBytes = 2048;
inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

// How many rows ahead the walks that interleave rows (a chunk of each of a few rows in turn) request
// their inputs: such runs are ones the hardware prefetchers follow poorly.
constexpr int64_t kStreamedRowsAhead = 8;

// Each row of a planar reduction is a fresh run for the hardware prefetchers: its first lines are
// requested up front, and the loop stays kPrefetchBytes ahead inside it.
template <typename T>
inline void prefetchRowStart(const T* row, int64_t length) {
  const int64_t end = minInt64(kPrefetchBytes / static_cast<int64_t>(sizeof(T)), length);
  for (int64_t k = 0; k < end; k += kLineBytes / static_cast<int64_t>(sizeof(T))) prefetch(row + k);
}
// The lines `span` elements long at `at` + kPrefetchBytes, when still inside the row.
template <typename T>
inline void prefetchAhead(const T* row, int64_t at, int64_t span, int64_t length) {
  const int64_t ahead = at + kPrefetchBytes / static_cast<int64_t>(sizeof(T));
  if (ahead >= length) return;
  for (int64_t k = 0; k < span; k += kLineBytes / static_cast<int64_t>(sizeof(T))) prefetch(row + ahead + k);
}

// Visits the chunks of a row of `length` elements: full chunks two at a time (slots 0 and 1 feed
// independent accumulator chains), then a single one, then a zero-padded partial one.
template <typename T, typename Visit>
inline void forChunks(const T* row, int64_t length, Visit&& visit) {
  constexpr int lanes = Chunk<T>::lanes;
  int64_t i = 0;
  prefetchRowStart(row, length);
  for (; i + 2 * lanes <= length; i += 2 * lanes) {
    prefetchAhead(row, i, 2 * lanes, length);
    visit(Chunk<T>::load(row + i), 0, lanes);
    visit(Chunk<T>::load(row + i + lanes), 1, lanes);
  }
  for (; i + lanes <= length; i += lanes) visit(Chunk<T>::load(row + i), 0, lanes);
  if (i < length) {
    const int count = static_cast<int>(length - i);
    visit(Chunk<T>::loadFirst(row + i, count), 1, count);
  }
}

// Outputs of at least this many bytes are written with non-temporal stores: they are not read again
// soon, and streaming them spares the read-for-ownership and keeps the inputs of later channels cached.
constexpr int64_t kStreamBytes = int64_t{8} << 20;
// Tensors below this size are assumed to come from cache (the last-level cache of a server core complex).
constexpr int64_t kCachedBytes = int64_t{16} << 20;

template <typename T>
inline Chunk<T> loadChunk(const T* p, int valid) {
  return valid == Chunk<T>::lanes ? Chunk<T>::load(p) : Chunk<T>::loadFirst(p, valid);
}
// Elements before `out` reaches the alignment a streaming store of a whole chunk needs.
template <typename T>
inline int64_t headBeforeAlignment(const T* out, int64_t length) {
  const auto alignment = static_cast<uintptr_t>(Chunk<T>::lanes) * sizeof(T);
  const uintptr_t misalignment = reinterpret_cast<uintptr_t>(out) % alignment;
  const auto head = static_cast<int64_t>(misalignment == 0 ? 0 : (alignment - misalignment) / sizeof(T));
  return head < length ? head : length;
}

// Whether a tensor of this many elements is written with non-temporal stores (and treated as not
// staying in cache).
template <typename T>
bool streamsElements(int64_t elements) {
  return elements * static_cast<int64_t>(sizeof(T)) >= kStreamBytes;
}
template <typename T>
bool streamsOutput(const Geometry& g) {
  return streamsElements<T>(g.elements());
}

// Walks a row of `length` elements a chunk at a time: step(at, count, stream) handles elements
// [at, at + count), count < lanes only for the partial chunks. With `streaming`, whole chunks are
// stored non-temporally (stream = true) once out is aligned; the caller fences at the end of its pass.
template <typename T, typename Step>
inline void forRowChunks(T* out, int64_t length, bool streaming, Step&& step) {
  constexpr int lanes = Chunk<T>::lanes;
  int64_t i = 0;
  if (streaming) {
    // Fewer than a chunk's lanes, by construction.
    i = headBeforeAlignment(out, length);
    if (i > 0) step(int64_t{0}, static_cast<int>(i), false);
  }
  for (; i + lanes <= length; i += lanes) step(i, lanes, streaming);
  if (i < length) step(i, static_cast<int>(length - i), false);
}

template <typename T>
inline void putChunk(const Chunk<T>& y, T* out, int count, bool stream) {
  if (count < Chunk<T>::lanes) {
    y.storeFirst(out, count);
  } else if (stream) {
    y.stream(out);
  } else {
    y.store(out);
  }
}

// out[i] = f(in[i]) over a row, for elementwise passes (out may alias in).
template <typename T, typename Map>
inline void mapRow(const T* in, T* out, int64_t length, Map&& map, bool streaming = false) {
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    const Chunk<T> x = loadChunk(in + at, count);
    Chunk<T> y;
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p]);
    putChunk(y, out + at, count, stream);
  });
}

// out[i] = f(a[i], b[i]) over a row (see mapRow).
template <typename T, typename Map>
inline void mapRow2(const T* a, const T* b, T* out, int64_t length, Map&& map, bool streaming = false) {
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    const Chunk<T> x = loadChunk(a + at, count);
    Chunk<T> y = loadChunk(b + at, count);
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p], y.part[p]);
    putChunk(y, out + at, count, stream);
  });
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

 private:
  int64_t length_;
  double* data_;
};

template <typename T>
int64_t paddedLength(int64_t positions) {
  const int64_t lanes = Chunk<T>::lanes;
  return (positions + lanes - 1) / lanes * lanes;
}

// Channels whose rows are shorter than 64 values are walked across channels (interleaved): a planar
// walk pays a fresh run per row for the prefetchers, and its head and tail, whatever the vector width
// (measured with AVX2, (256, 256, 7, 7): planar 4x slower in training forward, 2.5x in backward).
template <typename T>
bool useInterleaved(const Geometry& g) {
  return g.spatial < 64;
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
inline void storeChunk(const Chunk<T>& chunk, T* p, int valid) {
  if (valid == Chunk<T>::lanes) {
    chunk.store(p);
  } else {
    chunk.storeFirst(p, valid);
  }
}

// A block of an interleaved traversal: channels [c0, c1) of rows [b0, b1), each row a run of
// `positions` contiguous values.
struct Block {
  int64_t c0 = 0, c1 = 0, b0 = 0, b1 = 0, positions = 0, first = 0, stride = 0, tensorRows = 0;
  Block(const Geometry& g, int64_t fromChannel, int64_t toChannel, int64_t fromRow, int64_t toRow)
      : c0(fromChannel),
        c1(toChannel),
        b0(fromRow),
        b1(toRow),
        positions((toChannel - fromChannel) * g.spatial),
        first(fromChannel * g.spatial),
        stride(g.channels * g.spatial),
        tensorRows(g.batch) {}
  int64_t rowOffset(int64_t b) const { return b * stride + first; }
};

// How an interleaved traversal cuts the tensor: channel blocks of `channels`, row blocks of `rows`.
// Both depend only on the shape, so the reduction order never depends on the thread count.
struct Tiling {
  int64_t channels = 1, channelBlocks = 1, rows = 1, rowBlocks = 1;
  Block block(const Geometry& g, int64_t channelBlock, int64_t rowBlock) const {
    const int64_t c0 = channelBlock * channels, b0 = rowBlock * rows;
    return Block(g, c0, minInt64(c0 + channels, g.channels), b0, minInt64(b0 + rows, g.batch));
  }
};

// Channel blocks: enough input bytes per row to read in runs the prefetcher follows (at least four
// chunks), few enough positions to bound the scratch rows. Row blocks: all rows while a channel block
// stays within kBlockBytes (its passes then run back to back in L2); otherwise fixed row blocks whose
// partial sums are combined in order (channels-last and long (N, C) tensors).
template <typename T>
Tiling tilingFor(const Geometry& g) {
  Tiling t;
  const int64_t element = static_cast<int64_t>(sizeof(T));
  const int64_t bytesPerChannel = maxInt64(1, g.batch * g.spatial * element);
  const int64_t minChannels = (4 * Chunk<T>::lanes + g.spatial - 1) / g.spatial;
  const int64_t maxChannels = maxInt64(1, kMaxBlockPositions / g.spatial);
  int64_t channels = kBlockBytes / bytesPerChannel;
  // When rows must be split anyway, take the widest row segments: longer contiguous runs per row.
  if (channels < minChannels) channels = maxChannels;
  t.channels = maxInt64(1, minInt64(minInt64(channels, maxChannels), g.channels));
  t.channelBlocks = (g.channels + t.channels - 1) / t.channels;
  const int64_t rowBytes = t.channels * g.spatial * element;
  t.rows = g.batch * rowBytes <= kBlockBytes ? maxInt64(1, g.batch) : maxInt64(2, kBlockBytes / rowBytes);
  // Whole groups of kAccumulatedRows, so every row block accumulates in the same pattern.
  t.rows = (t.rows + kAccumulatedRows - 1) / kAccumulatedRows * kAccumulatedRows;
  t.rowBlocks = maxInt64(1, (g.batch + t.rows - 1) / t.rows);
  return t;
}


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
// long contiguous runs; kAccumulatedRows rows share each load and store of the scratch accumulators, and
// their inputs are requested kStreamedRowsAhead rows ahead.
// `step.add(xs, rows, at)` gets the chunks at position `at` of `rows` (1 to kAccumulatedRows)
// consecutive rows.
template <typename T, typename Step>
void accumulateBlock(const T* input, const Block& block, Step&& step) {
  constexpr int lanes = Chunk<T>::lanes;
  const int64_t ahead = kStreamedRowsAhead * block.stride;
  for (int64_t b = block.b0; b < block.b1; b += kAccumulatedRows) {
    const int rows = static_cast<int>(minInt64(kAccumulatedRows, block.b1 - b));
    // Rows whose inputs kStreamedRowsAhead rows below are still in the tensor.
    const int prefetched = clampInt(block.tensorRows - kStreamedRowsAhead - b, 0, rows);
    const T* row[kAccumulatedRows];
    for (int r = 0; r < kAccumulatedRows; ++r) row[r] = input + block.rowOffset(r < rows ? b + r : b);
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      Chunk<T> xs[kAccumulatedRows];
      for (int r = 0; r < prefetched; ++r) prefetch(row[r] + at + ahead);
      for (int r = 0; r < kAccumulatedRows; ++r) xs[r] = loadChunk(row[r] + at, valid);
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

// Calls group(at, std::integral_constant<int, chunks>{}) for the column groups of a row of `positions`
// values, a whole number of chunks of `lanes`: groups of kMaxChunks chunks, then the rest. The width is a
// compile-time constant, so a group's accumulators or coefficients can live in registers.
template <int kMaxChunks, typename Group>
inline void forColumnGroups(int64_t positions, int64_t lanes, Group&& group) {
  static_assert(kMaxChunks >= 1 && kMaxChunks <= 4, "a remainder of up to three chunks is dispatched below");
  for (int64_t at = 0; at < positions; at += kMaxChunks * lanes) {
    switch (minInt64(kMaxChunks, (positions - at) / lanes)) {
      case 1: group(at, std::integral_constant<int, 1>{}); break;
      case 2: group(at, std::integral_constant<int, 2>{}); break;
      case 3: group(at, std::integral_constant<int, 3>{}); break;
      default: group(at, std::integral_constant<int, kMaxChunks>{});
    }
  }
}

// Sums and squares of x - pivot per position over the rows of a block whose rows are exactly kChunks
// chunks (a column group of one), the accumulators in registers. Rows are added one at a time in order,
// as in the scratch version below, so the results are the same bits.
template <typename T, int kChunks>
void shiftedPartialsHeld(const T* input, const Block& block, const double* pivots, double* sums, double* squares) {
  constexpr int parts = Chunk<T>::parts, lanes = Chunk<T>::lanes;
  Doubles pivot[kChunks][parts], sum[kChunks][parts], square[kChunks][parts];
  for (int k = 0; k < kChunks; ++k) {
    for (int p = 0; p < parts; ++p) {
      pivot[k][p] = Doubles::load(pivots + k * lanes + p * Doubles::lanes);
      sum[k][p] = square[k][p] = Doubles::zero();
    }
  }
  for (int64_t b = block.b0; b < block.b1; ++b) {
    const T* row = input + block.rowOffset(b);
    for (int k = 0; k < kChunks; ++k) {
      const Chunk<T> x = Chunk<T>::load(row + k * lanes);
      for (int p = 0; p < parts; ++p) {
        const Doubles d = x.part[p] - pivot[k][p];
        sum[k][p] = sum[k][p] + d;
        square[k][p] = fmadd(d, d, square[k][p]);
      }
    }
  }
  for (int k = 0; k < kChunks; ++k) {
    for (int p = 0; p < parts; ++p) {
      sum[k][p].store(sums + k * lanes + p * Doubles::lanes);
      square[k][p].store(squares + k * lanes + p * Doubles::lanes);
    }
  }
}

// Chunks of accumulators (three registers per part: pivot, sum, square) that fit in the registers.
constexpr int kHeldStatChunks = Floats::lanes >= 16 ? 4 : 2;
// The least a column group must read of each row to beat the accumulator rows (see shiftedPartials).
constexpr int64_t kMinGroupBytes = 256;
// Whether rows of `positions` values of T are walked in column groups of up to kChunks chunks: rows of
// whole chunks that make a single group, or wider ones whose groups read at least kMinGroupBytes of each
// row (narrower groups read every row in strided pieces: AVX2, (4096, 256) eval 3x a copy so).
template <typename T, int kChunks>
bool wideColumnGroups(int64_t positions) {
  constexpr int64_t lanes = Chunk<T>::lanes;
  return positions % lanes == 0 &&
         (positions <= kChunks * lanes || kChunks * lanes * static_cast<int64_t>(sizeof(T)) >= kMinGroupBytes);
}

// Per-position partial sums over one block's rows, written to rows of `positions` doubles.
// float32: sums and squares of x - pivot (pivot per position). float64: compensated sums (high, low),
// then squares about the double-double mean.
template <typename T>
void shiftedPartials(const T* input, const Block& block, const double* pivots, double* sums, double* squares) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int64_t lanes = Chunk<T>::lanes;
  const bool inCache = !streamsElements<T>(block.tensorRows * block.stride);
  if (wideColumnGroups<T, kHeldStatChunks>(block.positions) || (block.positions % lanes == 0 && inCache)) {
    // Column groups of up to kHeldStatChunks chunks, each down all the block's rows (in L2): one group
    // for rows that fit in the registers; for wider rows of a tensor that stays in cache; for those of a
    // larger one only where a group reads at least kMinGroupBytes of each row. Measured on Zen 4: AVX-512
    // channels-last (256, 256, 7, 7), groups of 256 bytes, 2-24% faster than the accumulator rows below;
    // AVX2 channels-last (32, 64, 56, 56), groups of 64 bytes, 20% slower; AVX2 (4096, 256), in cache,
    // 9% faster.
    forColumnGroups<kHeldStatChunks>(block.positions, lanes, [&](int64_t at, auto chunks) {
      shiftedPartialsHeld<T, decltype(chunks)::value>(input + at, block, pivots + at, sums + at, squares + at);
    });
    return;
  }
  for (int64_t i = 0; i < paddedLength<T>(block.positions); ++i) sums[i] = squares[i] = 0;
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
  } step{pivots, sums, squares};
  accumulateBlock(input, block, step);
}

template <typename T>
void sumPartials(const T* input, const Block& block, double* highs, double* lows) {
  constexpr int parts = Chunk<T>::parts;
  for (int64_t i = 0; i < paddedLength<T>(block.positions); ++i) highs[i] = lows[i] = 0;
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
  } step{highs, lows};
  accumulateBlock(input, block, step);
}

template <typename T>
void squarePartials(const T* input, const Block& block, const double* meanHighs, const double* meanLows,
                    double* squares) {
  constexpr int parts = Chunk<T>::parts;
  for (int64_t i = 0; i < paddedLength<T>(block.positions); ++i) squares[i] = 0;
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
  } step{meanHighs, meanLows, squares};
  accumulateBlock(input, block, step);
}

// Rows of doubles for every (channel block, row block) task, allocated once per call.
class TaskRows {
 public:
  TaskRows(const Tiling& tiling, int rowsPerTask, int64_t length)
      : rowsPerTask_(rowsPerTask), length_(length),
        data_(new double[static_cast<size_t>(tiling.channelBlocks * tiling.rowBlocks * rowsPerTask * length)]),
        rowBlocks_(tiling.rowBlocks) {}
  ~TaskRows() { delete[] data_; }
  TaskRows(const TaskRows&) = delete;
  TaskRows& operator=(const TaskRows&) = delete;
  double* row(int64_t channelBlock, int64_t rowBlock, int index) const {
    return data_ + ((channelBlock * rowBlocks_ + rowBlock) * rowsPerTask_ + index) * length_;
  }

 private:
  int64_t rowsPerTask_, length_;
  double* data_;
  int64_t rowBlocks_;
};

// Runs body(channelBlock, rowBlock) over every task of the tiling, in parallel. Each thread fences its
// non-temporal stores (forStreamedRows) once, at the end of its range.
template <typename F>
void forEachTask(const Geometry& g, const Tiling& tiling, F&& body) {
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) body(task / tiling.rowBlocks, task % tiling.rowBlocks);
    vec::streamFence();
  };
  parallelOver(tiling.channelBlocks * tiling.rowBlocks, tiling.channels * tiling.rows * g.spatial, run);
}

// Runs body(channelBlock) over the channel blocks, in parallel (fenced as forEachTask).
template <typename F>
void forEachChannelBlock(const Geometry& g, const Tiling& tiling, F&& body) {
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) body(block);
    vec::streamFence();
  };
  parallelOver(tiling.channelBlocks, tiling.channels * g.perChannel(), run);
}

// The statistics of channel block `cb`: partial sums of its row blocks (already in `partials`, computed by
// interleavedPartials) combined in row-block order, then per channel in position order.
template <typename T>
void combineStats(const Geometry& g, const T* input, const Tiling& tiling, const TaskRows& partials, int64_t cb,
                  ChannelStats* stats) {
  const Block first = tiling.block(g, cb, 0);
  for (int64_t c = first.c0; c < first.c1; ++c) {
    const int64_t from = (c - first.c0) * g.spatial;
    if (kShiftedStats<T>) {
      double sum = 0, squares = 0;
      for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
        const double* sums = partials.row(cb, rb, 0);
        const double* squareRow = partials.row(cb, rb, 1);
        for (int64_t s = 0; s < g.spatial; ++s) {
          sum += sums[from + s];
          squares += squareRow[from + s];
        }
      }
      stats[c - first.c0] = fromShiftedSums(g, input, c, static_cast<double>(input[c * g.spatial]), sum, squares);
    } else {
      double varSum = 0;
      for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
        const double* squareRow = partials.row(cb, rb, 2);
        for (int64_t s = 0; s < g.spatial; ++s) varSum += squareRow[from + s];
      }
      stats[c - first.c0].varSum = varSum;
    }
  }
}

// float64 only: the channel means of block `cb` from the compensated partial sums, spread over the
// positions of `meanHighs` / `meanLows`.
template <typename T>
void combineMeans(const Geometry& g, const Tiling& tiling, const TaskRows& partials, int64_t cb, ChannelStats* stats,
                  double* meanHighs, double* meanLows) {
  const Block first = tiling.block(g, cb, 0);
  for (int64_t c = first.c0; c < first.c1; ++c) {
    const int64_t from = (c - first.c0) * g.spatial;
    ScalarTwoSum total;
    for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
      const double* highs = partials.row(cb, rb, 0);
      const double* lows = partials.row(cb, rb, 1);
      for (int64_t s = 0; s < g.spatial; ++s) total.add(highs[from + s]);
      for (int64_t s = 0; s < g.spatial; ++s) total.low += lows[from + s];
    }
    ChannelStats& channel = stats[c - first.c0];
    meanOf(total, static_cast<double>(g.perChannel()), channel.mean, channel.meanLow);
    broadcastRow(meanHighs, from, g.spatial, channel.mean);
    broadcastRow(meanLows, from, g.spatial, channel.meanLow);
  }
}

// y = (x - center) * scale + shift over a block, coefficients per position in three scratch rows.
// Walks a block a position (chunk) at a time, four rows per visit: coefficientsAt(at) loads what the
// rows share, then row(offset, valid, coefficients) handles the chunk of each row at `offset`.
template <typename T, typename Load, typename Row>
void forBlockChunks(const Block& block, Load&& coefficientsAt, Row&& row) {
  constexpr int lanes = Chunk<T>::lanes;
  for (int64_t b = block.b0; b < block.b1; b += 4) {
    const int rows = static_cast<int>(minInt64(4, block.b1 - b));
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const auto coefficients = coefficientsAt(at);
      for (int r = 0; r < rows; ++r) row(block.rowOffset(b + r) + at, valid, coefficients);
    }
  }
}

// Walks a block whose rows follow each other in memory (a single channel block: stride == positions, a
// whole number of chunks) as one flat array, for outputs streamed with non-temporal stores. The walk
// starts at the output's first aligned chunk, `head` values in, so every whole chunk it stores is
// aligned; read from there, each `positions` values are a row shifted by head, whose chunks take the
// coefficients of positions head + at on, wrapping into the next row: coefficientsAt(at) must load
// positions up to positions + lanes, the first ones repeated. kRows shifted rows share each load of the
// coefficients; row(offset, valid, coefficients, stream) handles one chunk. Interleaved rows are runs the
// hardware prefetchers follow poorly: prefetchAt(offset) requests the inputs kStreamedRowsAhead rows
// ahead of each chunk, while inside the tensor's `length` (measured on Zen 4, channels-last (256, 256,
// 7, 7): about 20% faster). The caller fences once per parallel range (a fence per block measured
// slower: it waits for the stores to drain).
template <typename T, int kRows, typename Load, typename Prefetch, typename Row>
void forStreamedRows(const Block& block, const T* output, int64_t length, Load&& coefficientsAt,
                     Prefetch&& prefetchAt, Row&& row) {
  constexpr int lanes = Chunk<T>::lanes;
  const int64_t positions = block.positions, start = block.rowOffset(block.b0), rows = block.b1 - block.b0;
  const int64_t head = headBeforeAlignment(output + start, rows * positions);
  if (head > 0) row(start, static_cast<int>(head), coefficientsAt(0), false);
  // Whole shifted rows; with a head, the last row's remaining positions - head values follow them.
  const int64_t shifted = head > 0 ? rows - 1 : rows;
  for (int64_t b = 0; b < shifted; b += kRows) {
    const int count = static_cast<int>(minInt64(kRows, shifted - b));
    const int64_t first = start + head + b * positions;
    for (int64_t at = 0; at < positions; at += lanes) {
      const auto coefficients = coefficientsAt(head + at);
      for (int r = 0; r < count; ++r) {
        const int64_t offset = first + r * positions + at, ahead = offset + kStreamedRowsAhead * positions;
        if (ahead < length) prefetchAt(ahead);
        row(offset, lanes, coefficients, true);
      }
    }
  }
  if (head > 0) {
    const int64_t first = start + head + shifted * positions;
    for (int64_t at = 0; at < positions - head; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, positions - head - at));
      row(first + at, valid, coefficientsAt(head + at), valid == lanes);
    }
  }
}

// Whether a block's output can be walked by forStreamedRows: its rows follow each other, they are whole
// chunks, and the tensor is large enough to stream.
template <typename T>
bool streamsRows(const Geometry& g, const Block& block) {
  return block.stride == block.positions && block.positions % Chunk<T>::lanes == 0 && streamsOutput<T>(g);
}

template <typename T>
struct ScratchChunks3 {
  ScratchChunk<T> a, b, c;
};

template <typename T>
void normalizeBlock(const T* input, T* output, const Block& block, const double* centers,
                    const double* scales, const double* shifts) {
  constexpr int parts = Chunk<T>::parts;
  forBlockChunks<T>(
      block,
      [&](int64_t at) {
        return ScratchChunks3<T>{ScratchChunk<T>::load(centers, at), ScratchChunk<T>::load(scales, at),
                                 ScratchChunk<T>::load(shifts, at)};
      },
      [&](int64_t offset, int valid, const ScratchChunks3<T>& k) {
        Chunk<T> x = loadChunk(input + offset, valid);
        for (int p = 0; p < parts; ++p) x.part[p] = fmadd(x.part[p] - k.a.v[p], k.b.v[p], k.c.v[p]);
        storeChunk(x, output + offset, valid);
      });
}


// ---------------------------------------------------------------------------------------------------
// float32 normalization in float arithmetic
//
// Where fmadd on Floats is fused, float32 outputs are computed without widening to double (conversions
// cost more than the arithmetic): y = (x - c) * s + t becomes d = x - c_f, y = fma(d, s_hi, fma(d, s_lo,
// t_f)), with c_f = float(c), s = s_hi + s_lo and the mean's rounding c - c_f folded into t_f. d is exact
// whenever x lies within a factor of two of c_f (Sterbenz), the |mean| >> std case where PyTorch's
// x * alpha + beta loses digits; otherwise it is off by half an ulp of d. The error stays within one ulp
// of the output's largest value (PyTorch's own float32 arithmetic rounds three or four times per element).
// s_hi is s rounded toward zero, so s_lo has s's sign and an infinite x still gives an infinite y, not
// Inf - Inf; a zero s_lo becomes the smallest subnormal of that sign for the same reason (it moves y by
// less than a tie-break). Channels whose coefficients are not finite or far out of float range keep the
// double path.

template <typename T>
constexpr bool kFloatArithmetic = std::is_same<T, float>::value && vec::kFusedFloats;

struct FloatAffine {
  float center = 0, scaleHigh = 0, scaleLow = 0, shift = 0;
};

inline bool toFloatAffine(const ChannelAffine& affine, FloatAffine& out) {
  const double magnitude = std::fabs(affine.scale);
  if (!(magnitude >= 0x1p-90 && magnitude <= 0x1p90) || !(std::fabs(affine.center) <= FLT_MAX)) return false;
  out.center = static_cast<float>(affine.center);
  if (!std::isfinite(out.center)) return false;
  out.scaleHigh = static_cast<float>(affine.scale);
  if (std::fabs(static_cast<double>(out.scaleHigh)) > magnitude) {
    // One step toward zero: the next smaller magnitude of a finite nonzero float is its bit pattern
    // minus one, whatever its sign.
    uint32_t bits;
    std::memcpy(&bits, &out.scaleHigh, sizeof bits);
    --bits;
    std::memcpy(&out.scaleHigh, &bits, sizeof bits);
  }
  out.scaleLow = static_cast<float>(affine.scale - static_cast<double>(out.scaleHigh));
  if (out.scaleLow == 0.0f) out.scaleLow = std::copysign(FLT_TRUE_MIN, out.scaleHigh);
  const double shift = affine.shift - (affine.center - static_cast<double>(out.center)) * affine.scale;
  out.shift = static_cast<float>(shift);
  return std::isfinite(out.shift);
}

// A channel's normalization, prepared once for all the rows it maps.
struct PreparedAffine {
  ChannelAffine exact;
  FloatAffine inFloats;
  bool useFloats = false;
};

template <typename T>
PreparedAffine prepareAffine(const ChannelAffine& affine) {
  PreparedAffine prepared;
  prepared.exact = affine;
  if (kFloatArithmetic<T>) prepared.useFloats = toFloatAffine(affine, prepared.inFloats);
  return prepared;
}

inline Floats affineFloats(Floats x, Floats center, Floats scaleHigh, Floats scaleLow, Floats shift) {
  const Floats d = x - center;
  return fmadd(d, scaleHigh, fmadd(d, scaleLow, shift));
}

inline void putFloats(Floats y, float* out, int count, bool stream) {
  if (count < Floats::lanes) {
    y.storeFirst(out, count);
  } else if (stream) {
    y.stream(out);
  } else {
    y.store(out);
  }
}

inline void affineRowInFloats(const float* in, float* out, int64_t length, const FloatAffine& affine,
                              bool streaming) {
  const Floats center = Floats::broadcast(affine.center), scaleHigh = Floats::broadcast(affine.scaleHigh),
               scaleLow = Floats::broadcast(affine.scaleLow), shift = Floats::broadcast(affine.shift);
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    const Floats x = count == Floats::lanes ? Floats::load(in + at) : Floats::loadFirst(in + at, count);
    putFloats(affineFloats(x, center, scaleHigh, scaleLow, shift), out + at, count, stream);
  });
}

// A channel's float coefficients in registers.
struct FloatLanes {
  Floats center, scaleHigh, scaleLow, shift;
  static FloatLanes of(const FloatAffine& a) {
    return {Floats::broadcast(a.center), Floats::broadcast(a.scaleHigh), Floats::broadcast(a.scaleLow),
            Floats::broadcast(a.shift)};
  }
  // The first `count` lanes from this channel, the others from `next`.
  FloatLanes joined(int count, const FloatLanes& next) const {
    return {selectFirst(count, center, next.center), selectFirst(count, scaleHigh, next.scaleHigh),
            selectFirst(count, scaleLow, next.scaleLow), selectFirst(count, shift, next.shift)};
  }
  Floats apply(Floats x) const { return affineFloats(x, center, scaleHigh, scaleLow, shift); }
};

// Eval forward of a contiguous (N, C, S) float32 tensor with S >= lanes, walked as one flat array: a
// chunk then spans at most two channels, whose coefficients it joins. Short rows (7 x 7 = 49 values)
// cost no per-row head and tail this way, and the output is one stream that non-temporal stores can
// write whole cache lines of.
inline void affineFlatInFloats(const Geometry& g, const float* input, float* output, const FloatAffine* channels,
                               bool streaming) {
  constexpr int lanes = Floats::lanes;
  const int64_t total = g.elements();
  auto body = [&](int64_t beginChunk, int64_t endChunk) {
    const int64_t begin = beginChunk * lanes, end = minInt64(endChunk * lanes, total);
    int64_t channel = (begin / g.spatial) % g.channels;
    int64_t left = g.spatial - begin % g.spatial;  // values of `channel` from the current position on
    FloatLanes current = FloatLanes::of(channels[channel]);
    FloatLanes next = FloatLanes::of(channels[(channel + 1) % g.channels]);
    const float* in = input + begin;
    forRowChunks(output + begin, end - begin, streaming, [&](int64_t at, int count, bool stream) {
      const Floats x = count == lanes ? Floats::load(in + at) : Floats::loadFirst(in + at, count);
      const Floats y = left >= count ? current.apply(x) : current.joined(static_cast<int>(left), next).apply(x);
      putFloats(y, output + begin + at, count, stream);
      left -= count;
      if (left <= 0) {  // count <= lanes <= S: at most one channel boundary per chunk
        channel = channel + 1 == g.channels ? 0 : channel + 1;
        left += g.spatial;
        current = next;
        next = FloatLanes::of(channels[channel + 1 == g.channels ? 0 : channel + 1]);
      }
    });
    if (streaming) vec::streamFence();
  };
  parallelOver((total + lanes - 1) / lanes, lanes, body);
}

// Per-position float coefficients of `count` consecutive channels: four rows of `padded` floats. Each
// row repeats its first lanes after its last position, so that a chunk of a row that continues into the
// next row (forStreamedRows) loads its coefficients in one piece. Position p of every row sits at the
// same offset within a chunk's alignment as p of `alignedLike` (the output's first row): where the
// output is stored by aligned chunks, the coefficients are loaded by aligned chunks too, not split
// across two cache lines (measured on Zen 4: channels-last (256, 256, 7, 7) eval with input and output
// misaligned to each other 0.49-0.54 ms with split coefficient loads, 0.40 ms aligned).
class FloatCoefficients {
 public:
  FloatCoefficients(const Geometry& g, const FloatAffine* channels, int64_t count, const float* alignedLike)
      : padded_(paddedLength<float>(count * g.spatial) + Floats::lanes),
        storage_(new float[static_cast<size_t>(4 * padded_ + Floats::lanes)]) {
    constexpr uintptr_t alignment = Floats::lanes * sizeof(float);
    const uintptr_t wanted = reinterpret_cast<uintptr_t>(alignedLike) % alignment;
    const uintptr_t have = reinterpret_cast<uintptr_t>(storage_) % alignment;
    data_ = storage_ + (wanted + alignment - have) % alignment / sizeof(float);
    for (int64_t c = 0; c < count; ++c) {
      for (int64_t s = c * g.spatial, end = s + g.spatial; s < end; ++s) set(s, channels[c]);
    }
    const int64_t positions = count * g.spatial;
    for (int64_t s = positions; positions > 0 && s < positions + Floats::lanes; ++s) {
      set(s, channels[(s - positions) % positions / g.spatial]);
    }
  }
  ~FloatCoefficients() { delete[] storage_; }
  FloatCoefficients(const FloatCoefficients&) = delete;
  FloatCoefficients& operator=(const FloatCoefficients&) = delete;
  // Row k: 0 centers, 1 high and 2 low parts of the scales, 3 shifts.
  const float* row(int k) const { return data_ + k * padded_; }

 private:
  void set(int64_t position, const FloatAffine& affine) {
    data_[position] = affine.center;
    data_[padded_ + position] = affine.scaleHigh;
    data_[2 * padded_ + position] = affine.scaleLow;
    data_[3 * padded_ + position] = affine.shift;
  }

  int64_t padded_;
  float* storage_;
  float* data_;
};

// Every channel's float coefficients, or null when one of them needs the double path.
inline FloatAffine* floatAffines(const ChannelAffine* channels, int64_t count) {
  FloatAffine* inFloats = new FloatAffine[static_cast<size_t>(count)];
  for (int64_t c = 0; c < count; ++c) {
    if (!toFloatAffine(channels[c], inFloats[c])) {
      delete[] inFloats;
      return nullptr;
    }
  }
  return inFloats;
}

// The interleaved normalization of a block in floats. A tensor that stays in cache between calls is
// bound by instructions: four rows share each load of the coefficients. A larger one is bound by memory,
// read fastest strictly in address order, where the prefetchers follow (measured on Zen 4: about 1.5x
// either way). Non-temporal stores help where the rows follow each other (the streamed walk below); rows
// `stride` apart would need a head and a tail each.
// Rows of `positions` values `stride` apart, four rows per load of the coefficients.
inline void normalizeFourRowsInFloats(const float* in, float* out, int64_t rows, int64_t stride,
                                      int64_t positions, const FloatCoefficients& coefficients) {
  constexpr int lanes = Floats::lanes, kRows = 4;
  // Locals, not members: the compiler must otherwise reload them after every (may-alias) vector store.
  const float *centers = coefficients.row(0), *scaleHighs = coefficients.row(1),
              *scaleLows = coefficients.row(2), *shifts = coefficients.row(3);
  const int64_t whole = positions / lanes * lanes;
  const int tail = static_cast<int>(positions - whole);
  for (int64_t b = 0; b < rows; b += kRows) {
    const int count = static_cast<int>(minInt64(kRows, rows - b));
    const float* rowIn = in + b * stride;
    float* rowOut = out + b * stride;
    for (int64_t at = 0; at < whole; at += lanes) {
      const FloatLanes affine{Floats::load(centers + at), Floats::load(scaleHighs + at),
                              Floats::load(scaleLows + at), Floats::load(shifts + at)};
      for (int r = 0; r < count; ++r) {
        affine.apply(Floats::load(rowIn + r * stride + at)).store(rowOut + r * stride + at);
      }
    }
    if (tail > 0) {
      const FloatLanes affine{Floats::load(centers + whole), Floats::load(scaleHighs + whole),
                              Floats::load(scaleLows + whole), Floats::load(shifts + whole)};
      for (int r = 0; r < count; ++r) {
        const int64_t at = r * stride + whole;
        affine.apply(Floats::loadFirst(rowIn + at, tail)).storeFirst(rowOut + at, tail);
      }
    }
  }
}

// Registers for the coefficients of this many chunks (four each), leaving room for the arithmetic.
constexpr int kHeldChunks = Floats::lanes >= 16 ? 4 : 2;

// Four rows per load of the coefficients, streamed (see forStreamedRows; eight measured the same).
// Measured on Zen 4 against the column groups with ordinary stores: eval of channels-last (256, 256, 7,
// 7) 0.95x a copy (was 1.1x), and with AVX2 (32, 64, 56, 56) 1.0x (was 1.65x). Rows whose coefficients
// all fit in registers keep the ordinary stores: AVX-512 (32, 64, 56, 56) measured 0.9x a copy so, 1.03x
// streamed.
inline void normalizeRowsStreamedInFloats(const Geometry& g, const float* input, float* output, const Block& block,
                                          const FloatCoefficients& coefficients) {
  constexpr int lanes = Floats::lanes;
  const float *centers = coefficients.row(0), *scaleHighs = coefficients.row(1),
              *scaleLows = coefficients.row(2), *shifts = coefficients.row(3);
  forStreamedRows<float, 4>(
      block, output, g.elements(),
      [&](int64_t at) {
        return FloatLanes{Floats::load(centers + at), Floats::load(scaleHighs + at), Floats::load(scaleLows + at),
                          Floats::load(shifts + at)};
      },
      [&](int64_t offset) { prefetch(input + offset); },
      [&](int64_t offset, int valid, const FloatLanes& affine, bool stream) {
        const Floats x = valid == lanes ? Floats::load(input + offset) : Floats::loadFirst(input + offset, valid);
        putFloats(affine.apply(x), output + offset, valid, stream);
      });
}

// kChunks chunks from position `column` of each row, the coefficients held in registers.
template <int kChunks>
inline void normalizeColumnsInFloats(const float* in, float* out, int64_t rows, int64_t stride, int64_t column,
                                     const FloatCoefficients& coefficients) {
  constexpr int lanes = Floats::lanes;
  FloatLanes held[kChunks];
  for (int k = 0; k < kChunks; ++k) {
    const int64_t at = column + k * lanes;
    held[k] = {Floats::load(coefficients.row(0) + at), Floats::load(coefficients.row(1) + at),
               Floats::load(coefficients.row(2) + at), Floats::load(coefficients.row(3) + at)};
  }
  in += column;
  out += column;
  for (int64_t b = 0; b < rows; ++b) {
    for (int k = 0; k < kChunks; ++k) {
      const int64_t at = b * stride + k * lanes;
      held[k].apply(Floats::load(in + at)).store(out + at);
    }
  }
}

// Rows up to this long are normalized in column groups (measured: faster on channels-last (256, 256,
// 7, 7), whose rows are 1 KB; slower on (128, 1024), whose rows are 4 KB).
constexpr int64_t kColumnRowBytes = 1024;

inline void normalizeBlockInFloats(const Geometry& g, const float* input, float* output, const Block& block,
                                   const FloatCoefficients& coefficients) {
  constexpr int lanes = Floats::lanes;
  if (block.positions > kHeldChunks * lanes && streamsRows<float>(g, block)) {
    normalizeRowsStreamedInFloats(g, input, output, block, coefficients);
    return;
  }
  if (wideColumnGroups<float, kHeldChunks>(block.positions) &&
      block.positions * static_cast<int64_t>(sizeof(float)) <= kColumnRowBytes) {
    // Rows of whole chunks: column groups of up to kHeldChunks chunks, each down all the rows, with
    // the coefficients in registers (one group when the rows are short, as channels-last often is).
    // Longer rows keep the row-major loops: with rows 4 KB apart, a group's loads would alias the
    // previous row's stores (4K aliasing) and its lines would share a few L1 sets.
    const float* in = input + block.rowOffset(block.b0);
    float* out = output + block.rowOffset(block.b0);
    const int64_t rows = block.b1 - block.b0, stride = block.stride;
    forColumnGroups<kHeldChunks>(block.positions, lanes, [&](int64_t at, auto chunks) {
      normalizeColumnsInFloats<decltype(chunks)::value>(in, out, rows, stride, at, coefficients);
    });
    return;
  }
  const bool cached = g.elements() * static_cast<int64_t>(sizeof(float)) < kCachedBytes;
  if (cached) {
    normalizeFourRowsInFloats(input + block.rowOffset(block.b0), output + block.rowOffset(block.b0),
                              block.b1 - block.b0, block.stride, block.positions, coefficients);
    return;
  }
  // A larger tensor is bound by memory, read fastest strictly in address order: one row at a time.
  // Locals, not members: the compiler must otherwise reload them after every (may-alias) vector store.
  const float *centers = coefficients.row(0), *scaleHighs = coefficients.row(1),
              *scaleLows = coefficients.row(2), *shifts = coefficients.row(3);
  const int64_t positions = block.positions, stride = block.stride, b1 = block.b1;
  const float* in = input + block.first;
  float* out = output + block.first;
  for (int64_t b = block.b0; b < b1; ++b) {
    for (int64_t at = 0; at < positions; at += lanes) {
      const int count = static_cast<int>(minInt64(lanes, positions - at));
      const FloatLanes affine{Floats::load(centers + at), Floats::load(scaleHighs + at),
                              Floats::load(scaleLows + at), Floats::load(shifts + at)};
      const int64_t offset = b * stride + at;
      const Floats x = count == lanes ? Floats::load(in + offset) : Floats::loadFirst(in + offset, count);
      putFloats(affine.apply(x), out + offset, count, false);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Training forward

// y = (x - center) * scale + shift over one row: in floats where prepared (float32 on the FMA paths),
// otherwise in double. There, float32 is rounded once from double either way, and folding the centering
// into the shift, x * scale + (shift - center * scale), saves a subtraction per element and costs at
// most |mean| / std * 2^-53 relative, far below float32 resolution. float64 keeps the centered form,
// which its 1e-10 contract needs when |mean| >> std; non-finite coefficients keep it too, so special
// values propagate as before.
template <typename T>
inline void affineRow(const T* in, T* out, int64_t length, const PreparedAffine& prepared, bool streaming) {
  if constexpr (kFloatArithmetic<T>) {
    if (prepared.useFloats) {
      affineRowInFloats(in, out, length, prepared.inFloats, streaming);
      return;
    }
  }
  const ChannelAffine& affine = prepared.exact;
  const Doubles scale = Doubles::broadcast(affine.scale);
  const double folded = affine.shift - affine.center * affine.scale;
  if (std::is_same<T, float>::value && std::isfinite(folded) && std::isfinite(affine.scale)) {
    const Doubles shift = Doubles::broadcast(folded);
    mapRow(in, out, length, [&](Doubles x) { return fmadd(x, scale, shift); }, streaming);
    return;
  }
  const Doubles center = Doubles::broadcast(affine.center), shift = Doubles::broadcast(affine.shift);
  mapRow(in, out, length, [&](Doubles x) { return fmadd(x - center, scale, shift); }, streaming);
}

template <typename T>
void planarTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan, int64_t c,
                           bool streaming) {
  const ChannelStats stats = planarStats(g, input, c);
  const PreparedAffine affine =
      prepareAffine<T>(plan.fromStats(plan.context, c, stats.mean, stats.meanLow, stats.varSum));
  const int64_t stride = g.channels * g.spatial;
  // Last rows first: they are the ones the statistics pass left in cache, so a channel larger than the
  // cache still finds most of itself there (in order, each row would evict the next one needed).
  for (int64_t b = g.batch - 1; b >= 0; --b) {
    const int64_t offset = b * stride + c * g.spatial;
    affineRow(input + offset, output + offset, g.spatial, affine, streaming);
  }
}

// Interleaved training forward. A task is one (channel block, row block); with a single row block per
// channel block, one task runs every phase of its block while the block is in cache.
template <typename T>
void interleavedTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan) {
  const Tiling tiling = tilingFor<T>(g);
  const int64_t padded = paddedLength<T>(tiling.channels * g.spatial);
  // Per task: partial rows (float32: sums, squares; float64: highs, lows, squares) and a pivot/mean row.
  TaskRows partials(tiling, 3, padded);
  // Per channel block: center, scale, shift; for float64 first the mean's high and low parts.
  TaskRows coefficients(Tiling{tiling.channels, tiling.channelBlocks, 1, 1}, 3, padded);

  auto firstPass = [&](int64_t cb, int64_t rb) {
    const Block block = tiling.block(g, cb, rb);
    if (kShiftedStats<T>) {
      double* pivots = partials.row(cb, rb, 2);
      for (int64_t c = block.c0; c < block.c1; ++c)
        broadcastRow(pivots, (c - block.c0) * g.spatial, g.spatial, static_cast<double>(input[c * g.spatial]));
      shiftedPartials(input, block, pivots, partials.row(cb, rb, 0), partials.row(cb, rb, 1));
    } else {
      sumPartials(input, block, partials.row(cb, rb, 0), partials.row(cb, rb, 1));
    }
  };
  // float64: the means, then the squares about them.
  auto meanPass = [&](int64_t cb, ChannelStats* stats) {
    combineMeans<T>(g, tiling, partials, cb, stats, coefficients.row(cb, 0, 0), coefficients.row(cb, 0, 1));
  };
  auto squarePass = [&](int64_t cb, int64_t rb) {
    squarePartials(input, tiling.block(g, cb, rb), coefficients.row(cb, 0, 0), coefficients.row(cb, 0, 1),
                   partials.row(cb, rb, 2));
  };
  // Per channel block, its float coefficients (float32 on the FMA paths; null: the double path).
  FloatCoefficients** inFloats = new FloatCoefficients*[static_cast<size_t>(tiling.channelBlocks)]();
  auto finishStats = [&](int64_t cb, ChannelStats* stats) {
    combineStats(g, input, tiling, partials, cb, stats);
    const Block first = tiling.block(g, cb, 0);
    ChannelAffine* affines = new ChannelAffine[static_cast<size_t>(first.c1 - first.c0)];
    for (int64_t c = first.c0; c < first.c1; ++c) {
      const ChannelStats& st = stats[c - first.c0];
      affines[c - first.c0] = plan.fromStats(plan.context, c, st.mean, st.meanLow, st.varSum);
    }
    if constexpr (kFloatArithmetic<T>) {
      if (FloatAffine* channels = floatAffines(affines, first.c1 - first.c0)) {
        inFloats[cb] = new FloatCoefficients(g, channels, first.c1 - first.c0, output + first.first);
        delete[] channels;
      }
    }
    if (inFloats[cb] == nullptr) {
      for (int64_t c = first.c0; c < first.c1; ++c) {
        const ChannelAffine& affine = affines[c - first.c0];
        const int64_t from = (c - first.c0) * g.spatial;
        broadcastRow(coefficients.row(cb, 0, 0), from, g.spatial, affine.center);
        broadcastRow(coefficients.row(cb, 0, 1), from, g.spatial, affine.scale);
        broadcastRow(coefficients.row(cb, 0, 2), from, g.spatial, affine.shift);
      }
    }
    delete[] affines;
  };
  auto normalizePass = [&](int64_t cb, int64_t rb) {
    const Block block = tiling.block(g, cb, rb);
    if constexpr (kFloatArithmetic<T>) {
      if (inFloats[cb] != nullptr) {
        normalizeBlockInFloats(g, input, output, block, *inFloats[cb]);
        return;
      }
    }
    normalizeBlock(input, output, block, coefficients.row(cb, 0, 0), coefficients.row(cb, 0, 1),
                   coefficients.row(cb, 0, 2));
  };
  auto release = [&] {
    for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) delete inFloats[cb];
    delete[] inFloats;
  };

  if (tiling.rowBlocks == 1) {
    forEachChannelBlock(g, tiling, [&](int64_t cb) {
      ChannelStats* stats = new ChannelStats[static_cast<size_t>(tiling.channels)];
      firstPass(cb, 0);
      if (!kShiftedStats<T>) {
        meanPass(cb, stats);
        squarePass(cb, 0);
      }
      finishStats(cb, stats);
      normalizePass(cb, 0);
      delete[] stats;
    });
    release();
    return;
  }
  ChannelStats* stats = new ChannelStats[static_cast<size_t>(tiling.channels * tiling.channelBlocks)];
  forEachTask(g, tiling, firstPass);
  if (!kShiftedStats<T>) {
    forEachChannelBlock(g, tiling, [&](int64_t cb) { meanPass(cb, stats + cb * tiling.channels); });
    forEachTask(g, tiling, squarePass);
  }
  forEachChannelBlock(g, tiling, [&](int64_t cb) { finishStats(cb, stats + cb * tiling.channels); });
  forEachTask(g, tiling, normalizePass);
  delete[] stats;
  release();
}


template <typename T>
void trainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    interleavedTrainingForward(g, input, output, plan);
  } else {
    const bool streaming = streamsOutput<T>(g);
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarTrainingForward(g, input, output, plan, c, streaming);
      if (streaming) vec::streamFence();
    };
    parallelOver(g.channels, g.perChannel(), body);
  }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation forward: a per-channel affine map, as fast as a copy

// Eval of float32 with S < lanes in floats: channel blocks of up to kMaxBlockPositions positions, their
// coefficients built once, and tasks ordered by rows first, so that each thread writes one contiguous
// part of the output (split by channels, threads would share the cache lines at block edges).
inline void affineInterleavedInFloats(const Geometry& g, const float* input, float* output,
                                      const FloatAffine* channels) {
  Tiling tiling;
  tiling.channels = maxInt64(1, minInt64(g.channels, kMaxBlockPositions / g.spatial));
  tiling.channelBlocks = (g.channels + tiling.channels - 1) / tiling.channels;
  tiling.rows = maxInt64(kAccumulatedRows, kMinElementsPerTask / (tiling.channels * g.spatial));
  tiling.rowBlocks = maxInt64(1, (g.batch + tiling.rows - 1) / tiling.rows);
  FloatCoefficients** blocks = new FloatCoefficients*[static_cast<size_t>(tiling.channelBlocks)];
  for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) {
    const int64_t c0 = cb * tiling.channels;
    blocks[cb] = new FloatCoefficients(g, channels + c0, minInt64(tiling.channels, g.channels - c0),
                                       output + c0 * g.spatial);
  }
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t rb = task / tiling.channelBlocks, cb = task % tiling.channelBlocks;
      normalizeBlockInFloats(g, input, output, tiling.block(g, cb, rb), *blocks[cb]);
    }
    vec::streamFence();
  };
  parallelOver(tiling.channelBlocks * tiling.rowBlocks, tiling.channels * tiling.rows * g.spatial, run);
  for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) delete blocks[cb];
  delete[] blocks;
}

template <typename T>
void affineForward(const Geometry& g, const T* input, T* output, const ChannelAffine* channels) {
  // Without a reduction, rows of a few chunks already vectorize well with broadcast coefficients;
  // only rows shorter than a chunk go across channels.
  if (g.spatial < Chunk<T>::lanes) {
    if constexpr (kFloatArithmetic<T>) {
      if (FloatAffine* inFloats = floatAffines(channels, g.channels)) {
        affineInterleavedInFloats(g, input, output, inFloats);
        delete[] inFloats;
        return;
      }
    }
    const Tiling tiling = tilingFor<T>(g);
    forEachTask(g, tiling, [&](int64_t cb, int64_t rb) {
      const Block block = tiling.block(g, cb, rb);
      Scratch scratch(3, paddedLength<T>(block.positions));
      for (int64_t c = block.c0; c < block.c1; ++c) {
        const int64_t from = (c - block.c0) * g.spatial;
        broadcastRow(scratch.row(0), from, g.spatial, channels[c].center);
        broadcastRow(scratch.row(1), from, g.spatial, channels[c].scale);
        broadcastRow(scratch.row(2), from, g.spatial, channels[c].shift);
      }
      normalizeBlock(input, output, block, scratch.row(0), scratch.row(1), scratch.row(2));
    });
    return;
  }
  const bool streaming = streamsOutput<T>(g);
  if constexpr (kFloatArithmetic<T>) {
    if (FloatAffine* inFloats = floatAffines(channels, g.channels)) {
      affineFlatInFloats(g, input, output, inFloats, streaming);
      delete[] inFloats;
      return;
    }
  }
  // Planar: one (batch item, channel) row at a time.
  PreparedAffine* prepared = new PreparedAffine[static_cast<size_t>(g.channels)];
  for (int64_t c = 0; c < g.channels; ++c) prepared[c] = prepareAffine<T>(channels[c]);
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t rowIndex = begin; rowIndex < end; ++rowIndex) {
      const int64_t offset = rowIndex * g.spatial;
      affineRow(input + offset, output + offset, g.spatial, prepared[rowIndex % g.channels], streaming);
    }
    if (streaming) vec::streamFence();
  };
  parallelOver(g.batch * g.channels, g.spatial, body);
  delete[] prepared;
}

// ---------------------------------------------------------------------------------------------------
// Backward

// float32: dx = dy * dyFactor + (x * xFactor + constant), the terms regrouped in double (see affineRow
// for why that is exact enough for float32 and not for float64).
struct FoldedGradient {
  double dyFactor = 0, xFactor = 0, constant = 0;
  static FoldedGradient of(const GradientAffine& coef) {
    return {coef.scale, -coef.projection * coef.scale, (coef.center * coef.projection - coef.gradMean) * coef.scale};
  }
};

template <typename T>
void planarBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardPlan& plan,
                    int64_t c, bool streaming) {
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
      prefetchRowStart(x, g.spatial);
      prefetchRowStart(dy, g.spatial);
      for (; i + 2 * lanes <= g.spatial; i += 2 * lanes) {
        prefetchAhead(x, i, 2 * lanes, g.spatial);
        prefetchAhead(dy, i, 2 * lanes, g.spatial);
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
  const FoldedGradient f = FoldedGradient::of(coef);
  const bool folded = std::is_same<T, float>::value && std::isfinite(f.xFactor) && std::isfinite(f.constant) &&
                      std::isfinite(f.dyFactor);
  const Doubles xFactorV = Doubles::broadcast(f.xFactor), constantV = Doubles::broadcast(f.constant);
  // Last rows first, as in planarTrainingForward: they are still cached from the reduction.
  for (int64_t b = g.batch - 1; b >= 0; --b) {
    const int64_t offset = b * stride + c * g.spatial;
    if (coef.readsInput && folded) {
      mapRow2(
          input + offset, gradOutput + offset, gradInput + offset, g.spatial,
          [&](Doubles x, Doubles dy) { return fmadd(dy, scale, fmadd(x, xFactorV, constantV)); }, streaming);
    } else if (coef.readsInput) {
      mapRow2(
          input + offset, gradOutput + offset, gradInput + offset, g.spatial,
          [&](Doubles x, Doubles dy) { return (dy - gradMean - (x - center) * projection) * scale; }, streaming);
    } else {
      mapRow(gradOutput + offset, gradInput + offset, g.spatial, [&](Doubles dy) { return dy * scale; }, streaming);
    }
  }
}

// sum(dy) and sum((x - center) dy) per position over a block whose rows are exactly kChunks chunks, the
// accumulators in registers (rows added one at a time in order: the same bits as the scratch version).
template <typename T, int kChunks>
void gradientPartialsHeld(const T* input, const T* gradOutput, const Block& block, const double* centers,
                          double* gradSums, double* products) {
  constexpr int parts = Chunk<T>::parts, lanes = Chunk<T>::lanes;
  Doubles center[kChunks][parts], sum[kChunks][parts], product[kChunks][parts];
  for (int k = 0; k < kChunks; ++k) {
    for (int p = 0; p < parts; ++p) {
      center[k][p] = Doubles::load(centers + k * lanes + p * Doubles::lanes);
      sum[k][p] = product[k][p] = Doubles::zero();
    }
  }
  for (int64_t b = block.b0; b < block.b1; ++b) {
    const int64_t offset = block.rowOffset(b);
    for (int k = 0; k < kChunks; ++k) {
      const Chunk<T> xs = Chunk<T>::load(input + offset + k * lanes);
      const Chunk<T> dys = Chunk<T>::load(gradOutput + offset + k * lanes);
      for (int p = 0; p < parts; ++p) {
        sum[k][p] = sum[k][p] + dys.part[p];
        product[k][p] = fmadd(xs.part[p] - center[k][p], dys.part[p], product[k][p]);
      }
    }
  }
  for (int k = 0; k < kChunks; ++k) {
    for (int p = 0; p < parts; ++p) {
      sum[k][p].store(gradSums + k * lanes + p * Doubles::lanes);
      product[k][p].store(products + k * lanes + p * Doubles::lanes);
    }
  }
}

// dx = dy * dyFactor + (x * xFactor + constant) for kChunks chunks from position `column` of each row of
// a block, the coefficients held in registers.
template <typename T, int kChunks>
void foldedGradientColumns(const T* input, const T* gradOutput, T* gradInput, const Block& block, int64_t column,
                           const double* dyFactors, const double* xFactors, const double* constants) {
  constexpr int parts = Chunk<T>::parts, lanes = Chunk<T>::lanes;
  Doubles dyFactor[kChunks][parts], xFactor[kChunks][parts], constant[kChunks][parts];
  for (int k = 0; k < kChunks; ++k) {
    for (int p = 0; p < parts; ++p) {
      const int64_t at = k * lanes + p * Doubles::lanes;
      dyFactor[k][p] = Doubles::load(dyFactors + at);
      xFactor[k][p] = Doubles::load(xFactors + at);
      constant[k][p] = Doubles::load(constants + at);
    }
  }
  for (int64_t b = block.b0; b < block.b1; ++b) {
    const int64_t offset = block.rowOffset(b) + column;
    for (int k = 0; k < kChunks; ++k) {
      Chunk<T> dys = Chunk<T>::load(gradOutput + offset + k * lanes);
      const Chunk<T> xs = Chunk<T>::load(input + offset + k * lanes);
      for (int p = 0; p < parts; ++p) {
        dys.part[p] = fmadd(dys.part[p], dyFactor[k][p], fmadd(xs.part[p], xFactor[k][p], constant[k][p]));
      }
      dys.store(gradInput + offset + k * lanes);
    }
  }
}

// Interleaved backward: partial sums per (channel block, row block), combined per channel in order, then
// the gradient; fused per channel block when it has a single row block.
template <typename T>
void interleavedBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput,
                         const BackwardPlan& plan) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int lanes = Chunk<T>::lanes;
  const Tiling tiling = tilingFor<T>(g);
  const int64_t padded = paddedLength<T>(tiling.channels * g.spatial);
  TaskRows partials(tiling, 2, padded);  // sum(dy), sum((x - center) dy)
  // Per channel block: center, gradMean, projection, scale; a chunk more for forStreamedRows' wrap.
  TaskRows coefficients(Tiling{tiling.channels, tiling.channelBlocks, 1, 1}, 4, padded + lanes);
  bool* readsInput = new bool[static_cast<size_t>(tiling.channelBlocks)];
  // float32 blocks whose dx coefficients fold into three rows (see FoldedGradient).
  bool* folded = new bool[static_cast<size_t>(tiling.channelBlocks)];

  auto fillCenters = [&](int64_t cb) {
    const Block first = tiling.block(g, cb, 0);
    double* centers = coefficients.row(cb, 0, 0);
    for (int64_t c = first.c0; c < first.c1; ++c) {
      broadcastRow(centers, (c - first.c0) * g.spatial, g.spatial, plan.center[c]);
    }
  };
  auto sumPass = [&](int64_t cb, int64_t rb) {
    const Block block = tiling.block(g, cb, rb);
    double* gradSums = partials.row(cb, rb, 0);
    double* products = partials.row(cb, rb, 1);
    const double* centers = coefficients.row(cb, 0, 0);
    for (int64_t i = 0; i < padded; ++i) gradSums[i] = products[i] = 0;
    if (!plan.needSums) return;
    if (wideColumnGroups<T, kHeldStatChunks>(block.positions) &&
        (block.positions <= kHeldStatChunks * lanes || !streamsOutput<T>(g))) {
      // Rows of whole chunks: column groups with the accumulators in registers, for rows that fit in
      // them and for tensors that stay in cache (measured: (4096, 256) and (128, 1024) 15% faster so).
      forColumnGroups<kHeldStatChunks>(block.positions, lanes, [&](int64_t at, auto chunks) {
        gradientPartialsHeld<T, decltype(chunks)::value>(input + at, gradOutput + at, block, centers + at,
                                                          gradSums + at, products + at);
      });
      return;
    }
    // kAccumulatedRows rows per load and store of the accumulators, added in row order (the same bits as
    // the held version). In a large tensor the rows are interleaved runs the prefetchers follow poorly:
    // the inputs are requested kStreamedRowsAhead rows ahead (measured on Zen 4: the channels-last (256,
    // 256, 7, 7) backward 15-20% faster than with column groups of held accumulators, which read each
    // row in strided pieces from memory).
    for (int64_t b = block.b0; b < block.b1; b += kAccumulatedRows) {
      const int rows = static_cast<int>(minInt64(kAccumulatedRows, block.b1 - b));
      for (int64_t at = 0; at < block.positions; at += lanes) {
        const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
        const auto center = ScratchChunk<T>::load(centers, at);
        auto sum = ScratchChunk<T>::load(gradSums, at), product = ScratchChunk<T>::load(products, at);
        for (int r = 0; r < rows; ++r) {
          const int64_t offset = block.rowOffset(b + r) + at;
          if (b + r + kStreamedRowsAhead < g.batch) {
            prefetch(input + offset + kStreamedRowsAhead * block.stride);
            prefetch(gradOutput + offset + kStreamedRowsAhead * block.stride);
          }
          const Chunk<T> xs = loadChunk(input + offset, valid);
          const Chunk<T> dys = loadChunk(gradOutput + offset, valid);
          for (int p = 0; p < parts; ++p) {
            sum.v[p] = sum.v[p] + dys.part[p];
            product.v[p] = fmadd(xs.part[p] - center.v[p], dys.part[p], product.v[p]);
          }
        }
        sum.store(gradSums, at);
        product.store(products, at);
      }
    }
  };
  // The coefficients go to rows 0-3 field by field as they come (copying the returned struct whole
  // read it back in one wide load before its narrow stores could forward: measured 15% of the (128,
  // 1024) backward), then fold in place where every channel allows it.
  auto combine = [&](int64_t cb) {
    const Block first = tiling.block(g, cb, 0);
    double *centers = coefficients.row(cb, 0, 0), *gradMeans = coefficients.row(cb, 0, 1),
           *projections = coefficients.row(cb, 0, 2), *scales = coefficients.row(cb, 0, 3);
    bool foldable = std::is_same<T, float>::value;
    for (int64_t c = first.c0; c < first.c1; ++c) {
      const int64_t from = (c - first.c0) * g.spatial;
      double sumDy = 0, dotp = 0;
      for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
        const double* gradSums = partials.row(cb, rb, 0);
        const double* products = partials.row(cb, rb, 1);
        for (int64_t s = 0; s < g.spatial; ++s) {
          sumDy += gradSums[from + s];
          dotp += products[from + s];
        }
      }
      const GradientAffine coef = plan.fromSums(plan.context, c, sumDy, dotp);
      readsInput[cb] = coef.readsInput;
      broadcastRow(centers, from, g.spatial, coef.center);
      broadcastRow(gradMeans, from, g.spatial, coef.gradMean);
      broadcastRow(projections, from, g.spatial, coef.projection);
      broadcastRow(scales, from, g.spatial, coef.scale);
      const FoldedGradient f = FoldedGradient::of(coef);
      foldable = foldable && std::isfinite(f.dyFactor) && std::isfinite(f.xFactor) && std::isfinite(f.constant);
    }
    folded[cb] = foldable && readsInput[cb];
    if (!folded[cb]) return;
    const int64_t positions = first.positions;
    for (int64_t i = 0; i < positions; ++i) {
      GradientAffine coef;
      coef.center = centers[i];
      coef.gradMean = gradMeans[i];
      coef.projection = projections[i];
      coef.scale = scales[i];
      const FoldedGradient f = FoldedGradient::of(coef);
      centers[i] = f.dyFactor;
      gradMeans[i] = f.xFactor;
      projections[i] = f.constant;
    }
    // The first chunk repeated after the last position, for forStreamedRows.
    double* foldedRows[3] = {centers, gradMeans, projections};
    for (double* row : foldedRows) {
      for (int64_t i = 0; i < lanes; ++i) row[positions + i] = row[i % positions];
    }
  };
  auto applyPass = [&](int64_t cb, int64_t rb) {
    if (gradInput == nullptr) return;
    const Block block = tiling.block(g, cb, rb);
    const double* centers = coefficients.row(cb, 0, 0);
    const double* gradMeans = coefficients.row(cb, 0, 1);
    const double* projections = coefficients.row(cb, 0, 2);
    const double* scales = coefficients.row(cb, 0, 3);
    const bool training = readsInput[cb];
    // dx = dy * dyFactor + (x * xFactor + constant), coefficients in rows 0, 1, 2.
    auto foldedChunk = [&](int64_t offset, int valid, const ScratchChunks3<T>& k, bool stream) {
      Chunk<T> dys = loadChunk(gradOutput + offset, valid);
      const Chunk<T> xs = loadChunk(input + offset, valid);
      for (int p = 0; p < parts; ++p) {
        dys.part[p] = fmadd(dys.part[p], k.a.v[p], fmadd(xs.part[p], k.b.v[p], k.c.v[p]));
      }
      putChunk(dys, gradInput + offset, valid, stream);
    };
    auto foldedAt = [&](int64_t at) {
      return ScratchChunks3<T>{ScratchChunk<T>::load(centers, at), ScratchChunk<T>::load(gradMeans, at),
                               ScratchChunk<T>::load(projections, at)};
    };
    // Streamed where the rows are longer than the held coefficients, as normalizeBlockInFloats, eight rows
    // per load of the coefficients (measured on Zen 4, channels-last (256, 256, 7, 7): 10-18% faster than
    // four, and than one; sixteen 30% slower).
    if (folded[cb] && block.positions > kHeldStatChunks * lanes && streamsRows<T>(g, block)) {
      auto prefetchInputs = [&](int64_t offset) {
        prefetch(input + offset);
        prefetch(gradOutput + offset);
      };
      forStreamedRows<T, 8>(block, gradInput, g.elements(), foldedAt, prefetchInputs, foldedChunk);
      return;
    }
    if (folded[cb] && wideColumnGroups<T, kHeldStatChunks>(block.positions) &&
        block.positions * static_cast<int64_t>(sizeof(T)) <= kColumnRowBytes) {
      // Column groups with the coefficients in registers, as normalizeBlockInFloats.
      forColumnGroups<kHeldStatChunks>(block.positions, lanes, [&](int64_t at, auto chunks) {
        foldedGradientColumns<T, decltype(chunks)::value>(input, gradOutput, gradInput, block, at, centers + at,
                                                          gradMeans + at, projections + at);
      });
      return;
    }
    if (folded[cb]) {
      forBlockChunks<T>(block, foldedAt, [&](int64_t offset, int valid, const ScratchChunks3<T>& k) {
        foldedChunk(offset, valid, k, false);
      });
      return;
    }
    // Four rows per load of the coefficients.
    for (int64_t b = block.b0; b < block.b1; b += 4) {
      const int rows = static_cast<int>(minInt64(4, block.b1 - b));
      for (int64_t at = 0; at < block.positions; at += lanes) {
        const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
        const auto scale = ScratchChunk<T>::load(scales, at);
        const auto center = ScratchChunk<T>::load(centers, at);
        const auto gradMean = ScratchChunk<T>::load(gradMeans, at);
        const auto projection = ScratchChunk<T>::load(projections, at);
        for (int r = 0; r < rows; ++r) {
          const int64_t offset = block.rowOffset(b + r) + at;
          Chunk<T> dys = loadChunk(gradOutput + offset, valid);
          if (training) {
            const Chunk<T> xs = loadChunk(input + offset, valid);
            for (int p = 0; p < parts; ++p) {
              dys.part[p] = (dys.part[p] - gradMean.v[p] - (xs.part[p] - center.v[p]) * projection.v[p]) * scale.v[p];
            }
          } else {
            for (int p = 0; p < parts; ++p) dys.part[p] = dys.part[p] * scale.v[p];
          }
          storeChunk(dys, gradInput + offset, valid);
        }
      }
    }
  };

  if (tiling.rowBlocks == 1) {
    forEachChannelBlock(g, tiling, [&](int64_t cb) {
      fillCenters(cb);
      sumPass(cb, 0);
      combine(cb);
      applyPass(cb, 0);
    });
  } else {
    forEachChannelBlock(g, tiling, fillCenters);
    forEachTask(g, tiling, sumPass);
    forEachChannelBlock(g, tiling, combine);
    forEachTask(g, tiling, applyPass);
  }
  delete[] readsInput;
  delete[] folded;
}

template <typename T>
void backward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    interleavedBackward(g, input, gradOutput, gradInput, plan);
  } else {
    const bool streaming = streamsOutput<T>(g);
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarBackward(g, input, gradOutput, gradInput, plan, c, streaming);
      if (streaming) vec::streamFence();
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
