#include "binding/guard.h"

#include <exception>

namespace batchnorm::binding {

namespace {

napi_value makeError(napi_env env, napi_status (*create)(napi_env, napi_value, napi_value, napi_value*),
                     const char* message) noexcept {
  napi_value text = nullptr, error = nullptr;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok) return nullptr;
  if (create(env, nullptr, text, &error) != napi_ok) return nullptr;
  return error;
}

}  // namespace

napi_value errorFromCurrentException(napi_env env) noexcept {
  try {
    throw;
  } catch (const Napi::Error& error) {
    try {
      return error.Value();
    } catch (...) {
      return nullptr;
    }
  } catch (const std::bad_alloc&) {
    return makeError(env, napi_create_range_error, outOfMemoryMessage());
  } catch (const std::exception& error) {
    return makeError(env, napi_create_error, error.what());
  } catch (...) {
    return makeError(env, napi_create_error, "batchnorm: unknown native error");
  }
}

void throwCurrentException(napi_env env) noexcept {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  napi_value error = errorFromCurrentException(env);
  if (error != nullptr) napi_throw(env, error);
}

}  // namespace batchnorm::binding
