// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Chunks of a row, loads and stores with tails, prefetch, compensated sums, scratch and the tiling of the interleaved traversal.

inline int clampInt(int64_t value, int low, int high) {
  return static_cast<int>(value < low ? low : value > high ? high : value);
}
inline int64_t maxInt64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t minInt64(int64_t a, int64_t b) { return a < b ? a : b; }

// Chunk<T>: `lanes` consecutive elements of T held as double parts, so every storage type shares the
// double arithmetic: two parts a Floats register wide where T has at most float's precision, else one.
template <typename T, bool = Element<T>::kFloatPrecision>
struct Chunk;

template <typename T>
struct Chunk<T, true> {
  static constexpr int parts = 2;
  static constexpr int lanes = Floats::lanes;
  Doubles part[parts];

  static Chunk load(const T* p) {
    Chunk c;
    Element<T>::loadWidened(p, c.part[0], c.part[1]);
    return c;
  }
  static Chunk loadFirst(const T* p, int count) {
    Chunk c;
    widen(Element<T>::loadFirst(p, count), c.part[0], c.part[1]);
    return c;
  }
  void store(T* p) const { Element<T>::storeNarrowed(p, part[0], part[1]); }
  void storeFirst(T* p, int count) const { Element<T>::storeFirst(narrow(part[0], part[1]), p, count); }
  void stream(T* p) const { Element<T>::stream(narrow(part[0], part[1]), p); }
};

template <typename T>
struct Chunk<T, false> {
  static constexpr int parts = 1;
  static constexpr int lanes = Doubles::lanes;
  Doubles part[parts];

  static Chunk load(const T* p) {
    Chunk c;
    c.part[0] = Element<T>::load(p);
    return c;
  }
  static Chunk loadFirst(const T* p, int count) {
    Chunk c;
    c.part[0] = Element<T>::loadFirst(p, count);
    return c;
  }
  void store(T* p) const { Element<T>::store(part[0], p); }
  void storeFirst(T* p, int count) const { Element<T>::storeFirst(part[0], p, count); }
  void stream(T* p) const { Element<T>::stream(part[0], p); }
};

// Zeroes the lanes of part `p` that lie at or beyond `count` valid elements of the chunk.
inline Doubles keepValid(Doubles v, int p, int count) {
  return keepFirst(v, clampInt(count - p * Doubles::lanes, 0, Doubles::lanes));
}

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

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

// Visits the chunks of `kRows` rows of `length` elements read together (x and dy of the backward sums):
// full chunks two at a time (slots 0 and 1 feed independent accumulator chains), then a single one, then
// a zero-padded partial one; visit(chunks, slot, valid, at) gets the chunk of every row at position `at`.
template <typename T, int kRows, typename Visit>
inline void forChunks(const T* const (&rows)[kRows], int64_t length, Visit&& visit) {
  constexpr int lanes = Chunk<T>::lanes;
  Chunk<T> chunks[kRows];
  for (const T* row : rows) prefetchRowStart(row, length);
  int64_t i = 0;
  for (; i + 2 * lanes <= length; i += 2 * lanes) {
    for (const T* row : rows) prefetchAhead(row, i, 2 * lanes, length);
    for (int slot = 0; slot < 2; ++slot) {
      for (int r = 0; r < kRows; ++r) chunks[r] = Chunk<T>::load(rows[r] + i + slot * lanes);
      visit(chunks, slot, lanes, i + slot * lanes);
    }
  }
  for (; i + lanes <= length; i += lanes) {
    for (int r = 0; r < kRows; ++r) chunks[r] = Chunk<T>::load(rows[r] + i);
    visit(chunks, 0, lanes, i);
  }
  if (i < length) {
    const int count = static_cast<int>(length - i);
    for (int r = 0; r < kRows; ++r) chunks[r] = Chunk<T>::loadFirst(rows[r] + i, count);
    visit(chunks, 1, count, i);
  }
}

// The chunks of one row (see above).
template <typename T, typename Visit>
inline void forChunks(const T* row, int64_t length, Visit&& visit) {
  const T* const rows[1] = {row};
  forChunks<T, 1>(rows, length,
                  [&](const Chunk<T> (&chunks)[1], int slot, int valid, int64_t) { visit(chunks[0], slot, valid); });
}

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

// out[i] = f(in[i]) over a row, for elementwise passes (out may alias in); the values read go through
// `inputHook`, the values stored through `outputHook` (hooks.h).
template <typename T, typename Map, typename InputHook, typename OutputHook>
inline void mapRow(const T* in, T* out, int64_t length, Map&& map, bool streaming, const InputHook& inputHook,
                   const OutputHook& outputHook) {
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    const Chunk<T> x = inputHook(loadChunk(in + at, count), in + at, count);
    Chunk<T> y;
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p]);
    putChunk(outputHook(y, out + at, count), out + at, count, stream);
  });
}

// out[i] = f(a[i], b[i]) over a row (see mapRow); b's values go through `bHook` (backward's gradient mask).
template <typename T, typename Map, typename BHook>
inline void mapRow2(const T* a, const T* b, T* out, int64_t length, Map&& map, bool streaming, const BHook& bHook) {
  forRowChunks(out, length, streaming, [&](int64_t at, int count, bool stream) {
    const Chunk<T> x = loadChunk(a + at, count);
    Chunk<T> y = bHook(loadChunk(b + at, count), b + at, count);
    for (int p = 0; p < Chunk<T>::parts; ++p) y.part[p] = map(x.part[p], y.part[p]);
    putChunk(y, out + at, count, stream);
  });
}

// The vector form: lane-wise TwoSum. float64 input needs it so that x - mean keeps its digits when
// |mean| >> std; float32 input summed in double is already exact enough, so it skips the compensation.
template <typename T>
struct VectorSum {
  static constexpr bool compensated = !Element<T>::kFloatPrecision;
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
  void addTo(CompensatedSum& total) const {
    double highs[Doubles::lanes], lows[Doubles::lanes];
    high.store(highs);
    low.store(lows);
    for (int i = 0; i < Doubles::lanes; ++i) total.add(highs[i]);
    for (int i = 0; i < Doubles::lanes; ++i) total.low += lows[i];
  }
};

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
