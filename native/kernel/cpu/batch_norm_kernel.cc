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
  channels = maxInt64(channels, (Chunk<T>::lanes + g.spatial - 1) / g.spatial);
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
// Training forward

template <typename T>
void planarTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan, int64_t c) {
  constexpr int parts = Chunk<T>::parts;
  const int64_t stride = g.channels * g.spatial;
  const double count = static_cast<double>(g.perChannel());

  VectorSum<T> sums[2 * parts];
  for (int64_t b = 0; b < g.batch; ++b) {
    forChunks(input + b * stride + c * g.spatial, g.spatial, [&](const Chunk<T>& x, int slot, int) {
      for (int p = 0; p < parts; ++p) sums[slot * parts + p].add(x.part[p]);
    });
  }
  ScalarTwoSum total;
  for (const VectorSum<T>& sum : sums) sum.addTo(total);
  double mean, meanLow;
  meanOf(total, count, mean, meanLow);

  const Doubles meanHigh = Doubles::broadcast(mean), meanLowV = Doubles::broadcast(meanLow);
  Doubles squares[2 * parts];
  for (Doubles& s : squares) s = Doubles::zero();
  for (int64_t b = 0; b < g.batch; ++b) {
    forChunks(input + b * stride + c * g.spatial, g.spatial, [&](const Chunk<T>& x, int slot, int valid) {
      for (int p = 0; p < parts; ++p) {
        const Doubles d = keepValid((x.part[p] - meanHigh) - meanLowV, p, valid);
        squares[slot * parts + p] = fmadd(d, d, squares[slot * parts + p]);
      }
    });
  }
  Doubles squareSum = squares[0];
  for (int i = 1; i < 2 * parts; ++i) squareSum = squareSum + squares[i];

  const ChannelAffine affine = plan.fromStats(plan.context, c, mean, meanLow, squareSum.sum());
  const Doubles center = Doubles::broadcast(affine.center), scale = Doubles::broadcast(affine.scale),
                shift = Doubles::broadcast(affine.shift);
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + c * g.spatial;
    mapRow(input + offset, output + offset, g.spatial, [&](Doubles x) { return fmadd(x - center, scale, shift); });
  }
}

template <typename T>
void interleavedTrainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan, int64_t c0,
                                int64_t c1) {
  constexpr int lanes = Doubles::lanes;
  const int64_t positions = (c1 - c0) * g.spatial;
  const int64_t padded = paddedLength<T>(positions);
  const int64_t stride = g.channels * g.spatial;
  const int64_t first = c0 * g.spatial;
  const double count = static_cast<double>(g.perChannel());
  Scratch scratch(5, padded);
  double* high = scratch.row(0);  // sums, then centers
  double* low = scratch.row(1);   // compensation, then center low parts, then shifts
  double* squares = scratch.row(2);
  double* scale = scratch.row(3);
  double* shift = scratch.row(4);
  for (int64_t i = 0; i < padded; ++i) high[i] = low[i] = squares[i] = 0;

  // Pass 1: per-position sums over the batch.
  for (int64_t b = 0; b < g.batch; ++b) {
    const T* row = input + b * stride + first;
    int64_t i = 0;
    forChunks(row, positions, [&](const Chunk<T>& x, int, int) {
      for (int p = 0; p < Chunk<T>::parts; ++p, i += lanes) {
        VectorSum<T> sum{Doubles::load(high + i), Doubles::load(low + i)};
        sum.add(x.part[p]);
        sum.high.store(high + i);
        sum.low.store(low + i);
      }
    });
  }
  // Per channel: its S positions in order, then the mean; spread back over the positions.
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t from = (c - c0) * g.spatial;
    ScalarTwoSum total;
    for (int64_t s = 0; s < g.spatial; ++s) total.add(high[from + s]);
    for (int64_t s = 0; s < g.spatial; ++s) total.low += low[from + s];
    double mean, meanLow;
    meanOf(total, count, mean, meanLow);
    broadcastRow(high, from, g.spatial, mean);
    broadcastRow(low, from, g.spatial, meanLow);
  }
  // Pass 2: squared deviations (padding positions collect junk that is never read).
  for (int64_t b = 0; b < g.batch; ++b) {
    const T* row = input + b * stride + first;
    int64_t i = 0;
    forChunks(row, positions, [&](const Chunk<T>& x, int, int) {
      for (int p = 0; p < Chunk<T>::parts; ++p, i += lanes) {
        const Doubles d = (x.part[p] - Doubles::load(high + i)) - Doubles::load(low + i);
        fmadd(d, d, Doubles::load(squares + i)).store(squares + i);
      }
    });
  }
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t from = (c - c0) * g.spatial;
    double varSum = 0;
    for (int64_t s = 0; s < g.spatial; ++s) varSum += squares[from + s];
    const ChannelAffine affine = plan.fromStats(plan.context, c, high[from], low[from], varSum);
    broadcastRow(high, from, g.spatial, affine.center);
    broadcastRow(scale, from, g.spatial, affine.scale);
    broadcastRow(shift, from, g.spatial, affine.shift);
  }
  // Pass 3: normalize.
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + first;
    int64_t i = 0;
    mapRow(input + offset, output + offset, positions, [&](Doubles x) {
      const Doubles y = fmadd(x - Doubles::load(high + i), Doubles::load(scale + i), Doubles::load(shift + i));
      i += lanes;
      return y;
    });
  }
}

