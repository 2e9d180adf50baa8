// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Training and evaluation forward.

// ---------------------------------------------------------------------------------------------------
// Training forward

// y = (x - center) * scale + shift over one row of channel c: in floats where its coefficients are
// (float32 on the FMA paths), otherwise in double. There, float32 is rounded once from double either
// way, and folding the centering into the shift, x * scale + (shift - center * scale), saves a
// subtraction per element and costs at most |mean| / std * 2^-53 relative, far below float32
// resolution. float64 keeps the centered form, which its 1e-10 contract needs when |mean| >> std;
// non-finite coefficients keep it too, so special values propagate as before.
template <typename T, typename Epilogue>
inline void affineRow(const T* in, T* out, int64_t length, const PassCoefficients<T>& coefficients, int64_t c,
                      bool streaming, const Epilogue& epilogue) {
  if constexpr (kFloatArithmetic<T>) {
    if (coefficients.inFloats(c)) {
      rowInFloats(NormalizePass<T, NoGradientMask, Epilogue>{in, out, {}, epilogue}, 0, length,
                  coefficients.lanesOf(c), streaming);
      return;
    }
  }
  const ChannelAffine affine = coefficients.affineOf(c);
  const Doubles scale = Doubles::broadcast(affine.scale);
  const double folded = affine.shift - affine.center * affine.scale;
  if (Element<T>::kFloatPrecision && std::isfinite(folded) && std::isfinite(affine.scale)) {
    const Doubles shift = Doubles::broadcast(folded);
    mapRow(in, out, length, [&](Doubles x) { return fmadd(x, scale, shift); }, streaming, NoGradientMask{}, epilogue);
    return;
  }
  const Doubles center = Doubles::broadcast(affine.center), shift = Doubles::broadcast(affine.shift);
  mapRow(in, out, length, [&](Doubles x) { return fmadd(x - center, scale, shift); }, streaming, NoGradientMask{},
         epilogue);
}

template <typename T, typename Epilogue>
void planarTrainingForward(const Geometry& g, const T* input, T* output, const ForwardChannels<T>& in, int64_t c,
                           bool streaming, const Epilogue& epilogue) {
  const ChannelStats stats = planarStats(g, input, c);
  PassCoefficients<T> affine(1);
  affine.put(0, finishStatistics(in, c, stats.mean, stats.meanLow, stats.varSum));
  const int64_t stride = g.channels * g.spatial;
  // Last rows first: they are the ones the statistics pass left in cache, so a channel larger than the
  // cache still finds most of itself there (in order, each row would evict the next one needed).
  for (int64_t b = g.batch - 1; b >= 0; --b) {
    const int64_t offset = b * stride + c * g.spatial;
    affineRow(input + offset, output + offset, g.spatial, affine, 0, streaming, epilogue);
  }
}

// Interleaved training forward. A task is one (channel block, row block); with a single row block per
// channel block, one task runs every phase of its block while the block is in cache.
template <typename T, typename Epilogue>
class InterleavedTrainingForward {
 public:
  InterleavedTrainingForward(const Geometry& g, const T* input, T* output, const ForwardChannels<T>& in,
                             const PhasePlan& plan, const Epilogue& epilogue)
      : g_(g), input_(input), output_(output), in_(in), epilogue_(epilogue), plan_(plan), tiling_(plan.tiling),
        padded_(paddedLength<T>(tiling_.channels * g.spatial)), partials_(tiling_, 3, padded_),
        coefficients_(Tiling{tiling_.channels, tiling_.channelBlocks, 1, 1}, 3, padded_),
        stats_(new ChannelStats[static_cast<size_t>(tiling_.channels * tiling_.channelBlocks)]),
        inFloats_(new FloatCoefficients*[static_cast<size_t>(tiling_.channelBlocks)]()) {}
  ~InterleavedTrainingForward() {
    for (int64_t cb = 0; cb < tiling_.channelBlocks; ++cb) delete inFloats_[cb];
    delete[] inFloats_;
    delete[] stats_;
  }
  InterleavedTrainingForward(const InterleavedTrainingForward&) = delete;
  InterleavedTrainingForward& operator=(const InterleavedTrainingForward&) = delete;

