// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The planner: the only code that turns the tuning constants and cache sizes of tuning.h into decisions.
// planPhase answers, once per phase of a call, which traversal a tensor takes, how an interleaved
// traversal is tiled, which walk each block takes, whether outputs are streamed and how the work is
// split; the drivers run that PhasePlan and describe() reports it to JS (kernelPlan), so tests and
// `npm run bench` name the walks they cover.
//
// A tensor is (N, C, S) with S the values of a channel per batch item (channels-last: S = 1 and C
// positions per row). Planar: one channel at a time, its N rows of S values. Interleaved: blocks of
// channels across rows, each row of a block `positions` contiguous values, vectorized across channels.
//
// | phase                          | shape class                                        | walk             |
// |--------------------------------|----------------------------------------------------|------------------|
// | every phase                    | S >= kPlanarMinSpatial                             | planar-rows      |
// | eval forward, float32 in floats| S >= lanes                                         | flat-joined      |
// | statistics (float32)           | rows of whole chunks in one held group, or any     | column-groups    |
// |                                | width of whole chunks in a tensor not large        |                  |
// | statistics (float64), sums     | otherwise                                          | accumulator-rows |
// | gradient sums                  | rows of whole chunks in one held group, or wider   | column-groups    |
// |                                | ones (groups of >= kMinGroupBytes) when not large  |                  |
// | normalize, grad_input (floats) | rows that follow each other in a large tensor      | streamed-rows    |
// |                                | rows of whole chunks, at most kColumnRowBytes, in  | column-groups    |
// |                                | a tensor that stays in cache                       |                  |
// |                                | other rows of a tensor that stays in cache         | row-groups       |
// |                                | a larger one                                       | single-rows      |
// | normalize, grad_input (double) | interleaved                                        | row-groups       |
//
// "Large": at least streamBytes() (largeOutput), a size class independent of the thread count. Whether
// the output is then streamed does depend on it (streamsStores). "Stays in cache": below cachedBytes()
// (tuning.h says why the reductions and the elementwise walks keep these two limits).
// Why each walk exists, with the figure that justified it, is beside its predicate below; README
// "Performance" lists them with their bench rows.

enum class Walk { PlanarRows, FlatJoined, ColumnGroups, AccumulatorRows, StreamedRows, RowGroups, SingleRows };

inline const char* walkName(Walk walk) {
  switch (walk) {
    case Walk::PlanarRows: return "planar-rows";
    case Walk::FlatJoined: return "flat-joined";
    case Walk::ColumnGroups: return "column-groups";
    case Walk::AccumulatorRows: return "accumulator-rows";
    case Walk::StreamedRows: return "streamed-rows";
    case Walk::RowGroups: return "row-groups";
    case Walk::SingleRows: return "single-rows";
  }
  return "";
}

template <typename T>
bool interleavedTraversal(const Geometry& g) {
  return g.spatial < kPlanarMinSpatial;
}

// Whether a tensor of this many elements is large (at least streamBytes()). The walks are chosen by this
// size class, never by the thread count: a reduction's walk fixes its order of additions, and results
// must not depend on the threads.
template <typename T>
bool largeElements(int64_t elements) {
  return elements * static_cast<int64_t>(sizeof(T)) >= streamBytes();
}
template <typename T>
bool largeOutput(const Geometry& g) {
  return largeElements<T>(g.elements());
}

// Whether an elementwise pass that touches `tensors` tensors of g's size (the inputs it reads and the
// output it writes) stores its output with non-temporal stores, on `threads` threads. Only how the
// output is stored depends on the threads; the values are the same bits.
// One thread: every large output. The core's own bandwidth to the last-level cache bounds the pass, and
// streamed stores take the output off it (no read-for-ownership, no write-back through the cache):
// (256, 256, 7, 7) eval 1.3x faster streamed, although its input and output would fit in the cache.
// More threads: only where the pass's tensors together outgrow the last-level cache, so the output
// goes to memory anyway. Streamed stores all go to memory, whose write bandwidth is shared by the
// cores (and, on a virtual machine, by its neighbours), while each core brings its own bandwidth to the
// cache: on 2 threads, (256, 256, 7, 7) eval took the same 0.30 ms streamed as on one thread, and 0.14
// to 0.18 ms with its output left in the cache (docs/PERFORMANCE.md, "Two threads").
// An evaluation forward is one pass that reads each input value once and writes its output once,
// keeping nothing in a core's L2 for later: on several threads its tensors may fill every thread's L2 as
// well as the L3 (Zen's L3 holds what the L2s evict), with no margin. (8, 32, 128, 128), input and output
// exactly the 32 MB L3, evaluated 1.24x to 1.45x faster on 2 threads with its output stored through the
// caches (interleaved A/B, both orders, four runs). The training and backward passes re-read each
// channel's or block's input from the L2 right after its reduction, so their outputs must not push it
// out: passCacheBytes() alone (that row trained 1.1x-1.4x slower unstreamed).
template <typename T>
bool streamsStores(const Geometry& g, Phase phase, int tensors, int threads) {
  if (!largeOutput<T>(g)) return false;
  if (threads <= 1) return true;
  const int64_t bytes = tensors * g.elements() * static_cast<int64_t>(sizeof(T));
  if (phase == Phase::EvalForward) return bytes > cacheSizes().lastLevelBytes + threads * cacheSizes().l2Bytes;
  return bytes > passCacheBytes();
}
template <typename T>
bool staysInCache(const Geometry& g) {
  return g.elements() * static_cast<int64_t>(sizeof(T)) < cachedBytes();
}

