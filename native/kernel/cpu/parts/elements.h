// Part of batch_norm_kernel.cc, included there inside its per-ISA and anonymous namespaces (one
// translation unit per ISA, so that everything inlines); not a header of its own.
// Element<T>: how the kernels read and write a tensor's element type T (its storage type), and the one
// fact about it that picks their arithmetic (ATen keeps the same split: a storage type and its
// opmath_type). Every load and store of a tensor's values goes through it; a new storage type is a new
// specialization here, not new walks.
//
// A storage type T also converts to and from double with static_cast (the per-channel finishing reads
// weights and running statistics one value at a time, kernel/channel_coefficients.h).
//
// Element<T>::kFloatPrecision: T carries at most float's precision. Then
//   - statistics take one pass of shifted sums, and the sums need no compensation (statistics.h);
//   - the elementwise passes run in float arithmetic where fmadd on Floats is fused (kFloatArithmetic,
//     float_passes.h), or in double folding the centering into the shift (forward.h);
//   - T is read and written a Floats register at a time: load, loadFirst, store, storeFirst, stream,
//     and loadWidened / storeNarrowed straight to and from two Doubles.
// Otherwise (float64) a Doubles register at a time: load, loadFirst, store, storeFirst, stream.

using vec::Doubles;
using vec::Floats;

template <typename T>
struct Element;

template <>
struct Element<float> {
  static constexpr bool kFloatPrecision = true;
  BATCHNORM_ALWAYS_INLINE static Floats load(const float* p) { return Floats::load(p); }
  BATCHNORM_ALWAYS_INLINE static Floats loadFirst(const float* p, int count) { return Floats::loadFirst(p, count); }
  BATCHNORM_ALWAYS_INLINE static void store(Floats v, float* p) { v.store(p); }
  BATCHNORM_ALWAYS_INLINE static void storeFirst(Floats v, float* p, int count) { v.storeFirst(p, count); }
  BATCHNORM_ALWAYS_INLINE static void stream(Floats v, float* p) { v.stream(p); }
  BATCHNORM_ALWAYS_INLINE static void loadWidened(const float* p, Doubles& low, Doubles& high) {
    vec::loadWidened(p, low, high);
  }
  BATCHNORM_ALWAYS_INLINE static void storeNarrowed(float* p, Doubles low, Doubles high) {
    vec::storeNarrowed(p, low, high);
  }
};

template <>
struct Element<double> {
  static constexpr bool kFloatPrecision = false;
  BATCHNORM_ALWAYS_INLINE static Doubles load(const double* p) { return Doubles::load(p); }
  BATCHNORM_ALWAYS_INLINE static Doubles loadFirst(const double* p, int count) { return Doubles::loadFirst(p, count); }
  BATCHNORM_ALWAYS_INLINE static void store(Doubles v, double* p) { v.store(p); }
  BATCHNORM_ALWAYS_INLINE static void storeFirst(Doubles v, double* p, int count) { v.storeFirst(p, count); }
  BATCHNORM_ALWAYS_INLINE static void stream(Doubles v, double* p) { v.stream(p); }
};

// Whether T's elementwise passes run in float arithmetic (where fmadd on Floats is fused; see
// float_passes.h); elsewhere they run in double and walk row groups.
template <typename T>
constexpr bool kFloatArithmetic = Element<T>::kFloatPrecision && vec::kFusedFloats;