  void run() {
    if (tiling_.rowBlocks == 1) {
      forEachChannelBlock(g_, tiling_, [&](int64_t cb) {
        partials(cb, 0);
        if (!kShiftedStats<T>) {
          means(cb);
          squares(cb, 0);
        }
        finishStats(cb);
        normalize(cb, 0);
      });
      return;
    }
    forEachTask(g_, tiling_, [&](int64_t cb, int64_t rb) { partials(cb, rb); });
    if (!kShiftedStats<T>) {
      forEachChannelBlock(g_, tiling_, [&](int64_t cb) { means(cb); });
      forEachTask(g_, tiling_, [&](int64_t cb, int64_t rb) { squares(cb, rb); });
    }
    forEachChannelBlock(g_, tiling_, [&](int64_t cb) { finishStats(cb); });
    forEachTask(g_, tiling_, [&](int64_t cb, int64_t rb) { normalize(cb, rb); });
  }

 private:
  ChannelStats* statsOf(int64_t cb) const { return stats_ + cb * tiling_.channels; }

  // float32: shifted sums and squares about each channel's first value (rows 0, 1; pivots in row 2).
  // float64: compensated sums (rows 0, 1), whose means the squares pass then centers on.
  void partials(int64_t cb, int64_t rb) {
    const Block block = tiling_.block(g_, cb, rb);
    if (kShiftedStats<T>) {
      double* pivots = partials_.row(cb, rb, 2);
      for (int64_t c = block.c0; c < block.c1; ++c) {
        broadcastRow(pivots, (c - block.c0) * g_.spatial, g_.spatial, static_cast<double>(input_[c * g_.spatial]));
      }
      shiftedPartials(input_, block, plan_.reductionOf(cb), pivots, partials_.row(cb, rb, 0), partials_.row(cb, rb, 1));
    } else {
      sumPartials(input_, block, partials_.row(cb, rb, 0), partials_.row(cb, rb, 1));
    }
  }
  void means(int64_t cb) {
    combineMeans<T>(g_, tiling_, partials_, cb, statsOf(cb), coefficients_.row(cb, 0, 0), coefficients_.row(cb, 0, 1));
  }
  void squares(int64_t cb, int64_t rb) {
    squarePartials(input_, tiling_.block(g_, cb, rb), coefficients_.row(cb, 0, 0), coefficients_.row(cb, 0, 1),
                   partials_.row(cb, rb, 2));
  }

  // The statistics of channel block cb, the operator's normalization per channel, and its coefficients
  // laid out for the block's normalization.
  void finishStats(int64_t cb) {
    const Block first = tiling_.block(g_, cb, 0);
    const int64_t count = first.c1 - first.c0;
    PassCoefficients<T> coefficients(count);
    if constexpr (kFloatArithmetic<T>) {
      if (finishStatsInFloats(cb, first, coefficients)) {
        layOut(cb, first, coefficients);
        return;
      }
    }
    ChannelStats* stats = statsOf(cb);
    combineStats(g_, input_, tiling_, partials_, cb, stats);
    for (int64_t c = first.c0; c < first.c1; ++c) {
      const ChannelStats& st = stats[c - first.c0];
      coefficients.put(c - first.c0, finishStatistics(in_, c, st.mean, st.meanLow, st.varSum));
    }
    layOut(cb, first, coefficients);
  }

  // finishStats for float32 in floats: each channel's sums in the same order as combineStats, then every
  // channel at once (coefficient_rows.h), else from the statistics one channel at a time. False, with
  // nothing written, where that does not apply: eps = 0 or sums that are not finite (the special cases of
  // invStd and fromShiftedSums).
  bool finishStatsInFloats(int64_t cb, const Block& first, PassCoefficients<T>& coefficients) {
    if (in_.eps == 0) return false;
    const int64_t count = coefficients.count();
    Scratch scratch(6, count);
    double *sum = scratch.row(0), *squares = scratch.row(1), *pivot = scratch.row(2);
    const int64_t spatial = g_.spatial;
    addInOrder(g_, tiling_, partials_, cb, count, sum, squares);
    for (int64_t c = 0; c < count; ++c) {
      if (!std::isfinite(sum[c]) || !std::isfinite(squares[c])) return false;
      pivot[c] = static_cast<double>(input_[(first.c0 + c) * spatial]);
    }
    double* const stats[3] = {scratch.row(3), scratch.row(4), scratch.row(5)};
    if (statisticsFloatRows(in_, first.c0, count, sum, squares, pivot, stats, coefficients)) {
      coefficients.markAllInFloats();
    } else {
      for (int64_t c = 0; c < count; ++c) {
        coefficients.put(c, statisticsAffine(in_, first.c0 + c, stats[0][c], stats[1][c], stats[2][c]));
      }
    }
    return true;
  }