// How a reduction's interleaved traversal cuts the tensor. Channel blocks: enough input bytes per row to
// read in runs the prefetcher follows (at least four chunks), few enough positions to bound the scratch
// rows. Row blocks: all rows while a channel block stays within blockBytes() (its passes then run back to
// back in L2); otherwise fixed row blocks whose partial sums are combined in order (channels-last and
// long (N, C) tensors). Both depend only on the shape, so the reduction order never depends on the thread
// count.
template <typename T>
Tiling reductionTiling(const Geometry& g) {
  Tiling t;
  const int64_t element = static_cast<int64_t>(sizeof(T)), block = blockBytes();
  const int64_t bytesPerChannel = maxInt64(1, g.batch * g.spatial * element);
  const int64_t minChannels = (4 * Chunk<T>::lanes + g.spatial - 1) / g.spatial;
  const int64_t maxChannels = maxInt64(1, kMaxBlockPositions / g.spatial);
  int64_t channels = block / bytesPerChannel;
  // When rows must be split anyway, take the widest row segments: longer contiguous runs per row.
  if (channels < minChannels) channels = maxChannels;
  t.channels = maxInt64(1, minInt64(minInt64(channels, maxChannels), g.channels));
  t.channelBlocks = (g.channels + t.channels - 1) / t.channels;
  const int64_t rowBytes = t.channels * g.spatial * element;
  t.rows = g.batch * rowBytes <= block ? maxInt64(1, g.batch) : maxInt64(2, block / rowBytes);
  // Whole groups of kAccumulatedRows, so every row block accumulates in the same pattern.
  t.rows = (t.rows + kAccumulatedRows - 1) / kAccumulatedRows * kAccumulatedRows;
  t.rowBlocks = maxInt64(1, (g.batch + t.rows - 1) / t.rows);
  return t;
}

// Eval forward walks across channels only where a row is shorter than a chunk: without a reduction,
// rows of a few chunks already vectorize well with broadcast coefficients.
template <typename T>
bool evalAcrossChannels(const Geometry& g) {
  return g.spatial < Chunk<T>::lanes;
}

// The eval tiling in floats: channel blocks of up to kMaxBlockPositions positions, tasks of rows first,
// so that each thread writes one contiguous part of the output (split by channels, threads would share
// the cache lines at block edges).
inline Tiling evalTiling(const Geometry& g) {
  Tiling tiling;
  tiling.channels = maxInt64(1, minInt64(g.channels, kMaxBlockPositions / g.spatial));
  tiling.channelBlocks = (g.channels + tiling.channels - 1) / tiling.channels;
  tiling.rows = maxInt64(kAccumulatedRows, kMinElementsPerTask / (tiling.channels * g.spatial));
  tiling.rowBlocks = maxInt64(1, (g.batch + tiling.rows - 1) / tiling.rows);
  return tiling;
}

// Whether rows of `positions` values of T are walked in column groups of up to kChunks chunks: rows of
// whole chunks that make a single group, or wider ones whose groups read at least kMinGroupBytes of each row.
template <typename T, int kChunks>
bool wideColumnGroups(int64_t positions) {
  constexpr int64_t lanes = Chunk<T>::lanes;
  return positions % lanes == 0 &&
         (positions <= kChunks * lanes || kChunks * lanes * static_cast<int64_t>(sizeof(T)) >= kMinGroupBytes);
}

// Whether a block's output can be walked as one flat stream (forStreamedRows): its rows follow each other,
// they are whole chunks, and the tensor is large.
template <typename T>
bool streamsRows(const Geometry& g, const Block& block) {
  return block.stride == block.positions && block.positions % Chunk<T>::lanes == 0 && largeOutput<T>(g);
}

