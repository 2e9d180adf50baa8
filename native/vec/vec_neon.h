// NEON vector types for AArch64, where NEON is baseline: 2 doubles, 4 floats. Used by the default path
// of arm64 builds (BATCHNORM_CPU_NEON).
#pragma once

#include "vec/always_inline.h"

#include <arm_neon.h>

#include "vec/float_precision.h"

namespace batchnorm::vec {
inline namespace neon {

struct Doubles {
  static constexpr int lanes = 2;
  float64x2_t v;

  BATCHNORM_ALWAYS_INLINE static Doubles zero() { return {vdupq_n_f64(0.0)}; }
  BATCHNORM_ALWAYS_INLINE static Doubles broadcast(double value) { return {vdupq_n_f64(value)}; }
  BATCHNORM_ALWAYS_INLINE static Doubles load(const double* p) { return {vld1q_f64(p)}; }
  BATCHNORM_ALWAYS_INLINE static Doubles loadFirst(const double* p, int count) {
    double lanesIn[lanes] = {0.0, 0.0};
    for (int i = 0; i < count && i < lanes; ++i) lanesIn[i] = p[i];
    return {vld1q_f64(lanesIn)};
  }
  BATCHNORM_ALWAYS_INLINE void store(double* p) const { vst1q_f64(p, v); }
  BATCHNORM_ALWAYS_INLINE void storeFirst(double* p, int count) const {
    double lanesOut[lanes];
    vst1q_f64(lanesOut, v);
    for (int i = 0; i < count && i < lanes; ++i) p[i] = lanesOut[i];
  }
  BATCHNORM_ALWAYS_INLINE void stream(double* p) const { store(p); }
  BATCHNORM_ALWAYS_INLINE double sum() const { return vgetq_lane_f64(v, 0) + vgetq_lane_f64(v, 1); }
};

BATCHNORM_ALWAYS_INLINE inline Doubles operator+(Doubles a, Doubles b) { return {vaddq_f64(a.v, b.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles operator-(Doubles a, Doubles b) { return {vsubq_f64(a.v, b.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles operator*(Doubles a, Doubles b) { return {vmulq_f64(a.v, b.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles fmadd(Doubles a, Doubles b, Doubles c) { return {vfmaq_f64(c.v, a.v, b.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles keepFirst(Doubles a, int count) {
  if (count >= Doubles::lanes) return a;
  if (count <= 0) return Doubles::zero();
  return {vsetq_lane_f64(0.0, a.v, 1)};
}
BATCHNORM_ALWAYS_INLINE inline Doubles selectFirst(int count, Doubles first, Doubles rest) {
  if (count >= Doubles::lanes) return first;
  if (count <= 0) return rest;
  return {vsetq_lane_f64(vgetq_lane_f64(rest.v, 1), first.v, 1)};
}
BATCHNORM_ALWAYS_INLINE inline Doubles operator/(Doubles a, Doubles b) { return {vdivq_f64(a.v, b.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles sqrt(Doubles a) { return {vsqrtq_f64(a.v)}; }
BATCHNORM_ALWAYS_INLINE inline Doubles positivePart(Doubles a) {
  return {vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(a.v), vcgtq_f64(a.v, vdupq_n_f64(0.0))))};
}
BATCHNORM_ALWAYS_INLINE inline Doubles roundedToFloat(Doubles a) { return {vcvt_f64_f32(vcvt_f32_f64(a.v))}; }
BATCHNORM_ALWAYS_INLINE inline Doubles truncatedToFloat(Doubles a) {
  return {vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(a.v), vdupq_n_u64(kFloatPrecisionBits)))};
}
BATCHNORM_ALWAYS_INLINE inline bool allAbsWithin(Doubles a, double low, double high) {
  const float64x2_t magnitude = vabsq_f64(a.v);
  const uint64x2_t inside = vandq_u64(vcgeq_f64(magnitude, vdupq_n_f64(low)), vcleq_f64(magnitude, vdupq_n_f64(high)));
  return (vgetq_lane_u64(inside, 0) & vgetq_lane_u64(inside, 1)) == ~uint64_t{0};
}
BATCHNORM_ALWAYS_INLINE inline Doubles replaceZeros(Doubles a, Doubles signs, double magnitude) {
  const uint64x2_t zeros = vceqq_f64(a.v, vdupq_n_f64(0.0));
  const float64x2_t signed_ = vbslq_f64(vdupq_n_u64(uint64_t{1} << 63), signs.v, vdupq_n_f64(magnitude));
  return {vbslq_f64(zeros, signed_, a.v)};
}

struct Floats {
  static constexpr int lanes = 4;
  float32x4_t v;

  BATCHNORM_ALWAYS_INLINE static Floats broadcast(float value) { return {vdupq_n_f32(value)}; }
  BATCHNORM_ALWAYS_INLINE static Floats load(const float* p) { return {vld1q_f32(p)}; }
  BATCHNORM_ALWAYS_INLINE static Floats loadFirst(const float* p, int count) {
    float lanesIn[lanes] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < count && i < lanes; ++i) lanesIn[i] = p[i];
    return {vld1q_f32(lanesIn)};
  }
  BATCHNORM_ALWAYS_INLINE void store(float* p) const { vst1q_f32(p, v); }
  BATCHNORM_ALWAYS_INLINE void storeFirst(float* p, int count) const {
    float lanesOut[lanes];
    vst1q_f32(lanesOut, v);
    for (int i = 0; i < count && i < lanes; ++i) p[i] = lanesOut[i];
  }
  BATCHNORM_ALWAYS_INLINE void stream(float* p) const { store(p); }
};

BATCHNORM_ALWAYS_INLINE inline Floats operator-(Floats a, Floats b) { return {vsubq_f32(a.v, b.v)}; }
// Lanes below `count` from `first`, the others from `rest`.
BATCHNORM_ALWAYS_INLINE inline Floats selectFirst(int count, Floats first, Floats rest) {
  const int32_t index[4] = {0, 1, 2, 3};
  const uint32x4_t mask = vcltq_s32(vld1q_s32(index), vdupq_n_s32(count));
  return {vbslq_f32(mask, first.v, rest.v)};
}
BATCHNORM_ALWAYS_INLINE inline Floats fmadd(Floats a, Floats b, Floats c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
constexpr bool kFusedFloats = true;

BATCHNORM_ALWAYS_INLINE inline void streamFence() {}

BATCHNORM_ALWAYS_INLINE inline void widen(Floats f, Doubles& low, Doubles& high) {
  low.v = vcvt_f64_f32(vget_low_f32(f.v));
  high.v = vcvt_high_f64_f32(f.v);
}
BATCHNORM_ALWAYS_INLINE inline Floats narrow(Doubles low, Doubles high) {
  return {vcvt_high_f32_f64(vcvt_f32_f64(low.v), high.v)};
}

BATCHNORM_ALWAYS_INLINE inline void loadWidened(const float* p, Doubles& low, Doubles& high) {
  widen(Floats::load(p), low, high);
}
BATCHNORM_ALWAYS_INLINE inline void storeNarrowed(float* p, Doubles low, Doubles high) { narrow(low, high).store(p); }

}  // namespace neon
}  // namespace batchnorm::vec
