// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Backward.

// ---------------------------------------------------------------------------------------------------
// Backward

// grad_input of a channel in floats: the training formula (GradientInFloats), or in evaluation,
// dx = dy * scale, as a normalization of dy with center 0 and shift 0 (NormalizeInFloats).
inline bool gradientInFloats(const GradientAffine& coef, bool readsInput, FloatChannel& out) {
  if (readsInput) return GradientInFloats::coefficients(coef, out);
  ChannelAffine scaling;
  scaling.scale = coef.scale;
  return NormalizeInFloats::coefficients(scaling, out);
}

// Runs `walk(pass)` with the pass of grad_input in floats: GradientInFloats or NormalizeInFloats.
template <typename Walk>
inline void withGradientPass(bool readsInput, const float* input, const float* gradOutput, float* gradInput,
                             Walk&& walk) {
  if (readsInput) {
    walk(GradientInFloats{input, gradOutput, gradInput});
  } else {
    walk(NormalizeInFloats{gradOutput, gradInput});
  }
}

// dx over one row in double: dx = (dy - gradMean - (x - center) * projection) * scale, or dy * scale.
template <typename T>
inline void gradientRow(const T* x, const T* dy, T* dx, int64_t length, const GradientAffine& coef, bool readsInput,
                        bool streaming) {
  const Doubles center = Doubles::broadcast(coef.center), gradMean = Doubles::broadcast(coef.gradMean),
                projection = Doubles::broadcast(coef.projection), scale = Doubles::broadcast(coef.scale);
  if (readsInput) {
    mapRow2(
        x, dy, dx, length, [&](Doubles xs, Doubles dys) { return (dys - gradMean - (xs - center) * projection) * scale; },
        streaming);
  } else {
    mapRow(dy, dx, length, [&](Doubles dys) { return dys * scale; }, streaming);
  }
}

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
  if constexpr (kFloatArithmetic<T>) {
    FloatChannel channel;
    if (gradientInFloats(coef, plan.readsInput, channel)) {
      withGradientPass(plan.readsInput, input, gradOutput, gradInput, [&](auto pass) {
        // Last rows first, as in planarTrainingForward: they are still cached from the reduction.
        for (int64_t b = g.batch - 1; b >= 0; --b) rowInFloats(pass, b * stride + c * g.spatial, g.spatial, channel, streaming);
      });
      return;
    }
  }
  for (int64_t b = g.batch - 1; b >= 0; --b) {
    const int64_t offset = b * stride + c * g.spatial;
    gradientRow(input + offset, gradOutput + offset, gradInput + offset, g.spatial, coef, plan.readsInput, streaming);
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
  // Per channel block: center, gradMean, projection, scale (the double path).
  TaskRows coefficients(Tiling{tiling.channels, tiling.channelBlocks, 1, 1}, 4, padded);
  // Per channel block, its float coefficients (float32 on the FMA paths; null: the double path).
  FloatCoefficients** inFloats = new FloatCoefficients*[static_cast<size_t>(tiling.channelBlocks)]();

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
  // 1024) backward), and to floats where every channel of the block allows it.
  auto combine = [&](int64_t cb) {
    const Block first = tiling.block(g, cb, 0);
    double *centers = coefficients.row(cb, 0, 0), *gradMeans = coefficients.row(cb, 0, 1),
           *projections = coefficients.row(cb, 0, 2), *scales = coefficients.row(cb, 0, 3);
    const int64_t count = first.c1 - first.c0;
    FloatChannel* channels = kFloatArithmetic<T> ? new FloatChannel[static_cast<size_t>(count)] : nullptr;
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
      broadcastRow(centers, from, g.spatial, coef.center);
      broadcastRow(gradMeans, from, g.spatial, coef.gradMean);
      broadcastRow(projections, from, g.spatial, coef.projection);
      broadcastRow(scales, from, g.spatial, coef.scale);
      if (channels != nullptr && !gradientInFloats(coef, plan.readsInput, channels[c - first.c0])) {
        delete[] channels;
        channels = nullptr;
      }
    }
    if (channels != nullptr && gradInput != nullptr) {
      inFloats[cb] = new FloatCoefficients(g, channels, count, reinterpret_cast<float*>(gradInput) + first.first);
    }
    delete[] channels;
  };
  auto applyPass = [&](int64_t cb, int64_t rb) {
    if (gradInput == nullptr) return;
    const Block block = tiling.block(g, cb, rb);
    if constexpr (kFloatArithmetic<T>) {
      if (inFloats[cb] != nullptr) {
        withGradientPass(plan.readsInput, input, gradOutput, gradInput,
                         [&](auto pass) { blockInFloats(pass, g, block, *inFloats[cb]); });
        return;
      }
    }
    const double* centers = coefficients.row(cb, 0, 0);
    const double* gradMeans = coefficients.row(cb, 0, 1);
    const double* projections = coefficients.row(cb, 0, 2);
    const double* scales = coefficients.row(cb, 0, 3);
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
          if (plan.readsInput) {
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
  for (int64_t cb = 0; cb < tiling.channelBlocks; ++cb) delete inFloats[cb];
  delete[] inFloats;
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
