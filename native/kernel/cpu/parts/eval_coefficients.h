// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Evaluation's float coefficients, built for Floats::lanes channels at a time in vector registers.
//
// Per channel this is evalAffine (kernel/channel_affine.h) followed by NormalizeInFloats::coefficients,
// operation for operation in the same order, so the result is bit for bit theirs (core_check and the
// parity tests compare it with the scalar oracle). One channel at a time they cost about 90 instructions
// a channel (callgrind, (2, 1024)), most of an eval call on an (N, C) tensor with a small batch.
// NormalizeInFloats rounds the scale toward zero to float with a conversion and a correction step; on
// float's normal range, which the range check below guarantees, that is truncatedToFloat.

// Coefficient rows of an evaluation call: row k holds coefficient k (NormalizeInFloats' k* order) of
// every channel.
struct EvalFloatRows {
  float* row[4];
};

// The four float coefficients of `lanes` channels from their running statistics, or false when one of
// them needs the double path (what NormalizeInFloats::coefficients refuses).
BATCHNORM_ALWAYS_INLINE inline bool evalFloatChunk(const float* mean, const float* var, const float* weight,
                                                   const float* bias, double eps, Floats (&out)[4]) {
  Doubles k[4][2];
  Doubles means[2], vars[2], weights[2], biases[2];
  loadWidened(mean, means[0], means[1]);
  loadWidened(var, vars[0], vars[1]);
  loadWidened(weight, weights[0], weights[1]);
  loadWidened(bias, biases[0], biases[1]);
  const Doubles one = Doubles::broadcast(1.0), zero = Doubles::zero(), epsilon = Doubles::broadcast(eps);
  bool inFloats = true;
  for (int h = 0; h < 2; ++h) {
    const Doubles scale = one / sqrt(vars[h] + epsilon) * weights[h];
    const Doubles shift = biases[h] - zero * scale;  // affineFor with meanLow = 0: keeps the sign of a zero bias as there
    const Doubles center = roundedToFloat(means[h]);
    const Doubles scaleHigh = truncatedToFloat(scale);
    const Doubles shiftInFloats = shift - (means[h] - center) * scale;
    inFloats = inFloats && allAbsWithin(scale, 0x1p-90, 0x1p90) && allAbsWithin(means[h], 0, FLT_MAX) &&
               allAbsWithin(roundedToFloat(shiftInFloats), 0, FLT_MAX);
    k[NormalizeInFloats::kCenter][h] = center;
    k[NormalizeInFloats::kScaleHigh][h] = scaleHigh;
    // The low part is 0 only where the scale is a float; its smallest subnormal keeps an infinite x from
    // meeting Inf - Inf (see NormalizeInFloats). Nonzero, it is at least 2^-142, so it stays nonzero in float.
    k[NormalizeInFloats::kScaleLow][h] = replaceZeros(scale - scaleHigh, scale, 0x1p-149);
    k[NormalizeInFloats::kShift][h] = shiftInFloats;
  }
  for (int i = 0; i < 4; ++i) out[i] = narrow(k[i][0], k[i][1]);
  return inFloats;
}

// Every channel's coefficients into `rows`, or false (rows then partly written) when a channel needs
// the double path.
inline bool evalFloatRows(const EvalChannels<float>& in, int64_t channels, const EvalFloatRows& rows) {
  constexpr int lanes = Floats::lanes;
  for (int64_t c = 0; c < channels; c += lanes) {
    const int count = static_cast<int>(minInt64(lanes, channels - c));
    Floats k[4];
    if (count == lanes && in.weight != nullptr && in.bias != nullptr) {
      if (!evalFloatChunk(in.runningMean + c, in.runningVar + c, in.weight + c, in.bias + c, in.eps, k)) return false;
    } else {
      // A tail or absent parameters: the channels copied out with values that pass every check.
      float mean[lanes], var[lanes], weight[lanes], bias[lanes];
      for (int i = 0; i < lanes; ++i) {
        mean[i] = i < count ? in.runningMean[c + i] : 0.0f;
        var[i] = i < count ? in.runningVar[c + i] : 1.0f;
        weight[i] = i < count && in.weight != nullptr ? in.weight[c + i] : 1.0f;
        bias[i] = i < count && in.bias != nullptr ? in.bias[c + i] : 0.0f;
      }
      if (!evalFloatChunk(mean, var, weight, bias, in.eps, k)) return false;
    }
    for (int i = 0; i < 4; ++i) {
      if (count == lanes) {
        k[i].store(rows.row[i] + c);
      } else {
        k[i].storeFirst(rows.row[i] + c, count);
      }
    }
  }
  return true;
}
