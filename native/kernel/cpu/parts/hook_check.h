// Part of batch_norm_kernel.cc in core check builds only (BATCHNORM_HOOK_CHECK), included there inside
// its per-ISA and anonymous namespaces: the storage trait and the hooks of kernel/hook_check.h's tables,
// written without touching a walk.

// StoredFloat read and written as the float it holds.
template <>
struct Element<StoredFloat> {
  static constexpr bool kFloatPrecision = true;
  static const float* floats(const StoredFloat* p) { return reinterpret_cast<const float*>(p); }
  static float* floats(StoredFloat* p) { return reinterpret_cast<float*>(p); }
  static Floats load(const StoredFloat* p) { return Floats::load(floats(p)); }
  static Floats loadFirst(const StoredFloat* p, int count) { return Floats::loadFirst(floats(p), count); }
  static void store(Floats v, StoredFloat* p) { v.store(floats(p)); }
  static void storeFirst(Floats v, StoredFloat* p, int count) { v.storeFirst(floats(p), count); }
  static void stream(Floats v, StoredFloat* p) { v.stream(floats(p)); }
  static void loadWidened(const StoredFloat* p, Doubles& low, Doubles& high) { vec::loadWidened(floats(p), low, high); }
  static void storeNarrowed(StoredFloat* p, Doubles low, Doubles high) { vec::storeNarrowed(floats(p), low, high); }
};

// -0 - v: v with its sign flipped, exactly, zeros included (-0 - +0 = -0, -0 - -0 = +0).
inline Floats negated(Floats v) { return Floats::broadcast(-0.0f) - v; }
template <typename T, bool kFloatPrecision>
Chunk<T, kFloatPrecision> negated(Chunk<T, kFloatPrecision> v) {
  for (Doubles& part : v.part) part = Doubles::broadcast(-0.0) - part;
  return v;
}

struct NegatingHook {
  template <typename Values, typename T>
  Values operator()(Values values, const T* /*at*/, int /*valid*/) const {
    return negated(values);
  }
};
