#include "binding/arguments.h"

#include <cmath>
#include <limits>
#include <string>

namespace batchnorm::binding {
namespace {

[[noreturn]] void throwType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
[[noreturn]] void throwRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

const char* dtypeName(DType dtype) { return dtype == DType::Float32 ? "Float32Array" : "Float64Array"; }

// Each check makes one N-API call where the argument is what it should be, and looks closer only once
// that call has failed (asking a value's type first, then reading it, made two to four calls per
// argument: about 30 for a (2, 4) evaluation, 12 now; bench/ab.mjs, both orders, (2, 4) per call 1% to 6%
// faster).

// False for anything but a Float32Array or Float64Array. napi_get_typedarray_info fails with
// napi_invalid_arg, and no pending exception, on a value that is not a typed array.
bool tryFloatView(const Napi::Value& value, FloatView& view) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(value.Env(), value, &type, &length, &data, nullptr, nullptr) != napi_ok) return false;
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

[[noreturn]] void throwNotFloatArray(Napi::Env env, const char* name) {
  throwType(env, std::string(name) + " must be a Float32Array or Float64Array");
}

// A float array's dtype and length against the call's.
const FloatView& checkedView(Napi::Env env, const FloatView& view, const char* name, DType dtype, size_t length) {
  if (view.dtype != dtype) {
    throwType(env, std::string(name) + " must be a " + dtypeName(dtype) + " like the input");
  }
  if (view.length != length) {
    throwRange(env, std::string(name) + " should contain " + std::to_string(length) + " elements not " +
                        std::to_string(view.length));
  }
  return view;
}

}  // namespace

DType requireFloatDType(const Napi::Value& value, const char* name) {
  FloatView view;
  if (!tryFloatView(value, view)) throwNotFloatArray(value.Env(), name);
  return view.dtype;
}

FloatView requireFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length) {
  FloatView view;
  if (!tryFloatView(value, view)) throwNotFloatArray(value.Env(), name);
  return checkedView(value.Env(), view, name, dtype, length);
}

FloatView optionalFloatArray(const Napi::Value& value, const char* name, DType dtype, size_t length) {
  FloatView view;
  if (tryFloatView(value, view)) return checkedView(value.Env(), view, name, dtype, length);
  if (value.IsNull() || value.IsUndefined()) return FloatView{dtype, nullptr, 0};
  throwNotFloatArray(value.Env(), name);
}

Geometry requireGeometry(const Napi::CallbackInfo& info, size_t firstIndex) {
  static const char* const names[] = {"batch", "channels", "spatial"};
  int64_t sizes[3];
  for (size_t i = 0; i < 3; ++i) {
    double size = 0;
    if (napi_get_value_double(info.Env(), info[firstIndex + i], &size) != napi_ok) {
      throwType(info.Env(), std::string(names[i]) + " must be a number");
    }
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
  bool result = false;
  if (napi_get_value_bool(value.Env(), value, &result) != napi_ok) {
    throwType(value.Env(), std::string(name) + " must be a boolean");
  }
  return result;
}

double requireNumber(const Napi::Value& value, const char* name) {
  double result = 0;
  if (napi_get_value_double(value.Env(), value, &result) != napi_ok) {
    throwType(value.Env(), std::string(name) + " must be a number");
  }
  return result;
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
