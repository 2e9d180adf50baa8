// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The walks of the interleaved elementwise passes over a block: by chunk positions, a few rows per load
// of the coefficients (the double passes), and as one flat stream (forStreamedRows, also the float
// passes' streamed-rows walk); the double normalization of a block.

// y = (x - center) * scale + shift over a block, coefficients per position in three scratch rows.
// Walks a block a position (chunk) at a time, kRowsPerCoefficientLoad rows per visit: coefficientsAt(at)
// loads what the rows share, then row(offset, valid, coefficients) handles the chunk of each row at
// `offset`.
template <typename T, typename Load, typename Row>
void forBlockChunks(const Block& block, Load&& coefficientsAt, Row&& row) {
  constexpr int lanes = Chunk<T>::lanes;
  for (int64_t b = block.b0; b < block.b1; b += kRowsPerCoefficientLoad) {
    const int rows = static_cast<int>(minInt64(kRowsPerCoefficientLoad, block.b1 - b));
    for (int64_t at = 0; at < block.positions; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, block.positions - at));
      const auto coefficients = coefficientsAt(at);
      for (int r = 0; r < rows; ++r) row(block.rowOffset(b + r) + at, valid, coefficients);
    }
  }
}

// Walks a block whose rows follow each other in memory (a single channel block: stride == positions, a
// whole number of chunks) as one flat array, for outputs streamed with non-temporal stores. The walk
// starts at the output's first aligned chunk, `head` values in, so every whole chunk it stores is
// aligned; read from there, each `positions` values are a row shifted by head, whose chunks take the
// coefficients of positions head + at on, wrapping into the next row: coefficientsAt(at) must load
// positions up to positions + lanes, the first ones repeated. kRows shifted rows share each load of the
// coefficients; row(offset, valid, coefficients, stream) handles one chunk. Interleaved rows are runs the
// hardware prefetchers follow poorly: prefetchAt(offset) requests the inputs rowsAhead() rows ahead of
// each chunk, while inside the tensor's `length` (measured on Zen 4, channels-last (256, 256, 7, 7):
// about 20% faster). The caller fences once per parallel range (a fence per block measured
// slower: it waits for the stores to drain).
// Always inlined: out of line, the walk reaches its operation's pointers through references that every
// (may-alias) store invalidates (measured 20-40% of channels-last (256, 256, 7, 7) eval).
template <typename T, int kRows, typename Load, typename Prefetch, typename Row>
BATCHNORM_ALWAYS_INLINE inline void forStreamedRows(const Block& block, const T* output, int64_t length, Load&& coefficientsAt,
                     Prefetch&& prefetchAt, Row&& row) {
  constexpr int lanes = Chunk<T>::lanes;
  const int64_t positions = block.positions, start = block.rowOffset(block.b0), rows = block.b1 - block.b0;
  const int64_t head = headBeforeAlignment(output + start, rows * positions);
  const int64_t ahead = rowsAhead(positions * static_cast<int64_t>(sizeof(T))) * positions;
  if (head > 0) row(start, static_cast<int>(head), coefficientsAt(0), false);
  // Whole shifted rows; with a head, the last row's remaining positions - head values follow them.
  const int64_t shifted = head > 0 ? rows - 1 : rows;
  for (int64_t b = 0; b < shifted; b += kRows) {
    const int count = static_cast<int>(minInt64(kRows, shifted - b));
    const int64_t first = start + head + b * positions;
    for (int64_t at = 0; at < positions; at += lanes) {
      const auto coefficients = coefficientsAt(head + at);
      for (int r = 0; r < count; ++r) {
        const int64_t offset = first + r * positions + at;
        if (offset + ahead < length) prefetchAt(offset + ahead);
        row(offset, lanes, coefficients, true);
      }
    }
  }
  if (head > 0) {
    const int64_t first = start + head + shifted * positions;
    for (int64_t at = 0; at < positions - head; at += lanes) {
      const int valid = static_cast<int>(minInt64(lanes, positions - head - at));
      row(first + at, valid, coefficientsAt(head + at), valid == lanes);
    }
  }
}

template <typename T>
struct ScratchChunks3 {
  ScratchChunk<T> a, b, c;
};

// dx's coefficients at one position (the double path of the backward).
template <typename T>
struct ScratchChunks4 {
  ScratchChunk<T> center, gradMean, projection, scale;
};

template <typename T, typename Epilogue>
void normalizeBlock(const T* input, T* output, const Block& block, const double* centers, const double* scales,
                    const double* shifts, const Epilogue& epilogue) {
  constexpr int parts = Chunk<T>::parts;
  forBlockChunks<T>(
      block,
      [&](int64_t at) {
        return ScratchChunks3<T>{ScratchChunk<T>::load(centers, at), ScratchChunk<T>::load(scales, at),
                                 ScratchChunk<T>::load(shifts, at)};
      },
      [&](int64_t offset, int valid, const ScratchChunks3<T>& k) {
        Chunk<T> x = loadChunk(input + offset, valid);
        for (int p = 0; p < parts; ++p) x.part[p] = fmadd(x.part[p] - k.a.v[p], k.b.v[p], k.c.v[p]);
        storeChunk(epilogue(x, output + offset, valid), output + offset, valid);
      });
}
