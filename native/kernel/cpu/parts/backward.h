// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Backward.

// ---------------------------------------------------------------------------------------------------
// Backward

// Runs `walk(pass)` with the pass of grad_input in floats: GradientInFloats or NormalizeInFloats, with
// grad_output read through `mask`.
template <typename T, typename GradientMask, typename Walk>
inline void withGradientPass(bool readsInput, const T* input, const T* gradOutput, T* gradInput,
                             const GradientMask& mask, Walk&& walk) {
  if (readsInput) {
    walk(GradientPass<T, GradientMask>{input, gradOutput, gradInput, mask});
  } else {
    walk(NormalizePass<T, GradientMask, NoEpilogue>{gradOutput, gradInput, mask, {}});
  }
}

// dx over one row in double: dx = (dy - gradMean - (x - center) * projection) * scale, or dy * scale.
template <typename T, typename GradientMask>
inline void gradientRow(const T* x, const T* dy, T* dx, int64_t length, const GradientAffine& coef, bool readsInput,
                        bool streaming, const GradientMask& mask) {
  const Doubles center = Doubles::broadcast(coef.center), gradMean = Doubles::broadcast(coef.gradMean),
                projection = Doubles::broadcast(coef.projection), scale = Doubles::broadcast(coef.scale);
  if (readsInput) {
    mapRow2(
        x, dy, dx, length, [&](Doubles xs, Doubles dys) { return (dys - gradMean - (xs - center) * projection) * scale; },
        streaming, mask);
  } else {
    mapRow(dy, dx, length, [&](Doubles dys) { return dys * scale; }, streaming, mask, NoEpilogue{});
  }
}

// sum(dy) and sum((x - center) dy) over channel c, in double.
struct GradientSums {
  double sumDy = 0, dotp = 0;
};

template <typename T, typename GradientMask>
GradientSums planarGradientSums(const Geometry& g, const T* input, const T* gradOutput, int64_t c, double center,
                                const GradientMask& mask) {
  constexpr int parts = Chunk<T>::parts;
  const int64_t stride = g.channels * g.spatial;
  const Doubles centerV = Doubles::broadcast(center);
  Doubles gradSums[2 * parts], products[2 * parts];
  for (int i = 0; i < 2 * parts; ++i) gradSums[i] = products[i] = Doubles::zero();
  for (int64_t b = 0; b < g.batch; ++b) {
    const int64_t offset = b * stride + c * g.spatial;
    const T* const rows[2] = {input + offset, gradOutput + offset};
    forChunks<T, 2>(rows, g.spatial, [&](const Chunk<T> (&chunks)[2], int slot, int valid, int64_t at) {
      const Chunk<T> dy = mask(chunks[1], rows[1] + at, valid);
      for (int p = 0; p < parts; ++p) {
        const Doubles centered = keepValid(chunks[0].part[p] - centerV, p, valid);
        gradSums[slot * parts + p] = gradSums[slot * parts + p] + dy.part[p];
        products[slot * parts + p] = fmadd(centered, dy.part[p], products[slot * parts + p]);
      }
    });
  }
  for (int i = 1; i < 2 * parts; ++i) {
    gradSums[0] = gradSums[0] + gradSums[i];
    products[0] = products[0] + products[i];
  }
  return {gradSums[0].sum(), products[0].sum()};
}

// dx of planar channel c from column `at` of its coefficients, last rows first (the ones the fused
// backward's sums just left in cache), in floats where the coefficients are: the fused backward's and
// SyncBatchNorm's split pass.
template <typename T, typename GradientMask>
void planarGradInput(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, int64_t c,
                     const PassCoefficients<T>& coefficients, int64_t at, bool readsInput, bool streaming,
                     const GradientMask& mask) {
  const int64_t stride = g.channels * g.spatial;
  if constexpr (kFloatArithmetic<T>) {
    if (coefficients.inFloats(at)) {
      const FloatLanes lanes = coefficients.lanesOf(at);
      withGradientPass(readsInput, input, gradOutput, gradInput, mask, [&](auto pass) {
        for (int64_t b = g.batch - 1; b >= 0; --b) rowInFloats(pass, b * stride + c * g.spatial, g.spatial, lanes, streaming);
      });
      return;
    }
  }
  const GradientAffine coef = coefficients.gradientOf(at);
  for (int64_t b = g.batch - 1; b >= 0; --b) {
    const int64_t offset = b * stride + c * g.spatial;
    gradientRow(input + offset, gradOutput + offset, gradInput + offset, g.spatial, coef, readsInput, streaming, mask);
  }
}

