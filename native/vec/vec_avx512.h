// AVX-512 (F/BW/VL/DQ) vector types: 8 doubles, 16 floats, with mask registers for tails. Only
// included by translation units compiled with the AVX-512 flags (BATCHNORM_CPU_AVX512).
#pragma once

#include <immintrin.h>

#include "vec/float_precision.h"

namespace batchnorm::vec {
inline namespace avx512 {

inline __mmask8 firstLanes8(int count) { return static_cast<__mmask8>((1u << count) - 1u); }
inline __mmask16 firstLanes16(int count) { return static_cast<__mmask16>((1u << count) - 1u); }

struct Doubles {
  static constexpr int lanes = 8;
  __m512d v;

  static Doubles zero() { return {_mm512_setzero_pd()}; }
  static Doubles broadcast(double value) { return {_mm512_set1_pd(value)}; }
  static Doubles load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Doubles loadFirst(const double* p, int count) { return {_mm512_maskz_loadu_pd(firstLanes8(count), p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void storeFirst(double* p, int count) const { _mm512_mask_storeu_pd(p, firstLanes8(count), v); }
  // Non-temporal store; p must be 64-byte aligned.
  void stream(double* p) const { _mm512_stream_pd(p, v); }
  // Fixed order: halves, then quarters, then pairs (the same tree on every call).
  double sum() const {
    const __m256d half = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    const __m128d quarter = _mm_add_pd(_mm256_castpd256_pd128(half), _mm256_extractf128_pd(half, 1));
    return _mm_cvtsd_f64(_mm_add_sd(quarter, _mm_unpackhi_pd(quarter, quarter)));
  }
};

inline Doubles operator+(Doubles a, Doubles b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Doubles operator-(Doubles a, Doubles b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Doubles operator*(Doubles a, Doubles b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Doubles fmadd(Doubles a, Doubles b, Doubles c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
inline Doubles keepFirst(Doubles a, int count) { return {_mm512_maskz_mov_pd(firstLanes8(count), a.v)}; }
inline Doubles selectFirst(int count, Doubles first, Doubles rest) {
  return {_mm512_mask_blend_pd(firstLanes8(count), rest.v, first.v)};
}
inline Doubles operator/(Doubles a, Doubles b) { return {_mm512_div_pd(a.v, b.v)}; }
inline Doubles sqrt(Doubles a) { return {_mm512_sqrt_pd(a.v)}; }
inline Doubles positivePart(Doubles a) {
  return {_mm512_maskz_mov_pd(_mm512_cmp_pd_mask(a.v, _mm512_setzero_pd(), _CMP_GT_OQ), a.v)};
}
inline Doubles roundedToFloat(Doubles a) { return {_mm512_cvtps_pd(_mm512_cvtpd_ps(a.v))}; }
inline Doubles truncatedToFloat(Doubles a) {
  return {_mm512_and_pd(a.v, _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(kFloatPrecisionBits))))};
}
inline bool allAbsWithin(Doubles a, double low, double high) {
  const __m512d magnitude = _mm512_abs_pd(a.v);
  const __mmask8 inside = _mm512_cmp_pd_mask(magnitude, _mm512_set1_pd(low), _CMP_GE_OQ) &
                          _mm512_cmp_pd_mask(magnitude, _mm512_set1_pd(high), _CMP_LE_OQ);
  return inside == 0xFF;
}
inline Doubles replaceZeros(Doubles a, Doubles signs, double magnitude) {
  const __mmask8 zeros = _mm512_cmp_pd_mask(a.v, _mm512_setzero_pd(), _CMP_EQ_OQ);
  const __m512d signed_ = _mm512_or_pd(_mm512_and_pd(signs.v, _mm512_set1_pd(-0.0)), _mm512_set1_pd(magnitude));
  return {_mm512_mask_blend_pd(zeros, a.v, signed_)};
}

struct Floats {
  static constexpr int lanes = 16;
  __m512 v;

  static Floats broadcast(float value) { return {_mm512_set1_ps(value)}; }
  static Floats load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Floats loadFirst(const float* p, int count) { return {_mm512_maskz_loadu_ps(firstLanes16(count), p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void storeFirst(float* p, int count) const { _mm512_mask_storeu_ps(p, firstLanes16(count), v); }
  // Non-temporal store; p must be 64-byte aligned.
  void stream(float* p) const { _mm512_stream_ps(p, v); }
};

inline Floats operator-(Floats a, Floats b) { return {_mm512_sub_ps(a.v, b.v)}; }
// Lanes below `count` from `first`, the others from `rest`.
inline Floats selectFirst(int count, Floats first, Floats rest) {
  return {_mm512_mask_blend_ps(firstLanes16(count), rest.v, first.v)};
}
inline Floats fmadd(Floats a, Floats b, Floats c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
constexpr bool kFusedFloats = true;

// Orders earlier non-temporal stores before later stores (end of a streaming pass).
inline void streamFence() { _mm_sfence(); }

inline void widen(Floats f, Doubles& low, Doubles& high) {
  low.v = _mm512_cvtps_pd(_mm512_castps512_ps256(f.v));
  high.v = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f.v), 1)));
}
// widen(Floats::load(p)) and narrow(low, high).store(p) without the cross-lane shuffles: the
// conversions read and write memory halves directly.
inline void loadWidened(const float* p, Doubles& low, Doubles& high) {
  low.v = _mm512_cvtps_pd(_mm256_loadu_ps(p));
  high.v = _mm512_cvtps_pd(_mm256_loadu_ps(p + 8));
}
inline void storeNarrowed(float* p, Doubles low, Doubles high) {
  _mm256_storeu_ps(p, _mm512_cvtpd_ps(low.v));
  _mm256_storeu_ps(p + 8, _mm512_cvtpd_ps(high.v));
}
inline Floats narrow(Doubles low, Doubles high) {
  const __m256 lowFloats = _mm512_cvtpd_ps(low.v);
  const __m256 highFloats = _mm512_cvtpd_ps(high.v);
  return {_mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lowFloats)),
                                              _mm256_castps_pd(highFloats), 1))};
}

}  // namespace avx512
}  // namespace batchnorm::vec
