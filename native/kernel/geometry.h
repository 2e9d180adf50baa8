// The shape every layer of the core shares: the ground floor of native/kernel, included by the operator
// (batch_norm.h), the kernel tables (dispatch.h) and the split phases (split_phases.h) alike.
#pragma once

#include <cstdint>

namespace batchnorm {

// A contiguous (N, C, *spatial) tensor seen as (batch, channels, spatial) with spatial = prod(*spatial).
struct Geometry {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t spatial = 0;

  // Values that share one channel's statistics: n in the formulas.
  int64_t perChannel() const { return batch * spatial; }
  int64_t elements() const { return batch * channels * spatial; }
};

// Channels [begin, end) of a tensor: the block of channels one step of SyncBatchNorm's blocked backward
// works on (split_phases.h).
struct ChannelRange {
  int64_t begin = 0;
  int64_t end = 0;

  static ChannelRange all(const Geometry& g) { return {0, g.channels}; }
  int64_t size() const { return end - begin; }
};

}  // namespace batchnorm
