// Forces the inlining of the vector helpers: in a large kernel translation unit GCC otherwise stops
// inlining these one-line functions (inline-unit-growth), and the portable path made a call per two
// lanes (measured: the default path's eval 10 ns per element, 60% of it in calls to fmadd).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define BATCHNORM_ALWAYS_INLINE __attribute__((always_inline))
#else
#define BATCHNORM_ALWAYS_INLINE
#endif
