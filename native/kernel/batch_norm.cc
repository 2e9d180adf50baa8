// Batch-norm forward and backward: PyTorch's per-channel logic (Normalization.cpp) around the
// dispatched kernels. Compiled once, without ISA-specific flags.
#include "kernel/batch_norm.h"

#include <cmath>
#include <vector>

#include "kernel/dispatch.h"

namespace batchnorm {
namespace {

template <typename T>
const KernelTable<T>& tableFor(bool useReference) {
  return useReference ? referenceKernels<T>() : kernels<T>();
}

// 1 / sqrt(var + eps), except 0 when both are 0 (PyTorch's InvStd), so a constant channel with
// eps = 0 normalizes to the bias instead of NaN.
double invStd(double variance, double eps) {
  if (variance == 0 && eps == 0) return 0;
  return 1 / std::sqrt(variance + eps);
}

template <typename T>
double valueOr(const T* values, int64_t index, double fallback) {
  return values != nullptr ? static_cast<double>(values[index]) : fallback;
}

#include "kernel/channel_coefficients.h"

template <typename T>
struct TrainingForward {
  const ForwardArgs<T>* args;
  double count;

  // Saves the batch statistics, updates the running ones and returns the normalization of one channel.
  static ChannelAffine fromStats(void* context, int64_t c, double mean, double meanLow, double varSum) {
    const auto& self = *static_cast<const TrainingForward*>(context);
    const ForwardArgs<T>& a = *self.args;
    const double invstd = invStd(varSum / self.count, a.eps);
    a.saveMean[c] = static_cast<T>(mean);
    a.saveInvstd[c] = static_cast<T>(invstd);
    const double keep = 1 - a.momentum;
    if (a.runningMean != nullptr) {
      a.runningMean[c] = static_cast<T>(a.momentum * mean + keep * static_cast<double>(a.runningMean[c]));
    }
    if (a.runningVar != nullptr) {
      const double unbiasedVar = varSum / (self.count - 1);
      a.runningVar[c] = static_cast<T>(a.momentum * unbiasedVar + keep * static_cast<double>(a.runningVar[c]));
    }
    return affineFor(mean, meanLow, invstd * valueOr(a.weight, c, 1), valueOr(a.bias, c, 0));
  }
};

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
    TrainingForward<T> context{&args, static_cast<double>(count)};
    ForwardPlan plan;
    plan.context = &context;
    plan.fromStats = &TrainingForward<T>::fromStats;
    table.trainingForward(geometry, args.input, args.output, plan);
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

  std::vector<double> center(channels), invstd(channels);
  for (int64_t c = 0; c < channels; ++c) {
    if (args.training) {
      center[c] = static_cast<double>(args.saveMean[c]);
      invstd[c] = static_cast<double>(args.saveInvstd[c]);
    } else {
      center[c] = static_cast<double>(args.runningMean[c]);
      invstd[c] = 1 / std::sqrt(static_cast<double>(args.runningVar[c]) + args.eps);
    }
  }
  BackwardPlan<T> plan;
  plan.center = center.data();
  plan.invstd = invstd.data();
  plan.weight = args.weight;
  plan.gradWeight = args.gradWeight;
  plan.gradBias = args.gradBias;
  plan.count = static_cast<double>(count);
  plan.readsInput = args.training;
  if (count == 0) {
    // Nothing to reduce or write: the sums are 0.
    for (int64_t c = 0; c < channels; ++c) finishGradients(plan, c, 0, 0);
    return;
  }
  // Evaluation-mode grad_input is dy scaled per channel: it needs no reduction.
  plan.needSums = args.gradWeight != nullptr || args.gradBias != nullptr || (args.training && args.gradInput != nullptr);
  if (!plan.needSums && args.gradInput == nullptr) return;
  tableFor<T>(args.useReference).backward(geometry, args.input, args.gradOutput, args.gradInput, plan);
}

template void batchNormForward<float>(const Geometry&, const ForwardArgs<float>&);
template void batchNormForward<double>(const Geometry&, const ForwardArgs<double>&);
template void batchNormBackward<float>(const Geometry&, const BackwardArgs<float>&);
template void batchNormBackward<double>(const Geometry&, const BackwardArgs<double>&);

}  // namespace batchnorm
