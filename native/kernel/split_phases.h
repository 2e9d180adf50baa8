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

// SyncBatchNorm's steps by blocks of channels, for ranks that can wait for each other without an event
// loop (the worker group's members, once every rank has arrived at the step). Per block: this rank's
// partials (forward: mean and m2; backward: the two gradient sums), the ranks' partials through
// `exchange`, merged in rank order with the arithmetic of lib/process-group.ts, then the block's
// elementwise pass while its x (and dy) are still in cache: the fused kernels' one read of them instead
// of the split passes' two, with the split passes' bits.
class BlockExchange {
 public:
  virtual ~BlockExchange() = default;
  virtual int ranks() const = 0;
  // Publishes this rank's two partials of the channels in `block` (each indexed by channel), blocks in
  // order.
  virtual void publish(ChannelRange block, const double* first, const double* second) = 0;
  // Waits until every rank has published the oldest block not yet waited for; false if the group
  // failed (a peer left, a time-out).
  virtual bool waitForBlock() = 0;
  // Rank r's partials, indexed by channel: valid for the blocks waited for.
  virtual const double* first(int rank) const = 0;
  virtual const double* second(int rank) const = 0;
};

// Channels per block for ranks whose largest shard has `channelBytes` per channel of what a block's
// passes read twice (x; backward x and dy): as many as half the L2 holds, at least one; 0 bytes: one
// block.
// Every rank of one process computes the same.
int64_t channelsPerBlock(const Geometry& geometry, int64_t channelBytes);

// The training forward by blocks: `counts` holds every rank's values per channel (in rank order); the
// merged mean, m2 and invstd of every channel come out for the running statistics and the backward.
// False (output partly written) if the exchange failed.
template <typename T>
bool normalizeByBlocks(const Geometry& geometry, int64_t blockChannels, const T* input, T* output, const T* weight,
                       const T* bias, double eps, const double* counts, double* mean, double* m2, double* invstd,
                       BlockExchange& exchange);

// The backward by blocks: this rank's sums of all channels into sumDy/dotp (its shares of the weight
// and bias gradients), gradInput from the whole batch's; false (gradInput partly written) if the
// exchange failed.
template <typename T>
bool gradInputByBlocks(const Geometry& geometry, int64_t blockChannels, const T* input, const T* gradOutput,
                       T* gradInput, const double* mean, const double* invstd, const T* weight, double count,
                       double* sumDy, double* dotp, BlockExchange& exchange);

}  // namespace batchnorm
