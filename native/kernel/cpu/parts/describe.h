// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The planner's answers for a call on `threads` threads (backward: a training backward, whose grad_input
// reads the input): the PhasePlan the drivers build for it (planner.h), serialized. Channels whose
// coefficients leave float range take the double walks instead (data-dependent, not shown).

// An interleaved plan's walks: those of the full channel blocks, and of the last where it differs.
inline void describeWalks(const Walk (&walks)[2], const char*& first, const char*& last) {
  first = walkName(walks[0]);
  last = walks[1] == walks[0] ? "" : walkName(walks[1]);
}

template <typename T>
void describe(const Geometry& g, Phase phase, int threads, WalkPlan& out) {
  out = WalkPlan{};
  out.arithmetic = kFloatArithmetic<T> ? "float" : "double";
  out.threads = threads;
  const int tensors = phase == Phase::Backward ? 3 : 2;
  if (g.elements() == 0) return;  // nothing to plan (nor to stream)
  const PhasePlan plan = planPhase<T>(g, phase, tensors, threads);
  out.streamed = plan.streaming;
  out.ranges = parallelRanges(plan.split.items, plan.split.itemElements, threads);
  if (!plan.interleaved) {
    out.traversal = "planar";
    out.elementwise = walkName(plan.planarWalk);
    if (phase != Phase::EvalForward) out.reduction = walkName(Walk::PlanarRows);
    return;
  }
  out.traversal = "interleaved";
  out.blockChannels = plan.tiling.channels;
  out.blockRows = plan.tiling.rows;
  if (phase != Phase::EvalForward) describeWalks(plan.reduction, out.reduction, out.reductionLast);
  describeWalks(plan.elementwise, out.elementwise, out.elementwiseLast);
}
