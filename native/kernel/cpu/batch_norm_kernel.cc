// The batch-norm kernels, written once over the vector types of native/vec and compiled once per ISA
// by the one-line shims beside this file (kernel_default.cc, kernel_avx2.cc, kernel_avx512.cc), each with
// its own flags. Everything here sits in an anonymous namespace inside a per-ISA namespace, so no symbol
// compiled with AVX instructions can be shared with another translation unit; scratch memory is plain
// new[]/delete[] for the same reason (no std templates instantiated here).
//
// Two traversals of a contiguous (N, C, S) tensor, chosen with every walk by the planner (parts/planner.h,
// whose table lists them): planar, one channel at a time; interleaved, blocks of channels across rows.
// Reductions run in double, float32 elementwise passes in floats on the FMA paths (parts/float_passes.h).
// Either way a unit of work (a channel, a block) computes its sums, asks the operator for its coefficients
// and runs its elementwise pass while its data is still in cache, and every reduction runs in a fixed
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

#include "kernel/channel_coefficients.h"
#include "kernel/cpu/compensated_sum.h"
// The kernels by concern, in dependency order; each part is a fragment of this translation unit.
#include "kernel/cpu/parts/rows.h"
#include "kernel/cpu/parts/planner.h"
#include "kernel/cpu/parts/statistics.h"
#include "kernel/cpu/parts/float_passes.h"
#include "kernel/cpu/parts/coefficient_rows.h"
#include "kernel/cpu/parts/forward.h"
#include "kernel/cpu/parts/backward.h"
#include "kernel/cpu/parts/describe.h"
#include "kernel/cpu/parts/split.h"

template <typename T>
void fill(KernelTable<T>& table) {
  table.trainingForward = &trainingForward<T>;
  table.evalForward = &evalForward<T>;
  table.backward = &backward<T>;
  table.describe = &describe<T>;
  table.splitStatistics = &splitStatistics<T>;
  table.splitAffine = &affineForward<T>;
  table.splitGradientSums = &splitGradientSums<T>;
  table.splitGradInput = &splitGradInput<T>;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill(floatTable);
  fill(doubleTable);
}

}  // namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE
