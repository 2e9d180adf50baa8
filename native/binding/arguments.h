// Cheap re-checks of what the C++ core relies on. lib/ validates every argument first with friendlier
// messages; these checks only make sure that no call, however malformed, can reach memory it should not.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

#include "kernel/batch_norm.h"

namespace batchnorm::binding {

enum class DType { Float32, Float64 };

// A float typed array as the kernels see it: a pointer already advanced by its byteOffset.
struct FloatView {
  DType dtype = DType::Float32;
  void* data = nullptr;  // null only when length is 0 (e.g. a detached buffer)
  size_t length = 0;
  size_t elementSize() const { return dtype == DType::Float32 ? 4 : 8; }
  size_t byteLength() const { return length * elementSize(); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

// A Float32Array or Float64Array (TypeError otherwise) of the expected dtype and length (RangeError).
FloatView requireFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length);

// As requireFloatArray, but null/undefined is allowed and gives an empty view with data == nullptr.
FloatView optionalFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length);

// The dtype of the first tensor argument, which every other array must share.
DType requireFloatDType(const Napi::Value& value, const char* name);

// (batch, channels, spatial) from three non-negative integers whose product fits in int64 and in
// the address space.
Geometry requireGeometry(const Napi::CallbackInfo& info, size_t firstIndex);

bool requireBoolean(const Napi::Value& value, const char* name);
double requireNumber(const Napi::Value& value, const char* name);

// Whether two views share a byte (an empty view shares none).
inline bool overlaps(const FloatView& a, const FloatView& b) {
  if (a.data == nullptr || b.data == nullptr) return false;
  const auto aBegin = reinterpret_cast<uintptr_t>(a.data), bBegin = reinterpret_cast<uintptr_t>(b.data);
  return aBegin < bBegin + b.byteLength() && bBegin < aBegin + a.byteLength();
}

// Two views either do not share a byte or are exactly the same range (in place); anything else throws.
void requireDisjointOrSame(Napi::Env env, const FloatView& a, const char* nameA, const FloatView& b,
                           const char* nameB);
void requireDisjoint(Napi::Env env, const FloatView& a, const char* nameA, const FloatView& b, const char* nameB);

}  // namespace batchnorm::binding
