// No C++ exception may leave an N-API callback: node-addon-api's own translation calls N-API again,
// which fails in an environment that is shutting down (a terminated worker) and then throws from
// inside its handler, terminating the process. Every entry point is wrapped here instead, and errors
// are thrown with plain N-API calls whose failure is ignored: when JavaScript cannot run any more,
// there is nobody left to tell.
#pragma once

#include <napi.h>

#include <new>

namespace batchnorm::binding {

// Thrown for sizes the process cannot allocate; reported to JavaScript as a RangeError.
inline const char* outOfMemoryMessage() {
  return "batchnorm: the memory this call needs (scratch or staging for its sizes) cannot be allocated";
}

// Throws the exception being handled (call from a catch block) into JavaScript, never failing.
void throwCurrentException(napi_env env) noexcept;

// Creates the JavaScript error for the exception being handled (call from a catch block); null if
// even that is impossible.
napi_value errorFromCurrentException(napi_env env) noexcept;

template <Napi::Value (*Body)(const Napi::CallbackInfo&)>
napi_value guarded(napi_env env, napi_callback_info raw) noexcept {
  try {
    const Napi::CallbackInfo info(env, raw);
    return Body(info);
  } catch (...) {
    throwCurrentException(env);
  }
  return nullptr;
}

}  // namespace batchnorm::binding
