// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// float32 normalization in float arithmetic.

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
