// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The planner's answers for a call on `threads` threads (backward: a training backward, whose grad_input
// reads the input). Derived again here from the planner's predicates, the ones the drivers in forward.h
// and backward.h call, not recorded from a run: a driver that asks differently must change this too.

// The walks of a block and of the last channel block, where that one is narrower and walks otherwise.
template <typename Choose>
void describeBlocks(const Geometry& g, const Tiling& tiling, Choose&& choose, const char*& first, const char*& last) {
  const Walk firstWalk = choose(tiling.block(g, 0, 0));
  const Walk lastWalk = choose(tiling.block(g, tiling.channelBlocks - 1, 0));
  first = walkName(firstWalk);
  last = lastWalk == firstWalk ? "" : walkName(lastWalk);
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
  plan.streamed = streamsStores<T>(g, phase == Phase::Backward ? 3 : 2, threads);
  if (g.elements() == 0) return;
  const auto elementwise = [&](const Block& block) {
    return kFloatArithmetic<T> ? floatBlockWalk(g, block) : Walk::RowGroups;
  };
  if (phase == Phase::EvalForward) {
    if (!evalAcrossChannels<T>(g)) {
      plan.traversal = "planar";
      plan.elementwise = walkName(kFloatArithmetic<T> ? Walk::FlatJoined : Walk::PlanarRows);
      plan.ranges = kFloatArithmetic<T> ? parallelRanges((g.elements() + Floats::lanes - 1) / Floats::lanes, Floats::lanes, threads)
                                        : parallelRanges(g.batch * g.channels, g.spatial, threads);
      return;
    }
    const Tiling tiling = kFloatArithmetic<T> ? evalTiling(g) : reductionTiling<T>(g);
    plan.traversal = "interleaved";
    plan.blockChannels = tiling.channels;
    plan.blockRows = tiling.rows;
    plan.ranges = kFloatArithmetic<T> ? parallelRanges(tiling.channelBlocks * tiling.rowBlocks,
                                                       tiling.channels * tiling.rows * g.spatial, threads)
                                      : interleavedRanges(g, tiling, threads);
    describeBlocks(g, tiling, elementwise, plan.elementwise, plan.elementwiseLast);
    return;
  }
  if (!interleavedTraversal<T>(g)) {
    plan.traversal = "planar";
    plan.reduction = plan.elementwise = walkName(Walk::PlanarRows);
    plan.ranges = parallelRanges(g.channels, g.perChannel(), threads);
    return;
  }
  const Tiling tiling = reductionTiling<T>(g);
  plan.traversal = "interleaved";
  plan.blockChannels = tiling.channels;
  plan.blockRows = tiling.rows;
  plan.ranges = interleavedRanges(g, tiling, threads);
  if (phase == Phase::TrainingForward) {
    describeBlocks(g, tiling, [](const Block& block) { return statisticsWalk<T>(block); }, plan.reduction,
                   plan.reductionLast);
  } else {
    describeBlocks(g, tiling, [&](const Block& block) { return gradientSumsWalk<T>(g, block); }, plan.reduction,
                   plan.reductionLast);
  }
  describeBlocks(g, tiling, elementwise, plan.elementwise, plan.elementwiseLast);
}
