// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Training and evaluation forward.

// ---------------------------------------------------------------------------------------------------
// Training forward

// A channel's normalization, prepared once for all the rows it maps.
struct PreparedAffine {
  ChannelAffine exact;
  FloatChannel inFloats;
  bool useFloats = false;
};

template <typename T>
PreparedAffine prepareAffine(const ChannelAffine& affine) {
  PreparedAffine prepared;
  prepared.exact = affine;
  if (kFloatArithmetic<T>) prepared.useFloats = NormalizeInFloats::coefficients(affine, prepared.inFloats);
  return prepared;
}

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
      rowInFloats(NormalizeInFloats{in, out}, 0, length, prepared.inFloats, streaming);
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
      if (FloatChannel* channels = floatChannels<NormalizeInFloats>(affines, first.c1 - first.c0)) {
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
        blockInFloats(NormalizeInFloats{input, output}, g, block, *inFloats[cb]);
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
                                      const FloatChannel* channels) {
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
      blockInFloats(NormalizeInFloats{input, output}, g, tiling.block(g, cb, rb), *blocks[cb]);
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
      if (FloatChannel* inFloats = floatChannels<NormalizeInFloats>(channels, g.channels)) {
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
    if (FloatChannel* inFloats = floatChannels<NormalizeInFloats>(channels, g.channels)) {
      normalizeFlatInFloats(g, input, output, inFloats, streaming);
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
