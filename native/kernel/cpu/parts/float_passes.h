// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The elementwise passes of float32 tensors in float arithmetic: normalization and grad_input.
//
// Where fmadd on Floats is fused, float32 outputs are computed without widening to double (conversions
// cost more than the arithmetic). Both passes take four float coefficients per channel, made once from
// the operator's double ones, and subtract a float center first: d = x - c_f is exact whenever x lies
// within a factor of two of c_f (Sterbenz), the |mean| >> std case where a folded x * a + b would lose
// digits; otherwise it is off by half an ulp of d. The bound of each pass is written beside its
// coefficients (u = 2^-24, terms of order u^2 dropped); test/parity.test.ts checks both per fixture.
// Channels whose coefficients are not finite or far out of float range keep the double path, so special
// values propagate as there.

// y = (x - center) * scale + shift as d = x - c_f, y = fma(d, s_hi, fma(d, s_lo, t_f)), with s = s_hi + s_lo
// and the center's rounding c - c_f folded into t_f.
// Bound: |y - exact| <= u (|x - center| |scale| + 2 |shift| + |y|): d, t_f and the outer fma round once
// each (the split scale is exact to u^2). PyTorch's own float32 arithmetic rounds three or four times.
// s_hi is s rounded toward zero, so s_lo has s's sign and an infinite x still gives an infinite y, not
// Inf - Inf; a zero s_lo becomes the smallest subnormal of that sign for the same reason (it moves y by
// less than a tie-break).
struct NormalizeInFloats {
  enum : int { kCenter, kScaleHigh, kScaleLow, kShift };  // normalizeInFloats' k[] (kernel/channel_math.h)
};

// A pass over tensors of T: the values it reads go through a hook (backward's gradient mask, where the
// pass computes dx = dy * scale), the values it stores through another (the forward's epilogue).
template <typename T, typename InputHook, typename OutputHook>
struct NormalizePass {
  using Value = T;
  const T* input;
  T* output;
  InputHook inputHook;
  OutputHook outputHook;

  template <typename Lanes>
  Floats apply(int64_t offset, int valid, const Lanes& c) const {
    const T* from = input + offset;
    const Floats x =
        inputHook(valid == Floats::lanes ? Element<T>::load(from) : Element<T>::loadFirst(from, valid), from, valid);
    const Floats d = x - c.k[NormalizeInFloats::kCenter];
    const Floats y = fmadd(d, c.k[NormalizeInFloats::kScaleHigh],
                           fmadd(d, c.k[NormalizeInFloats::kScaleLow], c.k[NormalizeInFloats::kShift]));
    return outputHook(y, output + offset, valid);
  }
  T* destination() const { return output; }
  void prefetchInputs(int64_t offset) const { prefetch(input + offset); }
};

// dx = (dy - gradMean - (x - center) * projection) * scale as d = x - c_f,
// dx = fma(d, xScale, fma(dy, dyScale, constant)), with xScale = float(-projection * scale),
// dyScale = float(scale) and constant = float(((center - c_f) * projection - gradMean) * scale).
// Bound: |dx - exact| <= u (2 |dy scale| + 2 |gradMean scale| + 2 |(x - center) projection scale| + |dx|):
// the three coefficients round once each (u times their term), d once unless exact (u |(x - center)
// projection scale|), the inner fma once about dy scale + constant, the outer once about dx. (The folded
// dx = dy a + x b + c would add u |x projection scale|, unbounded as |mean| / std grows.)
struct GradientInFloats {
  enum : int { kCenter, kXScale, kDyScale, kConstant };  // gradientInFloats' k[] (kernel/channel_math.h)
};

// GradientInFloats over tensors of T, grad_output read through the gradient mask.
template <typename T, typename GradientMask>
struct GradientPass {
  using Value = T;
  const T* input;
  const T* gradOutput;
  T* gradInput;
  GradientMask mask;

  template <typename Lanes>
  Floats apply(int64_t offset, int valid, const Lanes& c) const {
    const bool whole = valid == Floats::lanes;
    const T *x = input + offset, *dy = gradOutput + offset;
    const Floats xs = whole ? Element<T>::load(x) : Element<T>::loadFirst(x, valid);
    const Floats dys = mask(whole ? Element<T>::load(dy) : Element<T>::loadFirst(dy, valid), dy, valid);
    return fmadd(xs - c.k[GradientInFloats::kCenter], c.k[GradientInFloats::kXScale],
                 fmadd(dys, c.k[GradientInFloats::kDyScale], c.k[GradientInFloats::kConstant]));
  }
  T* destination() const { return gradInput; }
  void prefetchInputs(int64_t offset) const {
    prefetch(input + offset);
    prefetch(gradOutput + offset);
  }
};

