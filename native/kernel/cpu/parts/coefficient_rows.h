// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// The per-channel finishing of float32 calls, Floats::lanes channels per step in vector registers:
// evaluation's coefficients from the running statistics, training's statistics and coefficients from
// the shifted sums, backward's gradients and coefficients from the gradient sums.
//
// Each is the scalar chain (kernel/channel_coefficients.h, then PassCoefficients::put) on a vector of
// channels, writing the float rows of a PassCoefficients: both call the lane templates of
// kernel/channel_math.h, so the results are theirs bit for bit by construction. One channel at a time that chain cost about 90
// instructions a channel in eval and 250 in backward (callgrind, (2, 1024)): most of a call on an (N, C)
// tensor with a small batch. Where a channel needs one of the scalar chain's special cases (checked by
// the callers) or fails the float range checks, the caller computes the whole call (eval) or block
// (training, backward) in double, as the scalar chain would.

// Floats::lanes channels from c on, through `step(c, count)`, until a step returns false.
template <typename Step>
BATCHNORM_ALWAYS_INLINE inline bool forChannelSteps(int64_t channels, Step&& step) {
  for (int64_t c = 0; c < channels; c += Floats::lanes) {
    if (!step(c, static_cast<int>(minInt64(Floats::lanes, channels - c)))) return false;
  }
  return true;
}

// One step of values as two Doubles: `absent` everywhere where `values` is null; in a partial step
// (count < lanes) only `count` values are read and the other lanes are `padding`, a value that passes
// every check. (Partial steps load with masks: copying the values into a padded local array first made
// each wide load wait for the narrow stores, a fifth of a (2, 4) eval call.)
// The values are of a storage type (Element<V>) or double (the sums); `absent` and `padding` are exact in V.
template <typename V>
BATCHNORM_ALWAYS_INLINE inline void loadStep(const V* values, int count, double absent, double padding,
                                             Doubles (&out)[2]) {
  if (values == nullptr) {
    out[0] = out[1] = Doubles::broadcast(absent);
    return;
  }
  if constexpr (Element<V>::kFloatPrecision) {
    if (count < Floats::lanes) {
      widen(selectFirst(count, Element<V>::loadFirst(values, count), Floats::broadcast(static_cast<float>(padding))),
            out[0], out[1]);
    } else {
      Element<V>::loadWidened(values, out[0], out[1]);
    }
  } else {
    for (int h = 0; h < 2; ++h) {
      const int valid = clampInt(count - h * Doubles::lanes, 0, Doubles::lanes);
      out[h] = valid == Doubles::lanes ? Element<V>::load(values + h * Doubles::lanes)
                                       : selectFirst(valid, Element<V>::loadFirst(values + h * Doubles::lanes, valid),
                                                     Doubles::broadcast(padding));
    }
  }
}

template <typename T>
BATCHNORM_ALWAYS_INLINE inline void storeStep(const Doubles (&halves)[2], T* to, int count) {
  if (count == Floats::lanes) {
    Element<T>::storeNarrowed(to, halves[0], halves[1]);
  } else {
    Element<T>::storeFirst(narrow(halves[0], halves[1]), to, count);
  }
}

// A step of channels' float coefficients into the float rows of a PassCoefficients.
template <typename T>
BATCHNORM_ALWAYS_INLINE inline void storeRows(const Doubles (&k)[4][2], const PassCoefficients<T>& rows, int64_t c,
                                              int count) {
  for (int i = 0; i < 4; ++i) storeStep(k[i], rows.floats[i] + c, count);
}

// Evaluation: every channel's NormalizeInFloats coefficients from the running statistics (evalAffine),
// into the float rows of `rows`, or false when a channel needs the double path.
template <typename T>
bool evalFloatRows(const EvalChannels<T>& in, int64_t channels, const PassCoefficients<T>& rows) {
  const Doubles epsilon = Doubles::broadcast(in.eps), zero = Doubles::zero();
  return forChannelSteps(channels, [&](int64_t c, int count) {
    Doubles mean[2], var[2], weight[2], bias[2];
    loadStep(in.runningMean + c, count, 0.0, 0.0, mean);
    loadStep(in.runningVar + c, count, 1.0, 1.0, var);
    loadStep(in.weight != nullptr ? in.weight + c : nullptr, count, 1.0, 1.0, weight);
    loadStep(in.bias != nullptr ? in.bias + c : nullptr, count, 0.0, 0.0, bias);
    Doubles k[4][2];
    bool inFloats = true;
    for (int h = 0; h < 2; ++h) {
      const Doubles scale = invStdOf(var[h], epsilon) * weight[h];
      // affineFor with meanLow = 0: bias - 0 * scale, which keeps the sign of a zero bias as there.
      Doubles half[4];
      inFloats = normalizeInFloats(mean[h], scale, bias[h] - zero * scale, half) && inFloats;
      for (int i = 0; i < 4; ++i) k[i][h] = half[i];
    }
    if (inFloats) storeRows(k, rows, c, count);
    return inFloats;
  });
}

