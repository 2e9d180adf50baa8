// Batch-norm forward and backward: the plans of PyTorch's Normalization.cpp (which statistics, which
// gradients, the empty-batch cases) handed to the dispatched kernels, which finish each channel with
// kernel/channel_coefficients.h. Compiled once, without ISA-specific flags.
#include "kernel/batch_norm.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernel/dispatch.h"
#include "vec/always_inline.h"
#include "vec/float_precision.h"

namespace batchnorm {
namespace {

template <typename T>
const KernelTable<T>& tableFor(bool useReference) {
  return useReference ? referenceKernels<T>() : kernels<T>();
}

#include "kernel/channel_coefficients.h"

}  // namespace

template <typename T>
void batchNormForward(const Geometry& geometry, const ForwardArgs<T>& args) {
  const int64_t channels = geometry.channels;
  const int64_t count = geometry.perChannel();
  if (channels == 0) return;
  const KernelTable<T>& table = tableFor<T>(args.useReference);

  if (args.training) {
    if (count == 0) {
      // An empty batch has no statistics: running stats stay as they are (as torch.batch_norm does).
      for (int64_t c = 0; c < channels; ++c) args.saveMean[c] = args.saveInvstd[c] = 0;
      return;
    }
    ForwardChannels<T> in;
    in.weight = args.weight;
    in.bias = args.bias;
    in.runningMean = args.runningMean;
    in.runningVar = args.runningVar;
    in.saveMean = args.saveMean;
    in.saveInvstd = args.saveInvstd;
    in.momentum = args.momentum;
    in.eps = args.eps;
    in.count = static_cast<double>(count);
    table.trainingForward(geometry, args.input, args.output, in);
    return;
  }

  if (count == 0) return;
  EvalChannels<T> channelsOf;
  channelsOf.runningMean = args.runningMean;
  channelsOf.runningVar = args.runningVar;
  channelsOf.weight = args.weight;
  channelsOf.bias = args.bias;
  channelsOf.eps = args.eps;
  table.evalForward(geometry, args.input, args.output, channelsOf);
}

template <typename T>
void batchNormBackward(const Geometry& geometry, const BackwardArgs<T>& args) {
  const int64_t channels = geometry.channels;
  const int64_t count = geometry.perChannel();
  if (channels == 0) return;

  // The centers and inverse deviations in double, one allocation for both (none for a few channels:
  // a (2, 4) backward is about 2 us, of which each allocation took some 20 ns).
  constexpr int64_t kLocalChannels = 16;
  double local[2 * kLocalChannels];
  std::vector<double> heap(channels > kLocalChannels ? static_cast<size_t>(2 * channels) : 0);
  double* const center = channels > kLocalChannels ? heap.data() : local;
  double* const invstd = center + channels;
  for (int64_t c = 0; c < channels; ++c) {
    if (args.training) {
      center[c] = static_cast<double>(args.saveMean[c]);
      invstd[c] = static_cast<double>(args.saveInvstd[c]);
    } else {
      center[c] = static_cast<double>(args.runningMean[c]);
      invstd[c] = invStdOf(static_cast<double>(args.runningVar[c]), args.eps);
    }
  }
  BackwardChannels<T> in;
  in.center = center;
  in.invstd = invstd;
  in.weight = args.weight;
  in.gradWeight = args.gradWeight;
  in.gradBias = args.gradBias;
  in.count = static_cast<double>(count);
  in.readsInput = args.training;
  if (count == 0) {
    // Nothing to reduce or write: the sums are 0.
    for (int64_t c = 0; c < channels; ++c) finishGradients(in, c, 0, 0);
    return;
  }
  // Evaluation-mode grad_input is dy scaled per channel: it needs no reduction.
  in.needSums = args.gradWeight != nullptr || args.gradBias != nullptr || (args.training && args.gradInput != nullptr);
  if (!in.needSums && args.gradInput == nullptr) return;
  tableFor<T>(args.useReference).backward(geometry, args.input, args.gradOutput, args.gradInput, in);
}

template void batchNormForward<float>(const Geometry&, const ForwardArgs<float>&);
template void batchNormForward<double>(const Geometry&, const ForwardArgs<double>&);
template void batchNormBackward<float>(const Geometry&, const BackwardArgs<float>&);
template void batchNormBackward<double>(const Geometry&, const BackwardArgs<double>&);

}  // namespace batchnorm
