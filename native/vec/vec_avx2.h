// AVX2 + FMA vector types: 4 doubles, 8 floats. Only included by translation units compiled with
// -mavx2 -mfma (BATCHNORM_CPU_AVX2).
#pragma once

#include <immintrin.h>

#include "vec/float_precision.h"

namespace batchnorm::vec {
inline namespace avx2 {

// Lane i is enabled when i < count, for masked loads and stores of tails.
inline __m256i firstLanes64(int count) {
  const __m256i index = _mm256_setr_epi64x(0, 1, 2, 3);
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), index);
}
inline __m256i firstLanes32(int count) {
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), index);
}

struct Doubles {
  static constexpr int lanes = 4;
  __m256d v;

  static Doubles zero() { return {_mm256_setzero_pd()}; }
  static Doubles broadcast(double value) { return {_mm256_set1_pd(value)}; }
  static Doubles load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Doubles loadFirst(const double* p, int count) { return {_mm256_maskload_pd(p, firstLanes64(count))}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void storeFirst(double* p, int count) const { _mm256_maskstore_pd(p, firstLanes64(count), v); }
  // Non-temporal store; p must be 32-byte aligned.
  void stream(double* p) const { _mm256_stream_pd(p, v); }
  // Fixed order: (l0 + l2) + (l1 + l3).
  double sum() const {
    const __m128d pairs = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pairs, _mm_unpackhi_pd(pairs, pairs)));
  }
};

inline Doubles operator+(Doubles a, Doubles b) { return {_mm256_add_pd(a.v, b.v)}; }
inline Doubles operator-(Doubles a, Doubles b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline Doubles operator*(Doubles a, Doubles b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline Doubles fmadd(Doubles a, Doubles b, Doubles c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
inline Doubles keepFirst(Doubles a, int count) {
  return {_mm256_and_pd(a.v, _mm256_castsi256_pd(firstLanes64(count)))};
}
inline Doubles selectFirst(int count, Doubles first, Doubles rest) {
  return {_mm256_blendv_pd(rest.v, first.v, _mm256_castsi256_pd(firstLanes64(count)))};
}
inline Doubles operator/(Doubles a, Doubles b) { return {_mm256_div_pd(a.v, b.v)}; }
inline Doubles sqrt(Doubles a) { return {_mm256_sqrt_pd(a.v)}; }
inline Doubles positivePart(Doubles a) {
  return {_mm256_and_pd(a.v, _mm256_cmp_pd(a.v, _mm256_setzero_pd(), _CMP_GT_OQ))};
}
inline Doubles roundedToFloat(Doubles a) { return {_mm256_cvtps_pd(_mm256_cvtpd_ps(a.v))}; }
inline Doubles truncatedToFloat(Doubles a) {
  return {_mm256_and_pd(a.v, _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(kFloatPrecisionBits))))};
}
inline bool allAbsWithin(Doubles a, double low, double high) {
  const __m256d magnitude = _mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v);
  const __m256d inside = _mm256_and_pd(_mm256_cmp_pd(magnitude, _mm256_set1_pd(low), _CMP_GE_OQ),
                                       _mm256_cmp_pd(magnitude, _mm256_set1_pd(high), _CMP_LE_OQ));
  return _mm256_movemask_pd(inside) == 0xF;
}
inline Doubles replaceZeros(Doubles a, Doubles signs, double magnitude) {
  const __m256d zeros = _mm256_cmp_pd(a.v, _mm256_setzero_pd(), _CMP_EQ_OQ);
  const __m256d signed_ = _mm256_or_pd(_mm256_and_pd(signs.v, _mm256_set1_pd(-0.0)), _mm256_set1_pd(magnitude));
  return {_mm256_blendv_pd(a.v, signed_, zeros)};
}

struct Floats {
  static constexpr int lanes = 8;
  __m256 v;

  static Floats broadcast(float value) { return {_mm256_set1_ps(value)}; }
  static Floats load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Floats loadFirst(const float* p, int count) { return {_mm256_maskload_ps(p, firstLanes32(count))}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void storeFirst(float* p, int count) const { _mm256_maskstore_ps(p, firstLanes32(count), v); }
  // Non-temporal store; p must be 32-byte aligned.
  void stream(float* p) const { _mm256_stream_ps(p, v); }
};

inline Floats operator-(Floats a, Floats b) { return {_mm256_sub_ps(a.v, b.v)}; }
// Lanes below `count` from `first`, the others from `rest`.
inline Floats selectFirst(int count, Floats first, Floats rest) {
  return {_mm256_blendv_ps(rest.v, first.v, _mm256_castsi256_ps(firstLanes32(count)))};
}
inline Floats fmadd(Floats a, Floats b, Floats c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
constexpr bool kFusedFloats = true;

// Orders earlier non-temporal stores before later stores (end of a streaming pass).
inline void streamFence() { _mm_sfence(); }

inline void widen(Floats f, Doubles& low, Doubles& high) {
  low.v = _mm256_cvtps_pd(_mm256_castps256_ps128(f.v));
  high.v = _mm256_cvtps_pd(_mm256_extractf128_ps(f.v, 1));
}
// widen(Floats::load(p)) and narrow(low, high).store(p) without the cross-lane shuffles: the
// conversions read and write memory halves directly.
inline void loadWidened(const float* p, Doubles& low, Doubles& high) {
  low.v = _mm256_cvtps_pd(_mm_loadu_ps(p));
  high.v = _mm256_cvtps_pd(_mm_loadu_ps(p + 4));
}
inline void storeNarrowed(float* p, Doubles low, Doubles high) {
  _mm_storeu_ps(p, _mm256_cvtpd_ps(low.v));
  _mm_storeu_ps(p + 4, _mm256_cvtpd_ps(high.v));
}
inline Floats narrow(Doubles low, Doubles high) {
  return {_mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(low.v)), _mm256_cvtpd_ps(high.v), 1)};
}

}  // namespace avx2
}  // namespace batchnorm::vec
