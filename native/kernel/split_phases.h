// A training step's phases one at a time, for SyncBatchNorm: each rank computes its shard's partial
// statistics, the ranks exchange them, and each rank then normalizes its shard with the merged ones;
// backward likewise for the two gradient sums. The fused kernels cannot stop between the phases, so
// these are separate passes: on the dispatched kernel path's own walks where it has them (the kernel
// table's split entries: planar tensors, and the normalization on every tensor), elsewhere portable
// loops in double split over the kernel threads by channel ranges. Either way each channel's
// reduction runs whole in one task in a fixed order, so results are bitwise identical for any thread
// count.
#pragma once

#include "kernel/geometry.h"

namespace batchnorm {

// Per channel: mean and m2 = sum((x - mean)^2) of the shard, in double (0 and 0 for an empty shard).
template <typename T>
void shardStatistics(const Geometry& geometry, const T* input, double* mean, double* m2);

// y = (x - mean) * (invstd * weight) + bias per channel, in double, rounded once (weight/bias may be null).
template <typename T>
void normalizeWith(const Geometry& geometry, const T* input, T* output, const double* mean, const double* invstd,
                   const T* weight, const T* bias);

// Per channel: sumDy = sum(dy) and dotp = sum(dy * (x - mean)) of the shard, in double.
template <typename T>
void shardGradientSums(const Geometry& geometry, const T* input, const T* gradOutput, const double* mean,
                       double* sumDy, double* dotp);

// dx = (dy - sumDy / count - (x - mean) * invstd^2 * dotp / count) * invstd * weight, from the sums and
// count of the whole batch (all ranks), in double, rounded once.
template <typename T>
void gradInputWith(const Geometry& geometry, const T* input, const T* gradOutput, T* gradInput, const double* mean,
                   const double* invstd, const T* weight, const double* sumDy, const double* dotp, double count);

// SyncBatchNorm's backward by blocks of channels (for ranks that can wait for each other without an
// event loop: the worker group's members, after every rank has arrived). Per block: this rank's sums,
// summed over the ranks through `exchange`, then its grad_input while the block's x and dy are still
// in cache; the fused backward's one read of them instead of the split passes' two. Per channel the
// same arithmetic as shardGradientSums then gradInputWith, so the same bits.
class BlockExchange {
 public:
  virtual ~BlockExchange() = default;
  // Publishes this rank's sums of the channels in `block` (blocks in order).
  virtual void publish(ChannelRange block, const double* sumDy, const double* dotp) = 0;
  // Waits for every rank's sums of the oldest block not yet collected and writes them, added in rank
  // order from 0, into totalDy/totalDotp; false if the group failed (a peer left, a time-out).
  virtual bool collect(ChannelRange block, double* totalDy, double* totalDotp) = 0;
};

// Channels per block for ranks whose largest shard has `channelBytes` of x and dy per channel: as many as
// the L2 holds, at least one. Every rank of one process computes the same.
int64_t channelsPerBlock(const Geometry& geometry, int64_t channelBytes);

// The backward by blocks: this rank's sums of all channels into sumDy/dotp (its shares of the weight
// and bias gradients), gradInput from the whole batch's; false (gradInput partly written) if the
// exchange failed.
template <typename T>
bool gradInputByBlocks(const Geometry& geometry, int64_t blockChannels, const T* input, const T* gradOutput,
                       T* gradInput, const double* mean, const double* invstd, const T* weight, double count,
                       double* sumDy, double* dotp, BlockExchange& exchange);

}  // namespace batchnorm
