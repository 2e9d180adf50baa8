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

}  // namespace batchnorm
