// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Backward.

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