// float32 statistics of an interleaved block. Column groups, each down all the block's rows (in L2): one
// group for rows that fit in the registers; for wider rows of a tensor that stays in cache; for those of a
// larger one only where a group reads at least kMinGroupBytes of each row (AVX2 channels-last (32, 64, 56,
// 56), groups of 64 bytes, measured 20% slower). Interleaved A/B against the accumulator rows, training
// forward: (4096, 256) 1.22x and 1.23x, channels-last (32, 64, 56, 56) 1.44x and 1.21x, (128, 1024) 1.41x
// and 1.18x.
// float64 statistics (two passes of compensated sums) always take the accumulator rows.
template <typename T>
Walk statisticsWalk(const Block& block) {
  if (!Element<T>::kFloatPrecision) return Walk::AccumulatorRows;
  const bool inCache = !largeElements<T>(block.tensorRows * block.stride);
  const bool wholeChunks = block.positions % Chunk<T>::lanes == 0;
  return wideColumnGroups<T, kHeldStatChunks>(block.positions) || (wholeChunks && inCache) ? Walk::ColumnGroups
                                                                                           : Walk::AccumulatorRows;
}

// The backward sums of an interleaved block: column groups for rows that fit in the registers and for
// tensors that stay in cache; otherwise accumulator rows with the inputs requested rowsAhead() rows
// ahead (measured on Zen 4: channels-last (256, 256, 7, 7) 15-20% faster than column groups, which read
// each row in strided pieces from memory). Interleaved A/B against accumulator rows everywhere, backward of
// channels-last (32, 64, 56, 56), six runs in both orders: 1.10x to 1.44x, median 1.23x ((128, 1024) and
// (4096, 256): 1.0x to 1.13x, where the simpler rule gives the same walk as the statistics).
template <typename T>
Walk gradientSumsWalk(const Geometry& g, const Block& block) {
  const bool fitsRegisters = block.positions <= kHeldStatChunks * Chunk<T>::lanes;
  return wideColumnGroups<T, kHeldStatChunks>(block.positions) && (fitsRegisters || !largeOutput<T>(g))
             ? Walk::ColumnGroups
             : Walk::AccumulatorRows;
}

// Normalization and grad_input of an interleaved block in floats. Rows that follow each other in a tensor
// too large for the cache: one flat stream with non-temporal stores, a few rows per load of the
// coefficients (interleaved A/B against the walk below, channels-last (256, 256, 7, 7) eval: 1.32x and
// 1.41x). Otherwise a tensor that stays in cache is bound by instructions: short rows of whole chunks go
// down the rows in column groups with their coefficients in registers (a load and a store per chunk;
// interleaved A/B against four rows per coefficient load, (4096, 256), four runs in both orders: eval
// 1.18x to 1.24x, training forward 1.19x to 1.27x); longer rows in groups of four rows that share each
// load of the coefficients (column groups down rows 4 KB apart: (128, 1024) 1.1x to 1.9x slower, as their
// loads alias the previous row's stores). A larger tensor is bound by memory, read fastest strictly in
// address order, one row at a time ((42000, 100) eval: 1.29x and 1.32x faster than four rows).
template <typename T>
Walk floatBlockWalk(const Geometry& g, const Block& block) {
  if (streamsRows<T>(g, block)) return Walk::StreamedRows;
  if (!staysInCache<T>(g)) return Walk::SingleRows;
  const bool shortRows = block.positions * static_cast<int64_t>(sizeof(T)) <= kColumnRowBytes;
  return shortRows && wideColumnGroups<T, kHeldFloatChunks>(block.positions) ? Walk::ColumnGroups
                                                                              : Walk::RowGroups;
}

// The fewest items a parallel range of parallelOver takes.
inline int64_t grainOf(int64_t elementsPerItem) {
  return maxInt64(1, kMinElementsPerTask / maxInt64(1, elementsPerItem));
}
// How many contiguous ranges parallelOver splits `count` items into on `threads` threads (as the pool
// does with workers for all of them).
inline int64_t parallelRanges(int64_t count, int64_t elementsPerItem, int threads) {
  return maxInt64(1, minInt64(threads, count / grainOf(elementsPerItem)));
}

// How a pass is split over the threads: parallelOver(items, itemElements), in ranges of at least
// grainOf(itemElements) items.
struct ParallelSplit {
  int64_t items = 0;
  int64_t itemElements = 1;
};
// Every (channel block, row block) task of an interleaved tiling (forEachTask).
inline ParallelSplit taskSplit(const Geometry& g, const Tiling& t) {
  return {t.channelBlocks * t.rowBlocks, t.channels * t.rows * g.spatial};
}
// Every channel block with all its rows (forEachChannelBlock).
inline ParallelSplit channelBlockSplit(const Geometry& g, const Tiling& t) {
  return {t.channelBlocks, t.channels * g.perChannel()};
}

