// The per-ISA kernel table: the loops of batch norm over memory, filled once at load.
//
// Kernels see the operator's per-channel inputs only through the structs below (EvalChannels, ForwardChannels,
// BackwardChannels: plain data the operator, batch_norm.cc, compiled once, fills; the kernels finish each
// channel with kernel/channel_coefficients.h). Per-channel values are double, so
// float32 tensors accumulate in double as PyTorch's CPU accumulate type does (the SIMD paths then apply
// the normalization in float arithmetic; see batch_norm_kernel.cc).
#pragma once

#include <cstdint>

#include "kernel/geometry.h"

namespace batchnorm {

// One channel's coefficients as the scalar chain returns them (kernel/channel_coefficients.h) and as
// SyncBatchNorm's split passes receive them; inside the kernels they go into the passes' one hand-off
// (PassCoefficients, cpu/parts/pass_coefficients.h).
// y = (x - center) * scale + shift.
struct ChannelAffine {
  double center = 0;
  double scale = 0;
  double shift = 0;
};

// dx = (dy - gradMean - (x - center) * projection) * scale; without BackwardChannels::readsInput, dx = dy * scale.
struct GradientAffine {
  double center = 0;
  double gradMean = 0;
  double projection = 0;
  double scale = 0;
};

// What an evaluation forward normalizes with (weight and bias may be null: 1 and 0).
template <typename T>
struct EvalChannels {
  const T* runningMean = nullptr;
  const T* runningVar = nullptr;
  const T* weight = nullptr;
  const T* bias = nullptr;
  double eps = 0;
};

// What a training forward records per channel (finishStatistics in kernel/channel_coefficients.h).
template <typename T>
struct ForwardChannels {
  const T* weight = nullptr;  // null: 1
  const T* bias = nullptr;    // null: 0
  T* runningMean = nullptr;   // updated when not null
  T* runningVar = nullptr;
  T* saveMean = nullptr;      // written
  T* saveInvstd = nullptr;
  double momentum = 0.1;
  double eps = 1e-5;
  double count = 0;  // values per channel
};

// What a backward reduces and finishes per channel (finishGradients in kernel/channel_coefficients.h).
template <typename T>
struct BackwardChannels {
  const double* center = nullptr;  // the mean the reductions center x on, per channel
  const double* invstd = nullptr;  // 1 / sqrt(var + eps) of the forward, per channel
  const T* weight = nullptr;       // null: 1
  T* gradWeight = nullptr;         // written when not null
  T* gradBias = nullptr;
  double count = 0;                // values per channel
  bool needSums = true;            // compute sum(dy) and sum(dy * (x - center)); otherwise they are 0
  bool readsInput = true;          // training: dx depends on x; evaluation: dx = dy * scale
};

enum class Phase { TrainingForward = 0, EvalForward = 1, Backward = 2 };

// The planner's answer for a call (kernelPlan in JS): the walk names of kernel/cpu/parts/planner.h.
// Channels whose coefficients leave float range take the double walks instead (data-dependent, not shown).
struct WalkPlan {
  const char* traversal = "";        // "planar", "interleaved" or "reference" (the scalar oracle)
  const char* reduction = "";        // statistics or backward sums; "" for eval forward
  const char* elementwise = "";      // normalization or grad_input
  const char* reductionLast = "";    // of the last channel block, where narrower and different; else ""
  const char* elementwiseLast = "";  //   "
  const char* arithmetic = "";       // of the elementwise pass: "float" or "double"
  int64_t blockChannels = 0;         // interleaved tiling: channels and rows per block (0 when planar)
  int64_t blockRows = 0;
  bool streamed = false;             // outputs written with non-temporal stores (on `threads` threads)
  int threads = 1;                   // the threads the plan is for
  int64_t ranges = 1;                // the parallel ranges the elementwise pass is split into
};

// Values per channel and batch item from which every kernel path walks a tensor's channels one at a time
// (planar) in every phase, so that SyncBatchNorm's steps by blocks may take a part of its channels
// (splitAffine); parts/split.h checks it against the planner's thresholds.
constexpr int64_t kBlockMinSpatial = 64;

template <typename T>
struct KernelTable {
  // Training forward: statistics, the recorded and running statistics, normalization (output may alias input).
  void (*trainingForward)(const Geometry& geometry, const T* input, T* output, const ForwardChannels<T>& plan);
  // Evaluation forward: each channel's affine map from its running statistics; output may alias input.
  void (*evalForward)(const Geometry& geometry, const T* input, T* output, const EvalChannels<T>& channels);
  // Backward: sums (when needed), the weight and bias gradients, then gradInput when it is not null.
  void (*backward)(const Geometry& geometry, const T* input, const T* gradOutput, T* gradInput,
                   const BackwardChannels<T>& plan);
  // What the kernels above would do for a call of this phase and geometry on `threads` threads.
  void (*describe)(const Geometry& geometry, Phase phase, int threads, WalkPlan& plan);

  // SyncBatchNorm's passes one phase at a time (kernel/split_phases.h), on this path's walks, over a
  // range of channels (all of them, or a block of a step by blocks). They return false, writing
  // nothing, where the path has no walk for the tensor (interleaved); the caller then runs portable
  // loops. splitAffine takes every tensor whole, and a part of the channels of planar tensors. The
  // oracle's table has none of them (null): split_phases.cc runs only the dispatched tables.
  bool (*splitStatistics)(const Geometry& geometry, ChannelRange range, const T* input, double* mean,
                          double* varSum);
  bool (*splitAffine)(const Geometry& geometry, ChannelRange range, const T* input, T* output,
                      const ChannelAffine* channels);
  bool (*splitGradientSums)(const Geometry& geometry, ChannelRange range, const T* input, const T* gradOutput,
                            const double* center, double* sumDy, double* dotp);
  bool (*splitGradInput)(const Geometry& geometry, ChannelRange range, const T* input, const T* gradOutput,
                         T* gradInput, const GradientAffine* coefficients);
};

enum class CpuCapability { Default = 0, Avx2 = 1, Avx512 = 2 };

// The tables for the kernel path chosen at load (see dispatch.cc).
template <typename T>
const KernelTable<T>& kernels();

// The portable scalar oracle every path is tested against: simple loops, one thread.
template <typename T>
const KernelTable<T>& referenceKernels();

// Name of the kernel path in use: "default", "avx2" or "avx512".
const char* cpuCapability();

// Per-path registration, each defined in its own translation unit.
namespace cpu {
namespace reference {
void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable);
}
namespace base {
void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable);
}
namespace avx2 {
void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable);
}
namespace avx512 {
void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable);
}
}  // namespace cpu

}  // namespace batchnorm