template <typename T>
inline void putFloats(Floats y, T* out, int count, bool stream) {
  if (count < Floats::lanes) {
    Element<T>::storeFirst(y, out, count);
  } else if (stream) {
    Element<T>::stream(y, out);
  } else {
    Element<T>::store(y, out);
  }
}

// A pass over one row of `length` values at `offset`, all of one channel (planar rows).
template <typename Pass>
inline void rowInFloats(Pass pass, int64_t offset, int64_t length, const FloatLanes& lanes, bool streaming) {
  auto* out = pass.destination() + offset;
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    putFloats(pass.apply(offset + at, count, lanes), out + at, count, stream);
  });
}

// The float rows of `count` channels of a PassCoefficients from `first` on, laid out per position: four
// rows of `padded` floats, each channel's value repeated over its positions (the interleaved walks load
// a chunk of positions at a time). Each row repeats its first lanes after its last position, so that a
// chunk of a row that continues into the next row (forStreamedRows) loads its coefficients in one piece.
// Position p of every row sits at the same offset within a chunk's alignment as p of `alignedLike` (the
// output's first row): where the output is stored by aligned chunks, the coefficients are loaded by
// aligned chunks too, not split across two cache lines (measured on Zen 4: channels-last (256, 256, 7, 7)
// eval with input and output misaligned to each other 0.49-0.54 ms with split coefficient loads, 0.40 ms
// aligned).
class FloatCoefficients {
 public:
  template <typename T>
  FloatCoefficients(const Geometry& g, const PassCoefficients<T>& channels, int64_t first, int64_t count,
                    const T* alignedLike)
      : padded_(paddedLength<float>(count * g.spatial) + Floats::lanes),
        storage_(new float[static_cast<size_t>(4 * padded_ + Floats::lanes)]) {
    constexpr uintptr_t alignment = Floats::lanes * sizeof(float);
    // The output's values before its next chunk alignment, as the same number of floats.
    const uintptr_t wanted =
        reinterpret_cast<uintptr_t>(alignedLike) % (Floats::lanes * sizeof(T)) / sizeof(T) * sizeof(float);
    const uintptr_t have = reinterpret_cast<uintptr_t>(storage_) % alignment;
    data_ = storage_ + (wanted + alignment - have) % alignment / sizeof(float);
    const int64_t spatial = g.spatial, positions = count * spatial;
    // One row at a time through a local pointer: through the members, every store would reload them
    // (measured: 39 instructions per channel of (N, 1024), a third of an eval call's per-channel work).
    for (int k = 0; k < 4; ++k) {
      float* row = data_ + k * padded_;
      const float* values = channels.floats[k] + first;
      if (spatial == 1) {
        for (int64_t c = 0; c < count; ++c) row[c] = values[c];
      } else {
        for (int64_t c = 0; c < count; ++c) {
          const float value = values[c];
          for (int64_t s = c * spatial, end = s + spatial; s < end; ++s) row[s] = value;
        }
      }
      // The lanes after the last position repeat the row from its start (a counter, not `%`: 64 integer
      // divisions took a quarter of a (2, 4) eval call).
      for (int64_t s = positions, from = 0; positions > 0 && s < positions + Floats::lanes; ++s) {
        row[s] = row[from];
        from = from + 1 == positions ? 0 : from + 1;
      }
    }
  }
  ~FloatCoefficients() { delete[] storage_; }
  FloatCoefficients(const FloatCoefficients&) = delete;
  FloatCoefficients& operator=(const FloatCoefficients&) = delete;
  // The rows as a value for a walk to keep in locals: read through the object, they would be reloaded
  // after every (may-alias) store of the output (measured 20-40% of channels-last (256, 256, 7, 7) eval).
  struct Rows {
    const float* data;
    int64_t padded;
    FloatLanes at(int64_t position) const {
      return {{Floats::load(data + position), Floats::load(data + padded + position),
               Floats::load(data + 2 * padded + position), Floats::load(data + 3 * padded + position)}};
    }
  };
  Rows rows() const { return {data_, padded_}; }

 private:
  int64_t padded_;
  float* storage_;
  float* data_;
};

// The walks of a pass in floats over an interleaved block (rows of `positions` values, `stride` apart).

// `kRows` rows per load of the coefficients, ordinary stores.
template <int kRows, typename Pass>
BATCHNORM_ALWAYS_INLINE inline void rowGroupsInFloats(Pass pass, const Block& block, const FloatCoefficients::Rows coefficients) {
  constexpr int lanes = Floats::lanes;
  auto* out = pass.destination();
  for (int64_t b = block.b0; b < block.b1; b += kRows) {
    const int count = static_cast<int>(minInt64(kRows, block.b1 - b));
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const FloatLanes lanesAt = coefficients.at(at);
      for (int r = 0; r < count; ++r) {
        const int64_t offset = block.rowOffset(b + r) + at;
        putFloats(pass.apply(offset, valid, lanesAt), out + offset, valid, false);
      }
    }
  }
}