template <typename T>
void trainingForward(const Geometry& g, const T* input, T* output, const ForwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t c0 = block * perBlock;
        interleavedTrainingForward(g, input, output, plan, c0, minInt64(c0 + perBlock, g.channels));
      }
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
  constexpr int lanes = Doubles::lanes;
  if (useInterleaved<T>(g)) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t c0 = block * perBlock, c1 = minInt64(c0 + perBlock, g.channels);
        const int64_t positions = (c1 - c0) * g.spatial;
        Scratch scratch(3, paddedLength<T>(positions));
        double* center = scratch.row(0);
        double* scale = scratch.row(1);
        double* shift = scratch.row(2);
        for (int64_t c = c0; c < c1; ++c) {
          const int64_t from = (c - c0) * g.spatial;
          broadcastRow(center, from, g.spatial, channels[c].center);
          broadcastRow(scale, from, g.spatial, channels[c].scale);
          broadcastRow(shift, from, g.spatial, channels[c].shift);
        }
        for (int64_t b = 0; b < g.batch; ++b) {
          const int64_t offset = b * g.channels * g.spatial + c0 * g.spatial;
          int64_t i = 0;
          mapRow(input + offset, output + offset, positions, [&](Doubles x) {
            const Doubles y = fmadd(x - Doubles::load(center + i), Doubles::load(scale + i), Doubles::load(shift + i));
            i += lanes;
            return y;
          });
        }
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
  const int64_t stride = g.channels * g.spatial;
  double sumDy = 0, dotp = 0;
  if (plan.needSums) {
    const Doubles center = Doubles::broadcast(plan.center[c]);
    Doubles gradSums[parts], products[parts];
    for (int p = 0; p < parts; ++p) gradSums[p] = products[p] = Doubles::zero();
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = b * stride + c * g.spatial;
      const T* x = input + offset;
      const T* dy = gradOutput + offset;
      constexpr int lanes = Chunk<T>::lanes;
      int64_t i = 0;
      for (; i + lanes <= g.spatial; i += lanes) {
        const Chunk<T> xs = Chunk<T>::load(x + i), dys = Chunk<T>::load(dy + i);
        for (int p = 0; p < parts; ++p) {
          gradSums[p] = gradSums[p] + dys.part[p];
          products[p] = fmadd(xs.part[p] - center, dys.part[p], products[p]);
        }
      }
      if (i < g.spatial) {
        const int valid = static_cast<int>(g.spatial - i);
        const Chunk<T> xs = Chunk<T>::loadFirst(x + i, valid), dys = Chunk<T>::loadFirst(dy + i, valid);
        for (int p = 0; p < parts; ++p) {
          gradSums[p] = gradSums[p] + dys.part[p];
          products[p] = products[p] + keepValid((xs.part[p] - center) * dys.part[p], p, valid);
        }
      }
    }
    for (int p = 1; p < parts; ++p) {
      gradSums[0] = gradSums[0] + gradSums[p];
      products[0] = products[0] + products[p];
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
                         const BackwardPlan& plan, int64_t c0, int64_t c1) {
  constexpr int lanes = Doubles::lanes;
  const int64_t positions = (c1 - c0) * g.spatial;
  const int64_t padded = paddedLength<T>(positions);
  const int64_t stride = g.channels * g.spatial;
  const int64_t first = c0 * g.spatial;
  Scratch scratch(4, padded);
  double* center = scratch.row(0);
  double* gradSums = scratch.row(1);    // then gradMean
  double* products = scratch.row(2);    // then projection
  double* scale = scratch.row(3);
  for (int64_t i = 0; i < padded; ++i) center[i] = gradSums[i] = products[i] = 0;
  for (int64_t c = c0; c < c1; ++c) broadcastRow(center, (c - c0) * g.spatial, g.spatial, plan.center[c]);

  if (plan.needSums) {
    for (int64_t b = 0; b < g.batch; ++b) {
      const int64_t offset = b * stride + first;
      int64_t i = 0;
      const T* x = input + offset;
      const T* dy = gradOutput + offset;
      constexpr int chunkLanes = Chunk<T>::lanes;
      for (int64_t at = 0; at < positions; at += chunkLanes) {
        const int valid = static_cast<int>(minInt64(chunkLanes, positions - at));
        const Chunk<T> xs = valid == chunkLanes ? Chunk<T>::load(x + at) : Chunk<T>::loadFirst(x + at, valid);
        const Chunk<T> dys = valid == chunkLanes ? Chunk<T>::load(dy + at) : Chunk<T>::loadFirst(dy + at, valid);
        for (int p = 0; p < Chunk<T>::parts; ++p, i += lanes) {
          (Doubles::load(gradSums + i) + dys.part[p]).store(gradSums + i);
          fmadd(xs.part[p] - Doubles::load(center + i), dys.part[p], Doubles::load(products + i)).store(products + i);
        }
      }
    }
  }
  bool readsInput = false;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t from = (c - c0) * g.spatial;
    double sumDy = 0, dotp = 0;
    for (int64_t s = 0; s < g.spatial; ++s) {
      sumDy += gradSums[from + s];
      dotp += products[from + s];
    }
    const GradientAffine coef = plan.fromSums(plan.context, c, sumDy, dotp);
    readsInput = coef.readsInput;
    broadcastRow(center, from, g.spatial, coef.center);
    broadcastRow(gradSums, from, g.spatial, coef.gradMean);
    broadcastRow(products, from, g.spatial, coef.projection);
    broadcastRow(scale, from, g.spatial, coef.scale);
  }
  if (gradInput == nullptr) return;
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + first;
    int64_t i = 0;
    if (readsInput) {
      mapRow2(input + offset, gradOutput + offset, gradInput + offset, positions, [&](Doubles x, Doubles dy) {
        const Doubles dx = (dy - Doubles::load(gradSums + i) - (x - Doubles::load(center + i)) * Doubles::load(products + i)) *
                           Doubles::load(scale + i);
        i += lanes;
        return dx;
      });
    } else {
      mapRow(gradOutput + offset, gradInput + offset, positions, [&](Doubles dy) {
        const Doubles dx = dy * Doubles::load(scale + i);
        i += lanes;
        return dx;
      });
    }
  }
}

template <typename T>
void backward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardPlan& plan) {
  if (useInterleaved<T>(g)) {
    const int64_t perBlock = blockChannels<T>(g);
    const int64_t blocks = (g.channels + perBlock - 1) / perBlock;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t c0 = block * perBlock;
        interleavedBackward(g, input, gradOutput, gradInput, plan, c0, minInt64(c0 + perBlock, g.channels));
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
