// A channel's normalization from its statistics, as PyTorch's Normalization.cpp computes it: shared by
// the operator (batch_norm.cc), the scalar oracle and the kernels' fallback for channels whose
// coefficients leave float range. A fragment, included inside each user's anonymous namespace so that
// no inline function compiled with one ISA's flags is shared with another translation unit.

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
  const double invstd = 1 / std::sqrt(static_cast<double>(in.runningVar[c]) + in.eps);
  const double weight = in.weight != nullptr ? static_cast<double>(in.weight[c]) : 1;
  const double bias = in.bias != nullptr ? static_cast<double>(in.bias[c]) : 0;
  return affineFor(static_cast<double>(in.runningMean[c]), 0, invstd * weight, bias);
}