  // A channel block's coefficients as its normalization reads them: per position in floats where every
  // channel allows it, else rows 0-2 of coefficients_ (center, scale, shift).
  void layOut(int64_t cb, const Block& first, const PassCoefficients<T>& coefficients) {
    const int64_t count = coefficients.count();
    if constexpr (kFloatArithmetic<T>) {
      if (coefficients.allInFloats()) {
        inFloats_[cb] = new FloatCoefficients(g_, coefficients, 0, count, output_ + first.first);
        return;
      }
    }
    double* const rows[3] = {coefficients_.row(cb, 0, 0), coefficients_.row(cb, 0, 1), coefficients_.row(cb, 0, 2)};
    layOutExact(coefficients, 0, count, g_.spatial, 3, rows);
  }

  void normalize(int64_t cb, int64_t rb) {
    const Block block = tiling_.block(g_, cb, rb);
    if constexpr (kFloatArithmetic<T>) {
      if (inFloats_[cb] != nullptr) {
        blockInFloats(NormalizePass<T, NoGradientMask, Epilogue>{input_, output_, {}, epilogue_}, g_, block,
                      *inFloats_[cb], plan_.elementwiseOf(cb), plan_.streaming);
        return;
      }
    }
    normalizeBlock(input_, output_, block, coefficients_.row(cb, 0, 0), coefficients_.row(cb, 0, 1),
                   coefficients_.row(cb, 0, 2), epilogue_);
  }

  const Geometry& g_;
  const T* input_;
  T* output_;
  const ForwardChannels<T>& in_;
  const Epilogue epilogue_;
  const PhasePlan& plan_;
  const Tiling tiling_;
  const int64_t padded_;
  TaskRows partials_;      // per task: partial sums (float32: sums, squares, pivots; float64: highs, lows, squares)
  TaskRows coefficients_;  // per channel block: center, scale, shift (float64 first the mean's high and low parts)
  ChannelStats* stats_;    // per channel
  FloatCoefficients** inFloats_;  // per channel block: float coefficients, or null (the double path)
};

template <typename T, typename Epilogue>
void trainingForward(const Geometry& g, const T* input, T* output, const ForwardChannels<T>& in) {
  const Epilogue epilogue{};
  const PhasePlan plan = planPhaseNow<T>(g, Phase::TrainingForward, 2);
  if (plan.interleaved) {
    InterleavedTrainingForward<T, Epilogue>(g, input, output, in, plan, epilogue).run();
  } else {
    const bool streaming = plan.streaming;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarTrainingForward(g, input, output, in, c, streaming, epilogue);
      if (streaming) vec::streamFence();
    };
    parallelOver(plan.split, body);
  }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation forward: a per-channel affine map, as fast as a copy

// Eval of float32 with S < lanes in floats, tiled by evalTiling, each block's coefficients laid out once.
template <typename T, typename Epilogue>
void affineInterleavedInFloats(const Geometry& g, const T* input, T* output, const PassCoefficients<T>& channels,
                               const PhasePlan& plan, const Epilogue& epilogue) {
  const Tiling tiling = plan.tiling;
  FloatCoefficients** blocks = new FloatCoefficients*[static_cast<size_t>(tiling.channelBlocks)];
  for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) {
    const int64_t c0 = cb * tiling.channels;
    blocks[cb] = new FloatCoefficients(g, channels, c0, minInt64(tiling.channels, g.channels - c0),
                                       output + c0 * g.spatial);
  }
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t rb = task / tiling.channelBlocks, cb = task % tiling.channelBlocks;
      blockInFloats(NormalizePass<T, NoGradientMask, Epilogue>{input, output, {}, epilogue}, g,
                    tiling.block(g, cb, rb), *blocks[cb], plan.elementwiseOf(cb), plan.streaming);
    }
    vec::streamFence();
  };
  parallelOver(plan.split, run);  // the tasks of taskSplit, rows first
  for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) delete blocks[cb];
  delete[] blocks;
}

