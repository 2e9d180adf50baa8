#include "binding/arguments.h"

#include <cmath>
#include <limits>
#include <string>

namespace batchnorm::binding {
namespace {

[[noreturn]] void throwType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
[[noreturn]] void throwRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

const char* dtypeName(DType dtype) { return dtype == DType::Float32 ? "Float32Array" : "Float64Array"; }

bool tryFloatView(const Napi::Value& value, FloatView& view) {
  if (!value.IsTypedArray()) return false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_THROW_IF_FAILED(value.Env(),
                       napi_get_typedarray_info(value.Env(), value, &type, &length, &data, nullptr, nullptr),
                       false);
  if (type == napi_float32_array) {
    view.dtype = DType::Float32;
  } else if (type == napi_float64_array) {
    view.dtype = DType::Float64;
  } else {
    return false;
  }
  view.data = length == 0 ? nullptr : data;
  view.length = length;
  return true;
}

bool overlaps(const FloatView& a, const FloatView& b) {
  if (a.data == nullptr || b.data == nullptr) return false;
  const auto aBegin = reinterpret_cast<uintptr_t>(a.data), bBegin = reinterpret_cast<uintptr_t>(b.data);
  return aBegin < bBegin + b.byteLength() && bBegin < aBegin + a.byteLength();
}

}  // namespace

DType requireFloatDType(const Napi::Value& value, const char* name) {
  FloatView view;
  if (!tryFloatView(value, view)) throwType(value.Env(), std::string(name) + " must be a Float32Array or Float64Array");
  return view.dtype;
}

FloatView requireFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length) {
  FloatView view;
  if (!tryFloatView(value, view)) throwType(value.Env(), std::string(name) + " must be a Float32Array or Float64Array");
  if (view.dtype != dtype) {
    throwType(value.Env(), std::string(name) + " must be a " + dtypeName(dtype) + " like the input");
  }
  if (view.length != length) {
    throwRange(value.Env(), std::string(name) + " should contain " + std::to_string(length) + " elements not " +
                                std::to_string(view.length));
  }
  return view;
}

FloatView optionalFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length) {
  if (value.IsNull() || value.IsUndefined()) return FloatView{dtype, nullptr, 0};
  return requireFloatArray(value, name, dtype, length);
}

Geometry requireGeometry(const Napi::CallbackInfo& info, size_t firstIndex) {
  static const char* const names[] = {"batch", "channels", "spatial"};
  int64_t sizes[3];
  for (size_t i = 0; i < 3; ++i) {
    const Napi::Value value = info[firstIndex + i];
    if (!value.IsNumber()) throwType(info.Env(), std::string(names[i]) + " must be a number");
    const double size = value.As<Napi::Number>().DoubleValue();
    // 2^53 bounds every safe integer; the product check below bounds the total.
    if (!(size >= 0 && size <= 9007199254740991.0) || std::floor(size) != size) {
      throwRange(info.Env(), std::string(names[i]) + " must be a non-negative safe integer");
    }
    sizes[i] = static_cast<int64_t>(size);
  }
  const int64_t limit = std::numeric_limits<int64_t>::max() / 8;  // also bounds the byte length
  int64_t product = 1;
  for (const int64_t size : sizes) {
    if (size != 0 && product > limit / size) throwRange(info.Env(), "tensor has too many elements");
    product *= size;
  }
  return Geometry{sizes[0], sizes[1], sizes[2]};
}

bool requireBoolean(const Napi::Value& value, const char* name) {
  if (!value.IsBoolean()) throwType(value.Env(), std::string(name) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

double requireNumber(const Napi::Value& value, const char* name) {
  if (!value.IsNumber()) throwType(value.Env(), std::string(name) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

void requireDisjointOrSame(Napi::Env env, const FloatView& a, const char* nameA, const FloatView& b,
                           const char* nameB) {
  if (a.data == b.data && a.length == b.length) return;
  requireDisjoint(env, a, nameA, b, nameB);
}

void requireDisjoint(Napi::Env env, const FloatView& a, const char* nameA, const FloatView& b, const char* nameB) {
  if (overlaps(a, b)) throwRange(env, std::string(nameA) + " must not overlap " + nameB);
}

}  // namespace batchnorm::binding
