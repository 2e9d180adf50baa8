// Batch-norm forward and backward: PyTorch's per-channel logic (Normalization.cpp) around the
// dispatched elementwise kernels. Compiled once, without ISA-specific flags.
#include "kernel/batch_norm.h"

#include <cmath>
#include <vector>

#include "kernel/dispatch.h"

namespace batchnorm {
namespace {

// 1 / sqrt(var + eps), except 0 when both are 0 (PyTorch's InvStd), so a constant channel with
// eps = 0 normalizes to the bias instead of NaN.
double invStd(double variance, double eps) {
  if (variance == 0 && eps == 0) return 0;
  return 1 / std::sqrt(variance + eps);
}

// Per-channel y = (x - center) * scale + shift, built from the statistics and the affine parameters.
struct AffineMap {
  explicit AffineMap(int64_t channels) : center(channels), scale(channels), shift(channels) {}

  // PyTorch evaluates x * alpha + (bias - mean * alpha). Centering first keeps float32 outputs accurate
  // when |mean| >> std; the two forms agree exactly in real arithmetic. When alpha is not finite
  // (eps = 0 with a zero variance) they differ in which NaN/Inf appears, so there we use PyTorch's form.
  // meanLow is the low part of a double-double mean; folding it into the shift keeps its accuracy
  // without another per-element operation.
  void set(int64_t c, double mean, double meanLow, double alpha, double bias) {
    if (std::isfinite(alpha)) {
      center[c] = mean;
      shift[c] = bias - meanLow * alpha;
    } else {
      center[c] = 0;
      shift[c] = bias - mean * alpha;
    }
    scale[c] = alpha;
  }

  std::vector<double> center, scale, shift;
};

template <typename T>
double valueOr(const T* values, int64_t index, double fallback) {
  return values != nullptr ? static_cast<double>(values[index]) : fallback;
}

}  // namespace

template <typename T>
void batchNormForward(const Geometry& geometry, const ForwardArgs<T>& args) {
  const int64_t channels = geometry.channels;
  const int64_t count = geometry.perChannel();
  if (channels == 0) return;

  if (args.training && count == 0) {
    // An empty batch has no statistics: running stats stay as they are (as torch.batch_norm does).
    for (int64_t c = 0; c < channels; ++c) args.saveMean[c] = args.saveInvstd[c] = 0;
    return;
  }

  AffineMap affine(channels);
  if (args.training) {
    std::vector<double> mean(channels), meanLow(channels), varSum(channels);
    kernels<T>().collectStats(geometry, args.input, mean.data(), meanLow.data(), varSum.data());
    const double n = static_cast<double>(count);
    const double keep = 1 - args.momentum;
    for (int64_t c = 0; c < channels; ++c) {
      const double invstd = invStd(varSum[c] / n, args.eps);
      args.saveMean[c] = static_cast<T>(mean[c]);
      args.saveInvstd[c] = static_cast<T>(invstd);
      if (args.runningMean != nullptr) {
        args.runningMean[c] =
            static_cast<T>(args.momentum * mean[c] + keep * static_cast<double>(args.runningMean[c]));
      }
      if (args.runningVar != nullptr) {
        const double unbiasedVar = varSum[c] / (n - 1);
        args.runningVar[c] =
            static_cast<T>(args.momentum * unbiasedVar + keep * static_cast<double>(args.runningVar[c]));
      }
      affine.set(c, mean[c], meanLow[c], invstd * valueOr(args.weight, c, 1), valueOr(args.bias, c, 0));
    }
  } else {
    for (int64_t c = 0; c < channels; ++c) {
      const double invstd = 1 / std::sqrt(static_cast<double>(args.runningVar[c]) + args.eps);
      affine.set(c, static_cast<double>(args.runningMean[c]), 0, invstd * valueOr(args.weight, c, 1),
                 valueOr(args.bias, c, 0));
    }
  }
  if (count == 0) return;
  kernels<T>().applyAffine(geometry, args.input, args.output, affine.center.data(), affine.scale.data(),
                           affine.shift.data());
}

template <typename T>
void batchNormBackward(const Geometry& geometry, const BackwardArgs<T>& args) {
  const int64_t channels = geometry.channels;
  const int64_t count = geometry.perChannel();
  if (channels == 0) return;

  std::vector<double> center(channels), invstd(channels), weight(channels);
  for (int64_t c = 0; c < channels; ++c) {
    if (args.training) {
      center[c] = static_cast<double>(args.saveMean[c]);
      invstd[c] = static_cast<double>(args.saveInvstd[c]);
    } else {
      center[c] = static_cast<double>(args.runningMean[c]);
      invstd[c] = 1 / std::sqrt(static_cast<double>(args.runningVar[c]) + args.eps);
    }
    weight[c] = valueOr(args.weight, c, 1);
  }

  // Evaluation-mode grad_input needs no reduction: it is dy scaled per channel.
  const bool needSums =
      args.gradWeight != nullptr || args.gradBias != nullptr || (args.training && args.gradInput != nullptr);
  std::vector<double> sumDy(channels, 0.0), dotp(channels, 0.0);
  if (needSums && count > 0) {
    kernels<T>().reduceGradients(geometry, args.input, args.gradOutput, center.data(), sumDy.data(),
                                 dotp.data());
  }

  if (args.gradInput != nullptr && count > 0) {
    std::vector<double> scale(channels);
    for (int64_t c = 0; c < channels; ++c) scale[c] = invstd[c] * weight[c];
    if (args.training) {
      const double n = static_cast<double>(count);
      std::vector<double> gradMean(channels), projection(channels);
      for (int64_t c = 0; c < channels; ++c) {
        gradMean[c] = sumDy[c] / n;
        projection[c] = dotp[c] * invstd[c] * invstd[c] / n;
      }
      kernels<T>().trainingGradInput(geometry, args.input, args.gradOutput, args.gradInput, center.data(),
                                     gradMean.data(), projection.data(), scale.data());
    } else {
      const std::vector<double> zero(channels, 0.0);
      kernels<T>().applyAffine(geometry, args.gradOutput, args.gradInput, zero.data(), scale.data(),
                               zero.data());
    }
  }

  for (int64_t c = 0; c < channels; ++c) {
    if (args.gradWeight != nullptr) args.gradWeight[c] = static_cast<T>(dotp[c] * invstd[c]);
    if (args.gradBias != nullptr) args.gradBias[c] = static_cast<T>(sumDy[c]);
  }
}

template void batchNormForward<float>(const Geometry&, const ForwardArgs<float>&);
template void batchNormForward<double>(const Geometry&, const ForwardArgs<double>&);
template void batchNormBackward<float>(const Geometry&, const BackwardArgs<float>&);
template void batchNormBackward<double>(const Geometry&, const BackwardArgs<double>&);

}  // namespace batchnorm
