// The batch-norm kernels, written once over the vector types of native/vec and compiled once per ISA
// by the one-line shims beside this file (kernel_default.cc, kernel_avx2.cc, kernel_avx512.cc), each with
// its own flags. Everything here sits in an anonymous namespace inside a per-ISA namespace, so no symbol
// compiled with AVX instructions can be shared with another translation unit; scratch memory is plain
// new[]/delete[] for the same reason (no std templates instantiated here).
//
// Two traversals of a contiguous (N, C, S) tensor:
// - planar (S >= 64): one channel at a time, its N rows of S contiguous values, accumulators in registers;
// - interleaved (S < 64, down to the (N, C) of BatchNorm1d and channels-last): a block of channels at a
//   time, each row's contiguous run of (channels x S) values vectorized across channels, accumulators in
//   a scratch row (or, for rows of whole chunks, in registers, a column group of up to four chunks at a
//   time); large tensors whose rows follow each other are normalized in one flat walk with non-temporal
//   stores (forStreamedRows), and interleaved reads are prefetched a few rows ahead.
// float32 reductions run in double; float32 normalization runs in floats on the FMA paths (see "float32
// normalization in float arithmetic").
// Either way a unit of work (a channel, a block) computes its statistics, asks the operator for its
// coefficients and normalizes while its data is still in cache, and every reduction runs in a fixed
// order inside one unit, so results do not depend on the thread count.
#ifndef BATCHNORM_CPU_NAMESPACE
#error "compile through kernel_default.cc, kernel_avx2.cc or kernel_avx512.cc"
#endif

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel/cache_sizes.h"
#include "kernel/dispatch.h"
#include "kernel/thread_pool.h"
#include "vec/always_inline.h"
#include "vec/vec.h"

namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE {
namespace {

// The kernels by concern, in dependency order; each part is a fragment of this translation unit.
#include "kernel/cpu/parts/rows.h"
#include "kernel/cpu/parts/planner.h"
#include "kernel/cpu/parts/statistics.h"
#include "kernel/cpu/parts/float_passes.h"
#include "kernel/cpu/parts/forward.h"
#include "kernel/cpu/parts/backward.h"
#include "kernel/cpu/parts/describe.h"

template <typename T>
void fill(KernelTable<T>& table) {
  table.trainingForward = &trainingForward<T>;
  table.affineForward = &affineForward<T>;
  table.backward = &backward<T>;
  table.describe = &describe<T>;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill(floatTable);
  fill(doubleTable);
}

}  // namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE
