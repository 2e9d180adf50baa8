// The vector types the kernels are written over, chosen by the translation unit's CPU_CAPABILITY.
//
// Every ISA defines, in its own namespace batchnorm::vec::<capability>:
//   Doubles  a register of `lanes` doubles: zero/broadcast/load/loadFirst/store/storeFirst, + - *,
//            fmadd(a, b, c) = a * b + c, keepFirst(v, n) (zero lanes >= n), selectFirst(n, a, b) (lanes < n
//            from a), sum() in a fixed order;
//            and for per-channel coefficients: /, sqrt, positivePart (x > 0 ? x : 0), roundedToFloat (each lane rounded to the nearest
//            float), truncatedToFloat (toward zero to float precision, see float_precision.h),
//            allAbsWithin(v, low, high) (low <= |lane| <= high in every lane, false for NaN),
//            replaceZeros(v, signs, m) (zero lanes become m with the sign of that lane of `signs`);
//   Floats   a register of 2 * Doubles::lanes floats: broadcast/load/loadFirst/store/storeFirst, -,
//            fmadd, selectFirst(n, a, b) (lanes < n from a), widen()/narrow() to and from two Doubles,
//            loadWidened()/storeNarrowed() the same straight from and to memory;
//   kFusedFloats  whether fmadd on Floats is a true fused multiply-add (rounds once).
// Nothing here has static data or non-inline linkage: each ISA's copy stays private to its kernels.
#pragma once

#if defined(BATCHNORM_CPU_AVX512)
#include "vec/vec_avx512.h"
#elif defined(BATCHNORM_CPU_AVX2)
#include "vec/vec_avx2.h"
#elif defined(BATCHNORM_CPU_NEON)
#include "vec/vec_neon.h"
#else
#include "vec/vec_base.h"
#endif
