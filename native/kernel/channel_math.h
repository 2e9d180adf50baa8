// The per-channel finishing written once over a lane type L: double (one channel; the operator, the
// scalar oracle and every kernel's fallback) or a vector of doubles (vec::Doubles, Floats::lanes channels
// at a time in the kernels, kernel/cpu/parts/coefficient_rows.h). Both run the same operations in the
// same order, so the vector chain gives the scalar chain's bits by construction. A fragment, included
// (through kernel/channel_coefficients.h) inside each user's anonymous namespace, so that no inline
// function compiled with one ISA's flags is shared with another translation unit.
//
// The ops a lane type has: + - * /, sqrt, positivePart, roundedToFloat, truncatedToFloat, allAbsWithin,
// replaceZeros (vec/vec.h lists them for Doubles; the double ones are below) and lane<L>(value).
// Special values (a non-finite statistic, eps = 0 with a zero variance) take the scalar chain's own
// branches in kernel/channel_coefficients.h; the vector callers check for them and fall back. Always
// inlined: the vector chain keeps its values in registers across these steps.

// A lane of L holding `value` in every element.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline L lane(double value) {
  return L::broadcast(value);
}
template <>
BATCHNORM_ALWAYS_INLINE inline double lane<double>(double value) {
  return value;
}

// The double lane's ops, as vec/vec.h defines them for Doubles.
BATCHNORM_ALWAYS_INLINE inline double sqrt(double x) { return std::sqrt(x); }
BATCHNORM_ALWAYS_INLINE inline double positivePart(double x) { return x > 0 ? x : 0; }
BATCHNORM_ALWAYS_INLINE inline double roundedToFloat(double x) { return static_cast<double>(static_cast<float>(x)); }
// Toward zero to float precision (valid on float's normal range): the top 23 stored mantissa bits kept.
BATCHNORM_ALWAYS_INLINE inline double truncatedToFloat(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= vec::kFloatPrecisionBits;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}
BATCHNORM_ALWAYS_INLINE inline bool allAbsWithin(double x, double low, double high) { return std::fabs(x) >= low && std::fabs(x) <= high; }
BATCHNORM_ALWAYS_INLINE inline double replaceZeros(double x, double sign, double magnitude) {
  return x == 0 ? std::copysign(magnitude, sign) : x;
}

// Zero, or a magnitude in [2^-90, 2^90]: far from float's range ends, no product of such a coefficient
// with a float32 value underflows into subnormals or overflows early.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline bool allInFloatRange(L x) {
  return allAbsWithin(replaceZeros(x, x, 0x1p-90), 0x1p-90, 0x1p90);
}

// ---------------------------------------------------------------------------------------------------
// Statistics, running statistics and gradients (PyTorch's Normalization.cpp)

// 1 / sqrt(variance + eps); eps > 0 (invStd in channel_coefficients.h has the eps = 0 case).
template <typename L>
BATCHNORM_ALWAYS_INLINE inline L invStdOf(L variance, L eps) {
  return lane<L>(1.0) / sqrt(variance + eps);
}

// The mean (a double-double: mean + meanLow) and the sum of squared deviations from float32's shifted
// sums: sum and squares of x - pivot over `count` values (finite; see fromShiftedSums).
template <typename L>
struct ShiftedStatistics {
  L mean, meanLow, varSum;
};
template <typename L>
BATCHNORM_ALWAYS_INLINE inline ShiftedStatistics<L> statisticsFromShiftedSums(L pivot, L sum, L squares, L count) {
  const L offset = sum / count;
  ShiftedStatistics<L> stats;
  stats.mean = pivot + offset;
  const L pivotPart = stats.mean - offset;
  stats.meanLow = (pivot - pivotPart) + (offset - (stats.mean - pivotPart));
  stats.varSum = positivePart(squares - sum * offset);
  return stats;
}

// momentum * value + (1 - momentum) * running, with keep = 1 - momentum.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline L runningUpdate(L momentum, L keep, L value, L running) {
  return momentum * value + keep * running;
}

// dx = (dy - gradMean - (x - center) * projection) * scale from the gradient sums of a training backward.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline L gradMeanOf(L sumDy, L count) {
  return sumDy / count;
}
template <typename L>
BATCHNORM_ALWAYS_INLINE inline L projectionOf(L dotp, L invstd, L count) {
  return dotp * invstd * invstd / count;
}

// ---------------------------------------------------------------------------------------------------
// The float coefficients of the elementwise passes in float arithmetic (kernel/cpu/parts/float_passes.h
// gives their formulas and bounds); k[] in the order of their k* names. False where a lane needs the
// double passes.

// NormalizeInFloats: center, scale split into a high part toward zero and a low part, shift.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline bool normalizeInFloats(L center, L scale, L shift, L (&k)[4]) {
  const L centerInFloats = roundedToFloat(center);
  const L scaleHigh = truncatedToFloat(scale);
  k[0] = centerInFloats;
  k[1] = scaleHigh;
  // The low part is 0 only where the scale is a float; its smallest subnormal keeps an infinite x from
  // meeting Inf - Inf. Nonzero, it is at least 2^-142, so it stays nonzero in float.
  k[2] = replaceZeros(scale - scaleHigh, scale, 0x1p-149);
  k[3] = shift - (center - centerInFloats) * scale;
  return allAbsWithin(scale, 0x1p-90, 0x1p90) && allAbsWithin(center, 0, FLT_MAX) &&
         allAbsWithin(roundedToFloat(k[3]), 0, FLT_MAX);
}

// GradientInFloats: center, x's scale (-projection * scale), dy's scale, constant.
template <typename L>
BATCHNORM_ALWAYS_INLINE inline bool gradientInFloats(L center, L gradMean, L projection, L scale, L (&k)[4]) {
  const L xScale = lane<L>(-1.0) * projection * scale;  // -projection, exactly, then * scale
  const L centerInFloats = roundedToFloat(center);
  k[0] = centerInFloats;
  k[1] = xScale;
  k[2] = scale;
  k[3] = ((center - centerInFloats) * projection - gradMean) * scale;
  return allInFloatRange(scale) && allInFloatRange(xScale) && allAbsWithin(center, 0, FLT_MAX) &&
         allInFloatRange(k[3]);
}
