// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// PassCoefficients: the one hand-off from a per-channel finishing to an elementwise pass.
//
// Every finishing (kernel/channel_coefficients.h one channel at a time, coefficient_rows.h a vector of
// channels at a time) writes the coefficients of its pass, forward's normalization or backward's
// grad_input, into a PassCoefficients, and every pass reads them from there, on both traversals: planar
// rows take channel c's column, the flat evaluation joins neighbouring columns, interleaved blocks lay
// their columns out per position (FloatCoefficients in float_passes.h, layOutExact below). Laid out as
// rows, like ATen's alpha and beta arrays: row k holds coefficient k of every channel, so the vector
// finishing stores a step of channels with one store per row.
//   exact[k][c]   the operator's coefficients in double, ChannelAffine's fields (center, scale, shift) or
//                 GradientAffine's (center, gradMean, projection, scale), in that order;
//   floats[k][c]  the pass's four float coefficients (NormalizeInFloats or GradientInFloats k[]), valid
//                 where inFloats(c) (float32 on the FMA paths only; the bounds are in float_passes.h).
// The scalar chain (put) writes both forms of a channel, once per channel; the vector chain writes the
// float rows of every channel (markAllInFloats), or fails and the scalar chain then puts every channel.

// A channel's float coefficients in registers, or a chunk's worth of channels'.
struct FloatLanes {
  Floats k[4];
  // Channel c of four rows of float coefficients.
  static FloatLanes of(float* const (&rows)[4], int64_t c) {
    return {{Floats::broadcast(rows[0][c]), Floats::broadcast(rows[1][c]), Floats::broadcast(rows[2][c]),
             Floats::broadcast(rows[3][c])}};
  }
  // The first `count` lanes from this channel, the others from `next`.
  FloatLanes joined(int count, const FloatLanes& next) const {
    return {{selectFirst(count, k[0], next.k[0]), selectFirst(count, k[1], next.k[1]),
             selectFirst(count, k[2], next.k[2]), selectFirst(count, k[3], next.k[3])}};
  }
};

// The coefficients of a pass over tensors of T: float rows only where T's passes run in floats.
template <typename T>
class PassCoefficients {
 public:
  explicit PassCoefficients(int64_t count) : count_(count) {
    if constexpr (kFloatArithmetic<T>) {
      floatStorage_ = count <= kLocalChannels ? localFloats_ : new float[static_cast<size_t>(4 * count)];
      for (int k = 0; k < 4; ++k) floats[k] = floatStorage_ + k * count;
    }
  }
  ~PassCoefficients() {
    if (floatStorage_ != localFloats_) delete[] floatStorage_;  // deleting null is a no-op
    if (exactStorage_ != localExact_) delete[] exactStorage_;
    if (flags_ != localFlags_) delete[] flags_;
  }
  PassCoefficients(const PassCoefficients&) = delete;
  PassCoefficients& operator=(const PassCoefficients&) = delete;

  int64_t count() const { return count_; }

  // Channel c's normalization from the scalar chain: exact, and in floats where T's pass allows.
  BATCHNORM_ALWAYS_INLINE void put(int64_t c, const ChannelAffine& affine) {
    if (exactStorage_ == nullptr) allocateExact();
    exact[0][c] = affine.center;
    exact[1][c] = affine.scale;
    exact[2][c] = affine.shift;
    if constexpr (kFloatArithmetic<T>) {
      double k[4];
      putFloats(c, normalizeInFloats(affine.center, affine.scale, affine.shift, k), k);
    } else {
      flags_[c] = false;
    }
  }

  // Channel c's grad_input from the scalar chain: the training formula, or without readsInput (an
  // evaluation's backward), dx = dy * scale, whose pass in floats is a normalization of dy with center 0
  // and shift 0.
  BATCHNORM_ALWAYS_INLINE void put(int64_t c, const GradientAffine& coef, bool readsInput) {
    if (exactStorage_ == nullptr) allocateExact();
    exact[0][c] = coef.center;
    exact[1][c] = coef.gradMean;
    exact[2][c] = coef.projection;
    exact[3][c] = coef.scale;
    if constexpr (kFloatArithmetic<T>) {
      double k[4];
      putFloats(c,
                readsInput ? gradientInFloats(coef.center, coef.gradMean, coef.projection, coef.scale, k)
                           : normalizeInFloats(0.0, coef.scale, 0.0, k),
                k);
    } else {
      flags_[c] = false;
    }
  }

  // After the vector chain wrote every channel's float rows (and no channel was put).
  void markAllInFloats() { channelsInFloats_ = count_; }
  bool allInFloats() const { return channelsInFloats_ == count_; }
  bool inFloats(int64_t c) const { return allInFloats() || flags_[c]; }

  ChannelAffine affineOf(int64_t c) const {
    ChannelAffine affine;
    affine.center = exact[0][c];
    affine.scale = exact[1][c];
    affine.shift = exact[2][c];
    return affine;
  }
  GradientAffine gradientOf(int64_t c) const {
    GradientAffine coef;
    coef.center = exact[0][c];
    coef.gradMean = exact[1][c];
    coef.projection = exact[2][c];
    coef.scale = exact[3][c];
    return coef;
  }
  FloatLanes lanesOf(int64_t c) const { return FloatLanes::of(floats, c); }

  float* floats[4] = {nullptr, nullptr, nullptr, nullptr};  // where kFloatArithmetic<T>
  double* exact[4] = {nullptr, nullptr, nullptr, nullptr};  // allocated by the first put

 private:
  // Up to this many channels live in the object itself: a planar channel (1) and small calls such as (2, 4)
  // allocate nothing.
  static constexpr int64_t kLocalChannels = 8;

  // The exact rows and the flags, which only the scalar chain writes (the vector chain's calls never
  // allocate them).
  void allocateExact() {
    const bool local = count_ <= kLocalChannels;
    exactStorage_ = local ? localExact_ : new double[static_cast<size_t>(4 * count_)];
    flags_ = local ? localFlags_ : new bool[static_cast<size_t>(count_)];
    for (int k = 0; k < 4; ++k) exact[k] = exactStorage_ + k * count_;
  }

  // Each channel is put once, so counting the channels in floats tells whether all are.
  void putFloats(int64_t c, bool valid, const double (&k)[4]) {
    flags_[c] = valid;
    if (valid) {
      for (int i = 0; i < 4; ++i) floats[i][c] = static_cast<float>(k[i]);
      ++channelsInFloats_;
    }
  }

  int64_t count_;
  int64_t channelsInFloats_ = 0;
  float* floatStorage_ = nullptr;
  double* exactStorage_ = nullptr;
  bool* flags_ = nullptr;
  float localFloats_[4 * kLocalChannels];
  double localExact_[4 * kLocalChannels];
  bool localFlags_[kLocalChannels];
};

// Exact rows 0 .. rowCount-1 of channels [first, first + count) laid out per position, each channel's
// value repeated over its `spatial` positions: what the interleaved passes in double load a chunk of
// positions from.
template <typename T>
void layOutExact(const PassCoefficients<T>& coefficients, int64_t first, int64_t count, int64_t spatial, int rowCount,
                 double* const* rows) {
  for (int k = 0; k < rowCount; ++k) {
    const double* values = coefficients.exact[k] + first;
    double* row = rows[k];
    for (int64_t c = 0; c < count; ++c) broadcastRow(row, c * spatial, spatial, values[c]);
  }
}
