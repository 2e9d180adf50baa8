// Portable vector types: plain C++ arrays the compiler maps onto the baseline SIMD of the target
// (SSE2 on x86-64, NEON on AArch64). Used by the "default" kernel path.
#pragma once

#include "vec/always_inline.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vec/float_precision.h"

namespace batchnorm::vec {
inline namespace base {

struct Doubles {
  static constexpr int lanes = 2;
  double v[lanes];

  BATCHNORM_ALWAYS_INLINE static Doubles zero() { return broadcast(0.0); }
  BATCHNORM_ALWAYS_INLINE static Doubles broadcast(double value) {
    Doubles r;
    for (int i = 0; i < lanes; ++i) r.v[i] = value;
    return r;
  }
  BATCHNORM_ALWAYS_INLINE static Doubles load(const double* p) {
    Doubles r;
    for (int i = 0; i < lanes; ++i) r.v[i] = p[i];
    return r;
  }
  BATCHNORM_ALWAYS_INLINE static Doubles loadFirst(const double* p, int count) {
    Doubles r = zero();
    for (int i = 0; i < count; ++i) r.v[i] = p[i];
    return r;
  }
  BATCHNORM_ALWAYS_INLINE void store(double* p) const {
    for (int i = 0; i < lanes; ++i) p[i] = v[i];
  }
  BATCHNORM_ALWAYS_INLINE void storeFirst(double* p, int count) const {
    for (int i = 0; i < count; ++i) p[i] = v[i];
  }
  BATCHNORM_ALWAYS_INLINE void stream(double* p) const { store(p); }  // no portable non-temporal store
  BATCHNORM_ALWAYS_INLINE double sum() const { return v[0] + v[1]; }
};

BATCHNORM_ALWAYS_INLINE inline Doubles operator+(Doubles a, Doubles b) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] += b.v[i];
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles operator-(Doubles a, Doubles b) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] -= b.v[i];
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles operator*(Doubles a, Doubles b) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] *= b.v[i];
  return a;
}
// Not fused on the portable path (no FMA in baseline x86-64); the difference is below float rounding.
BATCHNORM_ALWAYS_INLINE inline Doubles fmadd(Doubles a, Doubles b, Doubles c) { return a * b + c; }
BATCHNORM_ALWAYS_INLINE inline Doubles keepFirst(Doubles a, int count) {
  for (int i = count; i < Doubles::lanes; ++i) a.v[i] = 0;
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles selectFirst(int count, Doubles first, Doubles rest) {
  for (int i = count < 0 ? 0 : count; i < Doubles::lanes; ++i) first.v[i] = rest.v[i];
  return first;
}
BATCHNORM_ALWAYS_INLINE inline Doubles operator/(Doubles a, Doubles b) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] /= b.v[i];
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles sqrt(Doubles a) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] = std::sqrt(a.v[i]);
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles positivePart(Doubles a) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] = a.v[i] > 0 ? a.v[i] : 0;
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles roundedToFloat(Doubles a) {
  for (int i = 0; i < Doubles::lanes; ++i) a.v[i] = static_cast<double>(static_cast<float>(a.v[i]));
  return a;
}
BATCHNORM_ALWAYS_INLINE inline Doubles truncatedToFloat(Doubles a) {
  for (int i = 0; i < Doubles::lanes; ++i) {
    uint64_t bits;
    std::memcpy(&bits, &a.v[i], sizeof bits);
    bits &= kFloatPrecisionBits;
    std::memcpy(&a.v[i], &bits, sizeof bits);
  }
  return a;
}
BATCHNORM_ALWAYS_INLINE inline bool allAbsWithin(Doubles a, double low, double high) {
  bool inside = true;
  for (int i = 0; i < Doubles::lanes; ++i) inside = inside && std::fabs(a.v[i]) >= low && std::fabs(a.v[i]) <= high;
  return inside;
}
BATCHNORM_ALWAYS_INLINE inline Doubles replaceZeros(Doubles a, Doubles signs, double magnitude) {
  for (int i = 0; i < Doubles::lanes; ++i) {
    if (a.v[i] == 0) a.v[i] = std::copysign(magnitude, signs.v[i]);
  }
  return a;
}

struct Floats {
  static constexpr int lanes = 2 * Doubles::lanes;
  float v[lanes];

  BATCHNORM_ALWAYS_INLINE static Floats broadcast(float value) {
    Floats r;
    for (int i = 0; i < lanes; ++i) r.v[i] = value;
    return r;
  }
  BATCHNORM_ALWAYS_INLINE static Floats load(const float* p) {
    Floats r;
    for (int i = 0; i < lanes; ++i) r.v[i] = p[i];
    return r;
  }
  BATCHNORM_ALWAYS_INLINE static Floats loadFirst(const float* p, int count) {
    Floats r;
    for (int i = 0; i < lanes; ++i) r.v[i] = i < count ? p[i] : 0.0f;
    return r;
  }
  BATCHNORM_ALWAYS_INLINE void store(float* p) const {
    for (int i = 0; i < lanes; ++i) p[i] = v[i];
  }
  BATCHNORM_ALWAYS_INLINE void storeFirst(float* p, int count) const {
    for (int i = 0; i < count; ++i) p[i] = v[i];
  }
  BATCHNORM_ALWAYS_INLINE void stream(float* p) const { store(p); }
};

BATCHNORM_ALWAYS_INLINE inline Floats operator-(Floats a, Floats b) {
  for (int i = 0; i < Floats::lanes; ++i) a.v[i] -= b.v[i];
  return a;
}
// Lanes below `count` from `first`, the others from `rest`.
BATCHNORM_ALWAYS_INLINE inline Floats selectFirst(int count, Floats first, Floats rest) {
  for (int i = count; i < Floats::lanes; ++i) first.v[i] = rest.v[i];
  return first;
}
// Not fused (see the Doubles fmadd): the kernels do not compute in floats on this path.
BATCHNORM_ALWAYS_INLINE inline Floats fmadd(Floats a, Floats b, Floats c) {
  for (int i = 0; i < Floats::lanes; ++i) a.v[i] = a.v[i] * b.v[i] + c.v[i];
  return a;
}
// Whether fmadd on Floats rounds once, which float arithmetic in the kernels relies on.
constexpr bool kFusedFloats = false;

BATCHNORM_ALWAYS_INLINE inline void streamFence() {}

BATCHNORM_ALWAYS_INLINE inline void widen(Floats f, Doubles& low, Doubles& high) {
  for (int i = 0; i < Doubles::lanes; ++i) {
    low.v[i] = static_cast<double>(f.v[i]);
    high.v[i] = static_cast<double>(f.v[i + Doubles::lanes]);
  }
}
BATCHNORM_ALWAYS_INLINE inline Floats narrow(Doubles low, Doubles high) {
  Floats r;
  for (int i = 0; i < Doubles::lanes; ++i) {
    r.v[i] = static_cast<float>(low.v[i]);
    r.v[i + Doubles::lanes] = static_cast<float>(high.v[i]);
  }
  return r;
}

BATCHNORM_ALWAYS_INLINE inline void loadWidened(const float* p, Doubles& low, Doubles& high) {
  widen(Floats::load(p), low, high);
}
BATCHNORM_ALWAYS_INLINE inline void storeNarrowed(float* p, Doubles low, Doubles high) { narrow(low, high).store(p); }

}  // namespace base
}  // namespace batchnorm::vec
