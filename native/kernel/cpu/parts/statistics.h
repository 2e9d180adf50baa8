// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Per-channel statistics of both traversals.

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
constexpr bool kShiftedStats = Element<T>::kFloatPrecision;

template <typename T>
ChannelStats exactChannelStats(const Geometry& g, const T* input, int64_t c) {
  const int64_t stride = g.channels * g.spatial;
  CompensatedSum sum;
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
  const ShiftedStatistics<double> shifted =
      statisticsFromShiftedSums(pivot, sum, squares, static_cast<double>(g.perChannel()));
  ChannelStats stats;
  stats.mean = shifted.mean;
  stats.meanLow = shifted.meanLow;
  stats.varSum = shifted.varSum;
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
  CompensatedSum total;
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
// their inputs are requested rowsAhead() rows ahead.
// `step.add(xs, rows, at)` gets the chunks at position `at` of `rows` (1 to kAccumulatedRows)
// consecutive rows.
template <typename T, typename Step>
void accumulateBlock(const T* input, const Block& block, Step&& step) {
  constexpr int lanes = Chunk<T>::lanes;
  const int64_t rowsAheadCount = rowsAhead(block.stride * static_cast<int64_t>(sizeof(T)));
  const int64_t ahead = rowsAheadCount * block.stride;
  for (int64_t b = block.b0; b < block.b1; b += kAccumulatedRows) {
    const int rows = static_cast<int>(minInt64(kAccumulatedRows, block.b1 - b));
    // Rows whose inputs rowsAheadCount rows below are still in the tensor.
    const int prefetched = clampInt(block.tensorRows - rowsAheadCount - b, 0, rows);
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

// Per-position partial sums over one block's rows, written to rows of `positions` doubles.
// float32: sums and squares of x - pivot (pivot per position). float64: compensated sums (high, low),
// then squares about the double-double mean.
// `walk`: the block's statistics walk (column groups or accumulator rows) from the call's PhasePlan.
template <typename T>
void shiftedPartials(const T* input, const Block& block, Walk walk, const double* pivots, double* sums,
                     double* squares) {
  constexpr int parts = Chunk<T>::parts;
  constexpr int64_t lanes = Chunk<T>::lanes;
  if (walk == Walk::ColumnGroups) {
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

// Per channel of block cb, the totals of partial rows 0 and 1 over its positions and row blocks, added
// from 0 in row-block, then position order (the order combineStats and combine() use), into `first` and
// `second`. Row blocks outside and channels inside, so that channels of one position (S = 1) add in
// vector registers.
inline void addInOrder(const Geometry& g, const Tiling& tiling, const TaskRows& partials, int64_t cb, int64_t count,
                       double* first, double* second) {
  const int64_t spatial = g.spatial;
  for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
    const double *rowFirst = partials.row(cb, rb, 0), *rowSecond = partials.row(cb, rb, 1);
    if (spatial == 1) {
      // One position per channel: the same additions as below, in a loop the compiler vectorizes (the
      // general loop took a tenth of a (2, 1024) backward).
      for (int64_t c = 0; c < count; ++c) {
        first[c] = (rb == 0 ? 0.0 : first[c]) + rowFirst[c];
        second[c] = (rb == 0 ? 0.0 : second[c]) + rowSecond[c];
      }
      continue;
    }
    for (int64_t c = 0; c < count; ++c) {
      // 0 + x, not x: a total starts from +0 as a fresh sum does, so a sum of -0s is +0.
      double a = rb == 0 ? 0.0 : first[c], b = rb == 0 ? 0.0 : second[c];
      for (int64_t s = c * spatial, end = s + spatial; s < end; ++s) {
        a += rowFirst[s];
        b += rowSecond[s];
      }
      first[c] = a;
      second[c] = b;
    }
  }
}

// The statistics of channel block `cb`: partial sums of its row blocks (already in `partials`, computed by
// InterleavedTrainingForward's partials pass) combined in row-block order, then per channel in position order.
template <typename T>
void combineStats(const Geometry& g, const T* input, const Tiling& tiling, const TaskRows& partials, int64_t cb,
                  ChannelStats* stats) {
  const Block first = tiling.block(g, cb, 0);
  if (kShiftedStats<T>) {
    const int64_t count = first.c1 - first.c0;
    Scratch totals(2, count);
    addInOrder(g, tiling, partials, cb, count, totals.row(0), totals.row(1));
    for (int64_t c = first.c0; c < first.c1; ++c) {
      stats[c - first.c0] = fromShiftedSums(g, input, c, static_cast<double>(input[c * g.spatial]),
                                            totals.row(0)[c - first.c0], totals.row(1)[c - first.c0]);
    }
    return;
  }
  for (int64_t c = first.c0; c < first.c1; ++c) {
    const int64_t from = (c - first.c0) * g.spatial;
    double varSum = 0;
    for (int64_t rb = 0; rb < tiling.rowBlocks; ++rb) {
      const double* squareRow = partials.row(cb, rb, 2);
      for (int64_t s = 0; s < g.spatial; ++s) varSum += squareRow[from + s];
    }
    stats[c - first.c0].varSum = varSum;
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
    CompensatedSum total;
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