// Backward: the weight and bias gradients and the dx coefficients in floats (finishGradients, then
// GradientInFloats or, in evaluation, NormalizeInFloats of dy) of `channels` channels from `first` on,
// from their sums, into the float rows of `rows` from 0 on, or false when a channel needs the double path
// (the gradients may then be partly written: the scalar path rewrites them with the same values).
template <typename T>
bool gradientFloatRows(const BackwardChannels<T>& in, int64_t first, int64_t channels, const double* sumDy,
                       const double* dotp, const PassCoefficients<T>& rows) {
  const Doubles count = Doubles::broadcast(in.count), zero = Doubles::zero();
  return forChannelSteps(channels, [&](int64_t c, int n) {
    const int64_t at = first + c;
    Doubles sum[2], product[2], invstd[2], center[2], weight[2];
    loadStep(sumDy + c, n, 0.0, 0.0, sum);
    loadStep(dotp + c, n, 0.0, 0.0, product);
    loadStep(in.invstd + at, n, 1.0, 1.0, invstd);
    loadStep(in.center + at, n, 0.0, 0.0, center);
    loadStep(in.weight != nullptr ? in.weight + at : nullptr, n, 1.0, 1.0, weight);
    Doubles k[4][2], gradWeight[2];
    bool inFloats = true;
    for (int h = 0; h < 2; ++h) {
      gradWeight[h] = product[h] * invstd[h];
      const Doubles scale = invstd[h] * weight[h];
      Doubles half[4];
      inFloats = (in.readsInput ? gradientInFloats(center[h], gradMeanOf(sum[h], count),
                                                   projectionOf(product[h], invstd[h], count), scale, half)
                                : normalizeInFloats(zero, scale, zero, half)) &&
                 inFloats;
      for (int i = 0; i < 4; ++i) k[i][h] = half[i];
    }
    if (in.gradWeight != nullptr) storeStep(gradWeight, in.gradWeight + at, n);
    if (in.gradBias != nullptr) storeStep(sum, in.gradBias + at, n);
    if (inFloats) storeRows(k, rows, c, n);
    return inFloats;
  });
}

// Training (float32, shifted sums): per channel, the statistics of fromShiftedSums from its sum and sum
// of squares about its pivot, then recordStatistics and statisticsAffine, then NormalizeInFloats. Every
// channel's saved and running statistics are written whatever the outcome; the statistics go to
// `stats` (rows mean, meanLow, varSum). True when every channel's coefficients went to the float rows of
// `rows`;
// false when one needs the double path (the caller builds those from `stats`). Needs finite sums and
// eps > 0 (fromShiftedSums and invStd have special cases otherwise): the caller checks.
template <typename T>
bool statisticsFloatRows(const ForwardChannels<T>& in, int64_t first, int64_t channels, const double* sum,
                         const double* squares, const double* pivot, double* const (&stats)[3],
                         const PassCoefficients<T>& rows) {
  const Doubles count = Doubles::broadcast(in.count), unbiasedCount = Doubles::broadcast(in.count - 1);
  const Doubles epsilon = Doubles::broadcast(in.eps);
  const Doubles momentum = Doubles::broadcast(in.momentum), keep = Doubles::broadcast(1 - in.momentum);
  bool inFloats = true;
  forChannelSteps(channels, [&](int64_t c, int n) {
    const int64_t at = first + c;
    Doubles sums[2], squareSums[2], pivots[2], weight[2], bias[2], runningMean[2], runningVar[2];
    loadStep(sum + c, n, 0.0, 0.0, sums);
    loadStep(squares + c, n, 0.0, 0.0, squareSums);
    loadStep(pivot + c, n, 0.0, 0.0, pivots);
    loadStep(in.weight != nullptr ? in.weight + at : nullptr, n, 1.0, 1.0, weight);
    loadStep(in.bias != nullptr ? in.bias + at : nullptr, n, 0.0, 0.0, bias);
    loadStep(in.runningMean != nullptr ? in.runningMean + at : nullptr, n, 0.0, 0.0, runningMean);
    loadStep(in.runningVar != nullptr ? in.runningVar + at : nullptr, n, 0.0, 0.0, runningVar);
    Doubles k[4][2], mean[2], meanLow[2], varSum[2], invstd[2];
    for (int h = 0; h < 2; ++h) {
      const ShiftedStatistics<Doubles> shifted = statisticsFromShiftedSums(pivots[h], sums[h], squareSums[h], count);
      mean[h] = shifted.mean;
      meanLow[h] = shifted.meanLow;
      varSum[h] = shifted.varSum;
      invstd[h] = invStdOf(varSum[h] / count, epsilon);
      runningMean[h] = runningUpdate(momentum, keep, mean[h], runningMean[h]);
      runningVar[h] = runningUpdate(momentum, keep, varSum[h] / unbiasedCount, runningVar[h]);
      const Doubles scale = invstd[h] * weight[h];
      Doubles half[4];
      inFloats = normalizeInFloats(mean[h], scale, bias[h] - meanLow[h] * scale, half) && inFloats;
      for (int i = 0; i < 4; ++i) k[i][h] = half[i];
    }
    storeStep(mean, in.saveMean + at, n);
    storeStep(invstd, in.saveInvstd + at, n);
    if (in.runningMean != nullptr) storeStep(runningMean, in.runningMean + at, n);
    if (in.runningVar != nullptr) storeStep(runningVar, in.runningVar + at, n);
    const Doubles* const values[3] = {mean, meanLow, varSum};
    for (int i = 0; i < 3; ++i) {
      for (int h = 0; h < 2; ++h) {
        const int valid = n - h * Doubles::lanes;
        if (valid >= Doubles::lanes) {
          values[i][h].store(stats[i] + c + h * Doubles::lanes);
        } else if (valid > 0) {
          values[i][h].storeFirst(stats[i] + c + h * Doubles::lanes, valid);
        }
      }
    }
    if (inFloats) storeRows(k, rows, c, n);
    return true;
  });
  return inFloats;
}
