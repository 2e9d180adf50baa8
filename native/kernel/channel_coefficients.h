// A channel's coefficients from its statistics or gradient sums, as PyTorch's Normalization.cpp computes
// them: shared by the operator (batch_norm.cc), the scalar oracle and the kernels (which build the same
// values for many channels at once in vector registers where they can, and fall back to these). A fragment, included inside each user's anonymous namespace so that
// no inline function compiled with one ISA's flags is shared with another translation unit. The
// arithmetic is kernel/channel_math.h's, written once for one channel and for a vector of channels.

#include "kernel/channel_math.h"

// PyTorch evaluates x * alpha + (bias - mean * alpha). Centering first keeps float32 outputs accurate
// when |mean| >> std; the two forms agree in real arithmetic. meanLow, the low part of a double-double
// mean, folds into the shift at no per-element cost. When alpha is not finite (eps = 0 with a zero
// variance) the forms differ in which NaN/Inf appears, so there PyTorch's form is used.
inline ChannelAffine affineFor(double mean, double meanLow, double alpha, double bias) {
  ChannelAffine affine;
  affine.scale = alpha;
  if (std::isfinite(alpha)) {
    affine.center = mean;
    affine.shift = bias - meanLow * alpha;
  } else {
    affine.center = 0;
    affine.shift = bias - mean * alpha;
  }
  return affine;
}

// Evaluation: the running statistics, alpha = weight / sqrt(runningVar + eps).
template <typename T>
ChannelAffine evalAffine(const EvalChannels<T>& in, int64_t c) {
  const double invstd = invStdOf(static_cast<double>(in.runningVar[c]), in.eps);
  const double weight = in.weight != nullptr ? static_cast<double>(in.weight[c]) : 1;
  const double bias = in.bias != nullptr ? static_cast<double>(in.bias[c]) : 0;
  return affineFor(static_cast<double>(in.runningMean[c]), 0, invstd * weight, bias);
}

// 1 / sqrt(var + eps), except 0 when both are 0 (PyTorch's InvStd), so a constant channel with
// eps = 0 normalizes to the bias instead of NaN.
inline double invStd(double variance, double eps) {
  if (variance == 0 && eps == 0) return 0;
  return invStdOf(variance, eps);
}

// Training: saves the batch statistics of channel c and updates its running ones.
template <typename T>
void recordStatistics(const ForwardChannels<T>& in, int64_t c, double mean, double varSum) {
  const double invstd = invStd(varSum / in.count, in.eps);
  in.saveMean[c] = static_cast<T>(mean);
  in.saveInvstd[c] = static_cast<T>(invstd);
  const double keep = 1 - in.momentum;
  if (in.runningMean != nullptr) {
    in.runningMean[c] = static_cast<T>(runningUpdate(in.momentum, keep, mean, static_cast<double>(in.runningMean[c])));
  }
  if (in.runningVar != nullptr) {
    const double unbiasedVar = varSum / (in.count - 1);
    in.runningVar[c] =
        static_cast<T>(runningUpdate(in.momentum, keep, unbiasedVar, static_cast<double>(in.runningVar[c])));
  }
}

// Training: the normalization of channel c from its batch statistics.
template <typename T>
ChannelAffine statisticsAffine(const ForwardChannels<T>& in, int64_t c, double mean, double meanLow, double varSum) {
  const double invstd = invStd(varSum / in.count, in.eps);
  const double weight = in.weight != nullptr ? static_cast<double>(in.weight[c]) : 1;
  const double bias = in.bias != nullptr ? static_cast<double>(in.bias[c]) : 0;
  return affineFor(mean, meanLow, invstd * weight, bias);
}

template <typename T>
ChannelAffine finishStatistics(const ForwardChannels<T>& in, int64_t c, double mean, double meanLow, double varSum) {
  recordStatistics(in, c, mean, varSum);
  return statisticsAffine(in, c, mean, meanLow, varSum);
}

// Backward: records the weight and bias gradients of channel c and returns dx's coefficients.
template <typename T>
GradientAffine finishGradients(const BackwardChannels<T>& in, int64_t c, double sumDy, double dotp) {
  const double invstd = in.invstd[c];
  if (in.gradWeight != nullptr) in.gradWeight[c] = static_cast<T>(dotp * invstd);
  if (in.gradBias != nullptr) in.gradBias[c] = static_cast<T>(sumDy);
  GradientAffine g;
  g.center = in.center[c];
  g.scale = invstd * (in.weight != nullptr ? static_cast<double>(in.weight[c]) : 1);
  if (in.readsInput) {
    g.gradMean = gradMeanOf(sumDy, in.count);
    g.projection = projectionOf(dotp, invstd, in.count);
  }
  return g;
}