// Eval of float32 in floats (the FMA paths): every channel's coefficients at once into `coefficients`,
// then across channels where S < lanes, else the flat walk. False, with nothing written but
// `coefficients`, when a channel's coefficients need the double path.
template <typename T, typename Epilogue>
bool evalInFloats(const Geometry& g, const T* input, T* output, const EvalChannels<T>& channels,
                  PassCoefficients<T>& coefficients, const Epilogue& epilogue) {
  if (!evalFloatRows(channels, g.channels, coefficients)) return false;
  coefficients.markAllInFloats();
  const PhasePlan plan = planPhaseNow<T>(g, Phase::EvalForward, 2);
  if (plan.interleaved) {
    affineInterleavedInFloats(g, input, output, coefficients, plan, epilogue);
  } else {
    normalizeFlatInFloats(g, input, output, coefficients, plan, epilogue);
  }
  return true;
}

// Eval from coefficients: across channels where S < lanes (in double), else planar rows (each in floats
// where its channel's coefficients are).
template <typename T, typename Epilogue>
void affineForward(const Geometry& g, const T* input, T* output, const PassCoefficients<T>& coefficients,
                   const Epilogue& epilogue) {
  const PhasePlan plan = planPhaseNow<T>(g, Phase::EvalForward, 2, false);
  if (plan.interleaved) {
    const Tiling tiling = plan.tiling;
    forEachTask(g, tiling, [&](int64_t cb, int64_t rb) {
      const Block block = tiling.block(g, cb, rb);
      Scratch scratch(3, paddedLength<T>(block.positions));
      double* const rows[3] = {scratch.row(0), scratch.row(1), scratch.row(2)};
      layOutExact(coefficients, block.c0, block.c1 - block.c0, g.spatial, 3, rows);
      normalizeBlock(input, output, block, rows[0], rows[1], rows[2], epilogue);
    });
    return;
  }
  const bool streaming = plan.streaming;
  // Planar: one (batch item, channel) row at a time.
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t rowIndex = begin; rowIndex < end; ++rowIndex) {
      const int64_t offset = rowIndex * g.spatial;
      affineRow(input + offset, output + offset, g.spatial, coefficients, rowIndex % g.channels, streaming, epilogue);
    }
    if (streaming) vec::streamFence();
  };
  parallelOver(plan.split, body);
}

// SyncBatchNorm's normalization with the merged statistics (kernel/split_phases.h): the operator's
// coefficients of the channels in `range` (`channels` holds them, range.begin's first). All channels on
// both traversals; a part of them on planar tensors only (their rows as affineForward's): false, writing
// nothing, where the tensor is interleaved.
template <typename T, typename Epilogue>
bool splitAffine(const Geometry& g, ChannelRange range, const T* input, T* output, const ChannelAffine* channels) {
  if (range.begin == 0 && range.end == g.channels) {
    PassCoefficients<T> coefficients(g.channels);
    for (int64_t c = 0; c < g.channels; ++c) coefficients.put(c, channels[c]);
    affineForward(g, input, output, coefficients, Epilogue{});
    return true;
  }
  const PhasePlan plan = planPhaseNow<T>(g, Phase::EvalForward, 2, false);
  if (plan.interleaved) return false;
  PassCoefficients<T> coefficients(range.size());
  for (int64_t k = 0; k < range.size(); ++k) coefficients.put(k, channels[k]);
  const bool streaming = plan.streaming;
  const Epilogue epilogue{};
  // Rows (b, c) of the range, b-major; task i is row (i / size, range.begin + i % size).
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t k = i % range.size();
      const int64_t offset = ((i / range.size()) * g.channels + range.begin + k) * g.spatial;
      affineRow(input + offset, output + offset, g.spatial, coefficients, k, streaming, epilogue);
    }
    if (streaming) vec::streamFence();
  };
  parallelOver(g.batch * range.size(), g.spatial, body);
  return true;
}

template <typename T, typename Epilogue>
void evalForward(const Geometry& g, const T* input, T* output, const EvalChannels<T>& channels) {
  PassCoefficients<T> coefficients(g.channels);
  if constexpr (kFloatArithmetic<T>) {
    if (evalInFloats(g, input, output, channels, coefficients, Epilogue{})) return;
  }
  for (int64_t c = 0; c < g.channels; ++c) coefficients.put(c, evalAffine(channels, c));
  affineForward(g, input, output, coefficients, Epilogue{});
}
