// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Every tuning constant of the kernels, and the sizes they derive from the caches, in one place (oneDNN
// keeps its counterparts in jit_bnorm_conf_t). The planner (planner.h) turns them into each call's
// PhasePlan; the walks read the loop-shape constants below directly. Each says what it tunes and the
// measurement that chose it.

// ---------------------------------------------------------------------------------------------------
// The traversal and the tiling (planner.h)

// Values per channel and batch item from which a channel is walked on its own (planar): shorter rows pay a
// fresh run per row for the prefetchers, and a head and a tail, whatever the vector width (measured with
// AVX2, (256, 256, 7, 7): planar 4x slower in training forward, 2.5x in backward). Longer rows gain from
// it (interleaved A/B, both orders, against the interleaved walk: (8, 32, 128, 128) training forward
// 4.7x and 5.3x, backward 2.6x and 3.1x; (32, 64, 56, 56) 2.3x and 2.0x).
constexpr int64_t kPlanarMinSpatial = 64;
// Work units smaller than this many elements stay on one thread.
constexpr int64_t kMinElementsPerTask = 1 << 15;
// At most this many positions (channels x S) per row of an interleaved block, bounding the scratch rows.
constexpr int64_t kMaxBlockPositions = 1024;
// Chunks of statistics accumulators (three registers per part: pivot, sum, square) the registers hold.
constexpr int kHeldStatChunks = Floats::lanes >= 16 ? 4 : 2;
// Chunks of float coefficients (four registers each) the registers hold beside a pass's values.
constexpr int kHeldFloatChunks = Floats::lanes >= 16 ? 4 : 2;
// Rows of at most this many bytes are walked in column groups by the elementwise passes when they stay
// in cache.
constexpr int64_t kColumnRowBytes = 1024;
// The least a column group must read of each row to beat the accumulator rows (narrower groups read
// every row in strided pieces: AVX2, (4096, 256) eval 3x a copy so).
constexpr int64_t kMinGroupBytes = 256;

// Sizes from the caches found at load (kernel/cache_sizes.h; the fallback reproduces the Zen 4 machine
// these were measured on: 1 MB L2, 32 MB L3 per core complex).
// Interleaved blocks aim at this many bytes of input, so that the passes over a block hit the L2 cache.
inline int64_t blockBytes() { return cacheSizes().l2Bytes / 4; }
// Outputs of at least this many bytes are large: one core's passes over them run from memory rather than
// from its share of the last-level cache, and their stores are streamed (see streamsStores).
inline int64_t streamBytes() { return cacheSizes().lastLevelBytes / 4; }
// Tensors below this size are taken to come from the last-level cache between calls, for the
// elementwise walks (floatBlockWalk). The reduction walks (statisticsWalk, gradientSumsWalk) take column
// groups only below streamBytes(): a group reads every row in strided pieces, which the prefetchers follow
// worse. One limit for both was measured both ways (interleaved A/B against these two, both orders,
// AVX-512, one thread): LLC/2 for the reductions too made (12288, 256) backward 1.27x-1.29x slower; LLC/4
// for the elementwise walks too made (1024, 64, 7, 7) backward 1.45x-1.47x and training forward
// 1.32x-1.33x slower, (3072, 1030) evaluation 1.13x-1.19x slower.
inline int64_t cachedBytes() { return cacheSizes().lastLevelBytes / 2; }
// The most bytes a pass's tensors together may take and still be taken to stay in the last-level cache:
// all of it but an eighth, left to everything else there (code, stacks, the runtime's heap) and to
// replacement that is not exactly least-recently-used. (8, 32, 128, 128), input and output exactly the
// 32 MB cache, trained 1.1x-1.4x slower on 2 threads with its output stored through the cache.
inline int64_t passCacheBytes() { return cacheSizes().lastLevelBytes - cacheSizes().lastLevelBytes / 8; }

// ---------------------------------------------------------------------------------------------------
// The shape of the loops

// Rows of an interleaved block that share each load and store of the per-position accumulators.
constexpr int kAccumulatedRows = 4;
// Rows of an interleaved block that share each load of the elementwise passes' coefficients (the double
// passes' forBlockChunks, the float passes' row groups and streamed rows).
constexpr int kRowsPerCoefficientLoad = 4;
constexpr int64_t kLineBytes = 64;
// How far ahead of a row's reduction its lines are requested.
constexpr int64_t kPrefetchBytes = 2048;

// How far ahead the walks over the rows of an interleaved tensor (a chunk of each of a few rows in turn,
// or a column group of every row) request their inputs: such runs are ones the hardware prefetchers
// follow poorly. At least kMinRowsAhead rows and kRowsAheadBytes of rows: with 8 rows alone, the 256-byte
// rows of channels-last (32, 64, 56, 56) were requested 2 KB ahead, too close to cover the memory's
// latency (a C test streaming 25.7 MB through an AVX-512 loop: 0.9-1.2 ms with requests 2 KB ahead,
// 0.73-0.82 ms 8 to 16 KB ahead). 8 KB ahead, that row at 1 thread (interleaved A/B, both orders,
// docs/PERFORMANCE.md "Prefetch distance"): AVX-512 eval 1.18x-1.25x faster, training forward
// 1.06x-1.18x, backward 1.01x-1.23x; AVX2 eval 1.32x-1.35x, training forward 1.28x-1.34x, backward
// 1.35x-1.66x. Rows of 1 KB and more keep their 8 rows.
constexpr int64_t kMinRowsAhead = 8;
constexpr int64_t kRowsAheadBytes = 8192;
inline int64_t rowsAhead(int64_t rowBytes) {
  const int64_t rows = rowBytes > 0 ? (kRowsAheadBytes + rowBytes - 1) / rowBytes : kMinRowsAhead;
  return rows > kMinRowsAhead ? rows : kMinRowsAhead;
}