// kChunks chunks from `column` down every row of the block, their coefficients held in registers.
template <int kChunks, typename Pass>
BATCHNORM_ALWAYS_INLINE inline void columnGroupInFloats(Pass pass, const Block& block,
                                                        const FloatCoefficients::Rows coefficients, int64_t column) {
  constexpr int lanes = Floats::lanes;
  auto* out = pass.destination();
  FloatLanes held[kChunks];
  for (int k = 0; k < kChunks; ++k) held[k] = coefficients.at(column + k * lanes);
  for (int64_t b = block.b0; b < block.b1; ++b) {
    const int64_t offset = block.rowOffset(b) + column;
    for (int k = 0; k < kChunks; ++k) {
      putFloats(pass.apply(offset + k * lanes, lanes, held[k]), out + offset + k * lanes, lanes, false);
    }
  }
}

// `walk` and `streaming` from the call's PhasePlan (streaming applies to the streamed-rows walk;
// the others keep their stores).
template <typename Pass>
inline void blockInFloats(Pass pass, const Geometry& g, const Block& block, const FloatCoefficients& coefficientsOf,
                          Walk walk, bool streaming) {
  const FloatCoefficients::Rows coefficients = coefficientsOf.rows();
  switch (walk) {
    case Walk::StreamedRows:
      forStreamedRows<typename Pass::Value, kRowsPerCoefficientLoad>(
          block, pass.destination(), g.elements(), [&](int64_t at) { return coefficients.at(at); },
          [&](int64_t offset) { pass.prefetchInputs(offset); },
          [&](int64_t offset, int valid, const FloatLanes& lanes, bool stream) {
            putFloats(pass.apply(offset, valid, lanes), pass.destination() + offset, valid, stream && streaming);
          });
      return;
    case Walk::ColumnGroups:
      forColumnGroups<kHeldFloatChunks>(block.positions, Floats::lanes, [&](int64_t at, auto chunks) {
        columnGroupInFloats<decltype(chunks)::value>(pass, block, coefficients, at);
      });
      return;
    case Walk::RowGroups:
      rowGroupsInFloats<kRowsPerCoefficientLoad>(pass, block, coefficients);
      return;
    default:  // Walk::SingleRows
      rowGroupsInFloats<1>(pass, block, coefficients);
      return;
  }
}

// Eval forward of a contiguous (N, C, S) float32 tensor with S >= lanes, walked as one flat array: a
// chunk then spans at most two channels, whose coefficients it joins. Short rows (7 x 7 = 49 values)
// cost no per-row head and tail this way, and the output is one stream that non-temporal stores can
// write whole cache lines of.
template <typename T, typename Epilogue>
void normalizeFlatInFloats(const Geometry& g, const T* input, T* output, const PassCoefficients<T>& channels,
                           const PhasePlan& plan, const Epilogue& epilogue) {
  const bool streaming = plan.streaming;
  constexpr int lanes = Floats::lanes;
  const int64_t total = g.elements();
  auto body = [&](int64_t beginChunk, int64_t endChunk) {
    // Made here, not captured: body's address goes to the thread pool, so a captured pass would be
    // reloaded from memory after every (may-alias) store (measured 10-20% of the (32, 64, 56, 56) eval).
    const NormalizePass<T, NoGradientMask, Epilogue> pass{input, output, {}, epilogue};
    float* const rows[4] = {channels.floats[0], channels.floats[1], channels.floats[2], channels.floats[3]};
    const int64_t begin = beginChunk * lanes, end = minInt64(endChunk * lanes, total);
    int64_t channel = (begin / g.spatial) % g.channels;
    int64_t left = g.spatial - begin % g.spatial;  // values of `channel` from the current position on
    FloatLanes current = FloatLanes::of(rows, channel);
    FloatLanes next = FloatLanes::of(rows, (channel + 1) % g.channels);
    forRowChunks(output + begin, end - begin, streaming, [&](int64_t at, int count, bool stream) {
      const Floats y = left >= count ? pass.apply(begin + at, count, current)
                                     : pass.apply(begin + at, count, current.joined(static_cast<int>(left), next));
      putFloats(y, output + begin + at, count, stream);
      left -= count;
      if (left <= 0) {  // count <= lanes <= S: at most one channel boundary per chunk
        channel = channel + 1 == g.channels ? 0 : channel + 1;
        left += g.spatial;
        current = next;
        next = FloatLanes::of(rows, channel + 1 == g.channels ? 0 : channel + 1);
      }
    });
    if (streaming) vec::streamFence();
  };
  parallelOver(plan.split, body);  // chunks of `lanes` values
}