// One channel: its sums, then dx while its rows are still in cache (as in planarTrainingForward).
template <typename T, typename GradientMask>
void planarBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardChannels<T>& in,
                    int64_t c, bool streaming, const GradientMask& mask) {
  const GradientSums sums =
      in.needSums ? planarGradientSums(g, input, gradOutput, c, in.center[c], mask) : GradientSums{};
  PassCoefficients<T> coefficients(1);
  coefficients.put(0, finishGradients(in, c, sums.sumDy, sums.dotp), in.readsInput);
  if (gradInput != nullptr) {
    planarGradInput(g, input, gradOutput, gradInput, c, coefficients, 0, in.readsInput, streaming, mask);
  }
}

// sum(dy) and sum((x - center) dy) per position over a block whose rows are exactly kChunks chunks, the
// accumulators in registers (rows added one at a time in order: the same bits as the scratch version).
template <typename T, int kChunks, typename GradientMask>
void gradientPartialsHeld(const T* input, const T* gradOutput, const Block& block, const double* centers,
                          double* gradSums, double* products, const GradientMask& mask) {
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
      const T* dy = gradOutput + offset + k * lanes;
      const Chunk<T> dys = mask(Chunk<T>::load(dy), dy, lanes);
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

// Interleaved backward: partial sums per (channel block, row block), combined per channel in order, then
// the gradient; the phases of a channel block run back to back when it has a single row block.
template <typename T, typename GradientMask>
class InterleavedBackward {
 public:
  InterleavedBackward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardChannels<T>& in,
                      const PhasePlan& plan, const GradientMask& mask)
      : g_(g), input_(input), gradOutput_(gradOutput), gradInput_(gradInput), in_(in), mask_(mask), plan_(plan),
        tiling_(plan.tiling), padded_(paddedLength<T>(tiling_.channels * g.spatial)),
        partials_(tiling_, 2, padded_),
        coefficients_(Tiling{tiling_.channels, tiling_.channelBlocks, 1, 1}, 4, padded_),
        inFloats_(new FloatCoefficients*[static_cast<size_t>(tiling_.channelBlocks)]()) {}
  ~InterleavedBackward() {
    for (int64_t cb = 0; cb < tiling_.channelBlocks; ++cb) delete inFloats_[cb];
    delete[] inFloats_;
  }
  InterleavedBackward(const InterleavedBackward&) = delete;
  InterleavedBackward& operator=(const InterleavedBackward&) = delete;

  void run() {
    if (tiling_.rowBlocks == 1) {
      forEachChannelBlock(g_, tiling_, [&](int64_t cb) {
        fillCenters(cb);
        sums(cb, 0);
        combine(cb);
        apply(cb, 0);
      });
      return;
    }
    forEachChannelBlock(g_, tiling_, [&](int64_t cb) { fillCenters(cb); });
    forEachTask(g_, tiling_, [&](int64_t cb, int64_t rb) { sums(cb, rb); });
    forEachChannelBlock(g_, tiling_, [&](int64_t cb) { combine(cb); });
    forEachTask(g_, tiling_, [&](int64_t cb, int64_t rb) { apply(cb, rb); });
  }

 private:
  static constexpr int parts = Chunk<T>::parts;
  static constexpr int lanes = Chunk<T>::lanes;

  // Row 0 of a channel block's coefficients holds the centers the sums are taken about, then dx's center.
  void fillCenters(int64_t cb) {
    const Block first = tiling_.block(g_, cb, 0);
    double* centers = coefficients_.row(cb, 0, 0);
    const double* center = in_.center;
    const int64_t spatial = g_.spatial;
    for (int64_t c = first.c0; c < first.c1; ++c) {
      for (int64_t s = (c - first.c0) * spatial, end = s + spatial; s < end; ++s) centers[s] = center[c];
    }
  }

  // sum(dy) and sum((x - center) dy) per position of a block, into partials rows 0 and 1.
  void sums(int64_t cb, int64_t rb) {
    const Block block = tiling_.block(g_, cb, rb);
    double* gradSums = partials_.row(cb, rb, 0);
    double* products = partials_.row(cb, rb, 1);
    const double* centers = coefficients_.row(cb, 0, 0);
    const bool columnGroups = plan_.reductionOf(cb) == Walk::ColumnGroups;
    if (!in_.needSums || !columnGroups) {
      for (int64_t i = 0; i < padded_; ++i) gradSums[i] = products[i] = 0;
    }
    if (!in_.needSums) return;
    if (columnGroups) {
      forColumnGroups<kHeldStatChunks>(block.positions, lanes, [&](int64_t at, auto chunks) {
        gradientPartialsHeld<T, decltype(chunks)::value>(input_ + at, gradOutput_ + at, block, centers + at,
                                                          gradSums + at, products + at, mask_);
      });
      return;
    }
    sumsInAccumulatorRows(block, centers, gradSums, products);
  }

  // kAccumulatedRows rows per load and store of the accumulators, added in row order (the same bits as
  // the held version); the inputs are requested rowsAhead() rows ahead, as the prefetchers follow such
  // interleaved runs poorly.
  void sumsInAccumulatorRows(const Block& block, const double* centers, double* gradSums, double* products) const {
    // Locals, not members: the compiler must otherwise reload them after every store to the sums.
    const T *input = input_, *gradOutput = gradOutput_;
    const GradientMask mask = mask_;
    const int64_t batch = g_.batch;
    const int64_t rowsAheadCount = rowsAhead(block.stride * static_cast<int64_t>(sizeof(T)));
    const int64_t ahead = rowsAheadCount * block.stride;
    for (int64_t b = block.b0; b < block.b1; b += kAccumulatedRows) {
      const int rows = static_cast<int>(minInt64(kAccumulatedRows, block.b1 - b));
      for (int64_t at = 0; at < block.positions; at += lanes) {
        const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
        const auto center = ScratchChunk<T>::load(centers, at);
        auto sum = ScratchChunk<T>::load(gradSums, at), product = ScratchChunk<T>::load(products, at);
        for (int r = 0; r < rows; ++r) {
          const int64_t offset = block.rowOffset(b + r) + at;
          if (b + r + rowsAheadCount < batch) {
            prefetch(input + offset + ahead);
            prefetch(gradOutput + offset + ahead);
          }
          const Chunk<T> xs = loadChunk(input + offset, valid);
          const Chunk<T> dys = mask(loadChunk(gradOutput + offset, valid), gradOutput + offset, valid);
          for (int p = 0; p < parts; ++p) {
            sum.v[p] = sum.v[p] + dys.part[p];
            product.v[p] = fmadd(xs.part[p] - center.v[p], dys.part[p], product.v[p]);
          }
        }
        sum.store(gradSums, at);
        product.store(products, at);
      }
    }
  }

  // The sums of channel block cb in row-block order, then every channel's gradients and coefficients:
  // all at once in floats (float32, coefficient_rows.h), else one channel at a time; laid out for the
  // block's grad_input.
  void combine(int64_t cb) {
    const Block first = tiling_.block(g_, cb, 0);
    const int64_t count = first.c1 - first.c0;
    Scratch totals(2, count);
    const double *sumDy = totals.row(0), *dotp = totals.row(1);
    addInOrder(g_, tiling_, partials_, cb, count, totals.row(0), totals.row(1));
    PassCoefficients<T> coefficients(count);
    if constexpr (kFloatArithmetic<T>) {
      if (gradientFloatRows(in_, first.c0, count, sumDy, dotp, coefficients)) {
        coefficients.markAllInFloats();
        layOut(cb, first, coefficients);
        return;
      }
    }
    for (int64_t c = 0; c < count; ++c) {
      coefficients.put(c, finishGradients(in_, first.c0 + c, sumDy[c], dotp[c]), in_.readsInput);
    }
    layOut(cb, first, coefficients);
  }

  // A channel block's coefficients as its grad_input reads them: per position in floats where every
  // channel allows it, else rows 0-3 of coefficients_ (center, gradMean, projection, scale).
  void layOut(int64_t cb, const Block& first, const PassCoefficients<T>& coefficients) {
    if (gradInput_ == nullptr) return;
    const int64_t count = coefficients.count();
    if constexpr (kFloatArithmetic<T>) {
      if (coefficients.allInFloats()) {
        inFloats_[cb] = new FloatCoefficients(g_, coefficients, 0, count, gradInput_ + first.first);
        return;
      }
    }
    double* const rows[4] = {coefficients_.row(cb, 0, 0), coefficients_.row(cb, 0, 1), coefficients_.row(cb, 0, 2),
                             coefficients_.row(cb, 0, 3)};
    layOutExact(coefficients, 0, count, g_.spatial, 4, rows);
  }

  void apply(int64_t cb, int64_t rb) {
    if (gradInput_ == nullptr) return;
    const Block block = tiling_.block(g_, cb, rb);
    if constexpr (kFloatArithmetic<T>) {
      if (inFloats_[cb] != nullptr) {
        withGradientPass(in_.readsInput, input_, gradOutput_, gradInput_, mask_, [&](auto pass) {
          blockInFloats(pass, g_, block, *inFloats_[cb], plan_.elementwiseOf(cb), plan_.streaming);
        });
        return;
      }
    }
    applyInDouble(block, cb);
  }

  // dx in double, four rows per load of the coefficients.
  void applyInDouble(const Block& block, int64_t cb) const {
    const double *centers = coefficients_.row(cb, 0, 0), *gradMeans = coefficients_.row(cb, 0, 1),
                 *projections = coefficients_.row(cb, 0, 2), *scales = coefficients_.row(cb, 0, 3);
    forBlockChunks<T>(
        block,
        [&](int64_t at) {
          return ScratchChunks4<T>{ScratchChunk<T>::load(centers, at), ScratchChunk<T>::load(gradMeans, at),
                                   ScratchChunk<T>::load(projections, at), ScratchChunk<T>::load(scales, at)};
        },
        [&](int64_t offset, int valid, const ScratchChunks4<T>& k) {
          Chunk<T> dys = mask_(loadChunk(gradOutput_ + offset, valid), gradOutput_ + offset, valid);
          const Chunk<T> xs = in_.readsInput ? loadChunk(input_ + offset, valid) : dys;
          for (int p = 0; p < parts; ++p) {
            dys.part[p] = in_.readsInput ? (dys.part[p] - k.gradMean.v[p] - (xs.part[p] - k.center.v[p]) * k.projection.v[p]) * k.scale.v[p]
                                           : dys.part[p] * k.scale.v[p];
          }
          storeChunk(dys, gradInput_ + offset, valid);
        });
  }

  const Geometry& g_;
  const T* input_;
  const T* gradOutput_;
  T* gradInput_;
  const BackwardChannels<T>& in_;
  const GradientMask mask_;
  const PhasePlan& plan_;
  const Tiling tiling_;
  const int64_t padded_;
  TaskRows partials_;      // sum(dy), sum((x - center) dy)
  TaskRows coefficients_;  // per channel block: center, gradMean, projection, scale (the double path)
  FloatCoefficients** inFloats_;  // per channel block: float coefficients, or null (the double path)
};

template <typename T, typename GradientMask>
void backward(const Geometry& g, const T* input, const T* gradOutput, T* gradInput, const BackwardChannels<T>& in) {
  const GradientMask mask{};
  const PhasePlan plan = planPhaseNow<T>(g, Phase::Backward, in.readsInput ? 3 : 2);
  if (plan.interleaved) {
    InterleavedBackward<T, GradientMask>(g, input, gradOutput, gradInput, in, plan, mask).run();
  } else {
    const bool streaming = plan.streaming;
    auto body = [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) planarBackward(g, input, gradOutput, gradInput, in, c, streaming, mask);
      if (streaming) vec::streamFence();
    };
    parallelOver(plan.split, body);
  }
}