// The plan of one phase of a call (oneDNN's jit_bnorm_conf_t): every decision the drivers take from the
// geometry and the thread count, made once by planPhase on the calling thread before any task runs. The
// drivers (forward.h, backward.h, split.h) switch on its fields and describe() serializes it, so
// kernelPlan reports the plan the drivers run; a driver that decided anything again from the geometry
// could run a walk kernelPlan does not name, and the walk-coverage test would miss it.
// Interleaved: every channel block but the last has the same width and walks alike; the last may be
// narrower and walk otherwise.
struct PhasePlan {
  bool interleaved = false;
  bool inFloats = false;               // the elementwise pass in float arithmetic (float_passes.h)
  Walk planarWalk = Walk::PlanarRows;  // planar: planar-rows, or flat-joined (eval in floats)
  Tiling tiling;                       // interleaved: the blocks
  Walk reduction[2] = {Walk::AccumulatorRows, Walk::AccumulatorRows};  // statistics or sums: full, last block
  Walk elementwise[2] = {Walk::RowGroups, Walk::RowGroups};            // normalization or grad_input
  bool streaming = false;  // the elementwise pass's output in non-temporal stores (streamsStores)
  ParallelSplit split;     // the elementwise pass's parallel split

  Walk reductionOf(int64_t channelBlock) const { return reduction[channelBlock + 1 == tiling.channelBlocks ? 1 : 0]; }
  Walk elementwiseOf(int64_t channelBlock) const {
    return elementwise[channelBlock + 1 == tiling.channelBlocks ? 1 : 0];
  }
};

// The plan of a phase whose elementwise pass touches `tensors` tensors (see streamsStores), on `threads`
// threads. `inFloats`: the float passes where T takes them; false for the double passes (evaluation
// falls back to them where a channel's coefficients leave float range). Eval forward has no reduction;
// it walks across channels only where rows are shorter than a chunk (evalAcrossChannels), tiled by
// evalTiling in floats.
template <typename T>
PhasePlan planPhase(const Geometry& g, Phase phase, int tensors, int threads, bool inFloats = kFloatArithmetic<T>) {
  PhasePlan plan;
  const bool eval = phase == Phase::EvalForward;
  plan.inFloats = inFloats && kFloatArithmetic<T>;
  plan.streaming = streamsStores<T>(g, phase, tensors, threads);
  plan.interleaved = eval ? evalAcrossChannels<T>(g) : interleavedTraversal<T>(g);
  if (!plan.interleaved) {
    if (!eval) {
      plan.split = {g.channels, g.perChannel()};
    } else if (plan.inFloats) {
      plan.planarWalk = Walk::FlatJoined;
      plan.split = {(g.elements() + Floats::lanes - 1) / Floats::lanes, Floats::lanes};
    } else {
      plan.split = {g.batch * g.channels, g.spatial};
    }
    return plan;
  }
  plan.tiling = eval && plan.inFloats ? evalTiling(g) : reductionTiling<T>(g);
  const Block blocks[2] = {plan.tiling.block(g, 0, 0), plan.tiling.block(g, plan.tiling.channelBlocks - 1, 0)};
  for (int k = 0; k < 2; ++k) {
    if (phase == Phase::TrainingForward) plan.reduction[k] = statisticsWalk<T>(blocks[k]);
    if (phase == Phase::Backward) plan.reduction[k] = gradientSumsWalk<T>(g, blocks[k]);
    plan.elementwise[k] = plan.inFloats ? floatBlockWalk<T>(g, blocks[k]) : Walk::RowGroups;
  }
  // A reduction whose channel blocks take all rows runs every phase of a block in one task.
  plan.split = eval || plan.tiling.rowBlocks > 1 ? taskSplit(g, plan.tiling) : channelBlockSplit(g, plan.tiling);
  return plan;
}

// planPhase for a pass about to run on the calling thread's current thread count.
template <typename T>
PhasePlan planPhaseNow(const Geometry& g, Phase phase, int tensors, bool inFloats = kFloatArithmetic<T>) {
  return planPhase<T>(g, phase, tensors, currentThreadCount(), inFloats);
}

template <typename F>
void parallelOver(int64_t count, int64_t elementsPerItem, F& body) {
  const int64_t grain = grainOf(elementsPerItem);
  parallelFor(
      count, grain, [](void* context, int64_t begin, int64_t end) { (*static_cast<F*>(context))(begin, end); }, &body);
}
template <typename F>
void parallelOver(const ParallelSplit& split, F& body) {
  parallelOver(split.items, split.itemElements, body);
}
