// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces; not a
// header of its own.
// SyncBatchNorm's passes one phase at a time (kernel/split_phases.h): the fused kernels' own walks,
// stopped between the phases. The planar traversal splits cleanly (a channel's statistics, sums and
// rows are independent units); where the tensor is interleaved these return false and split_phases.cc
// runs its portable loops. The normalization takes both traversals (affineForward).

static_assert(kBlockMinSpatial >= kPlanarMinSpatial && kBlockMinSpatial >= Chunk<float>::lanes &&
                  kBlockMinSpatial >= Chunk<double>::lanes,
              "a tensor the steps by blocks take must be planar in every phase");

// The planar split covers channels; a range runs the same per-channel tasks over its channels only.
inline ParallelSplit channelsOf(const ParallelSplit& split, ChannelRange range) {
  return {range.size(), split.itemElements};
}

template <typename T>
bool splitStatistics(const Geometry& g, ChannelRange range, const T* input, double* mean, double* varSum) {
  const PhasePlan plan = planPhaseNow<T>(g, Phase::TrainingForward, 2);
  if (plan.interleaved) return false;
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t c = range.begin + begin; c < range.begin + end; ++c) {
      const ChannelStats stats = planarStats(g, input, c);
      mean[c] = stats.mean;
      varSum[c] = stats.varSum;
    }
  };
  parallelOver(channelsOf(plan.split, range), body);
  return true;
}

template <typename T, typename GradientMask>
bool splitGradientSums(const Geometry& g, ChannelRange range, const T* input, const T* gradOutput,
                       const double* center, double* sumDy, double* dotp) {
  const PhasePlan plan = planPhaseNow<T>(g, Phase::Backward, 3);
  if (plan.interleaved) return false;
  const GradientMask mask{};
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t c = range.begin + begin; c < range.begin + end; ++c) {
      const GradientSums sums = planarGradientSums(g, input, gradOutput, c, center[c], mask);
      sumDy[c] = sums.sumDy;
      dotp[c] = sums.dotp;
    }
  };
  parallelOver(channelsOf(plan.split, range), body);
  return true;
}

// `channels` holds the range's coefficients, channel range.begin first.
template <typename T, typename GradientMask>
bool splitGradInput(const Geometry& g, ChannelRange range, const T* input, const T* gradOutput, T* gradInput,
                    const GradientAffine* channels) {
  const PhasePlan plan = planPhaseNow<T>(g, Phase::Backward, 3);
  if (plan.interleaved) return false;
  PassCoefficients<T> coefficients(range.size());
  for (int64_t k = 0; k < range.size(); ++k) coefficients.put(k, channels[k], true);
  const bool streaming = plan.streaming;
  const GradientMask mask{};
  auto body = [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      planarGradInput(g, input, gradOutput, gradInput, range.begin + k, coefficients, k, true, streaming, mask);
    }
    if (streaming) vec::streamFence();
  };
  parallelOver(channelsOf(plan.split, range), body);
  return true;
}
