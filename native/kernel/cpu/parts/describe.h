// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The planner's answers for a call on `threads` threads (backward: a training backward, whose grad_input
// reads the input). Derived again here from the planner's predicates, the ones the drivers in forward.h
// and backward.h call, not recorded from a run: a driver that asks differently must change this too.

// An interleaved plan's walks: those of the full channel blocks, and of the last where it differs.
inline void describeWalks(const Walk (&walks)[2], const char*& first, const char*& last) {
  first = walkName(walks[0]);
  last = walks[1] == walks[0] ? "" : walkName(walks[1]);
}

// The parallel ranges of an interleaved traversal's elementwise pass (forEachChannelBlock when a channel
// block takes all rows, else forEachTask).
inline int64_t interleavedRanges(const Geometry& g, const Tiling& tiling, int threads) {
  return tiling.rowBlocks == 1 ? parallelRanges(tiling.channelBlocks, tiling.channels * g.perChannel(), threads)
                               : parallelRanges(tiling.channelBlocks * tiling.rowBlocks,
                                                tiling.channels * tiling.rows * g.spatial, threads);
}

template <typename T>
void describe(const Geometry& g, Phase phase, int threads, WalkPlan& plan) {
  plan = WalkPlan{};
  plan.arithmetic = kFloatArithmetic<T> ? "float" : "double";
  plan.threads = threads;
  const int tensors = phase == Phase::Backward ? 3 : 2;
  plan.streamed = streamsStores<T>(g, phase, tensors, threads);
  if (g.elements() == 0) return;
  const bool interleaved = phase == Phase::EvalForward ? evalAcrossChannels<T>(g) : interleavedTraversal<T>(g);
  if (!interleaved) {
    plan.traversal = "planar";
    if (phase == Phase::EvalForward) {
      plan.elementwise = walkName(kFloatArithmetic<T> ? Walk::FlatJoined : Walk::PlanarRows);
      plan.ranges = kFloatArithmetic<T> ? parallelRanges((g.elements() + Floats::lanes - 1) / Floats::lanes, Floats::lanes, threads)
                                        : parallelRanges(g.batch * g.channels, g.spatial, threads);
    } else {
      plan.reduction = plan.elementwise = walkName(Walk::PlanarRows);
      plan.ranges = parallelRanges(g.channels, g.perChannel(), threads);
    }
    return;
  }
  // The plan the drivers build (forward.h, backward.h), serialized.
  const InterleavedPlan walks = planInterleaved<T>(g, phase, tensors, threads);
  plan.traversal = "interleaved";
  plan.blockChannels = walks.tiling.channels;
  plan.blockRows = walks.tiling.rows;
  if (phase != Phase::EvalForward) describeWalks(walks.reduction, plan.reduction, plan.reductionLast);
  describeWalks(walks.elementwise, plan.elementwise, plan.elementwiseLast);
  plan.ranges = phase == Phase::EvalForward && kFloatArithmetic<T>
                    ? parallelRanges(walks.tiling.channelBlocks * walks.tiling.rowBlocks,
                                     walks.tiling.channels * walks.tiling.rows * g.spatial, threads)
                    : interleavedRanges(g, walks.tiling, threads);
}
