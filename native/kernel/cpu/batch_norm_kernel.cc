// The batch-norm kernels, written once over the vector types of native/vec and compiled once per ISA
// by the one-line shims beside this file (kernel_default.cc, kernel_avx2.cc, kernel_avx512.cc), each with
// its own flags. Everything here sits in an anonymous namespace inside a per-ISA namespace, so no symbol
// compiled with AVX instructions can be shared with another translation unit; scratch memory is plain
// new[]/delete[] for the same reason (no std templates instantiated here).
//
// Two traversals of a contiguous (N, C, S) tensor, chosen with every walk by the planner (parts/planner.h,
// whose table lists them): planar, one channel at a time; interleaved, blocks of channels across rows.
// Reductions run in double, float32 elementwise passes in floats on the FMA paths (parts/float_passes.h).
// Tensors are read and written only through the storage trait (parts/elements.h), and the elementwise
// passes end in the hooks of parts/hooks.h, so a new storage type or a fused epilogue is a type given to
// fill() below, not new walks (docs/WALKS.md has both recipes).
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
#if defined(BATCHNORM_HOOK_CHECK)
#include "kernel/hook_check.h"
#endif
#include "vec/always_inline.h"
#include "vec/vec.h"

namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE {
namespace {

#include "kernel/channel_coefficients.h"
#include "kernel/cpu/compensated_sum.h"
// The kernels by concern, in dependency order; each part is a fragment of this translation unit.
#include "kernel/cpu/parts/elements.h"
#include "kernel/cpu/parts/hooks.h"
#include "kernel/cpu/parts/tuning.h"
#include "kernel/cpu/parts/rows.h"
#include "kernel/cpu/parts/planner.h"
#include "kernel/cpu/parts/tasks.h"
#include "kernel/cpu/parts/statistics.h"
#include "kernel/cpu/parts/elementwise_walks.h"
#include "kernel/cpu/parts/pass_coefficients.h"
#include "kernel/cpu/parts/float_passes.h"
#include "kernel/cpu/parts/coefficient_rows.h"
#include "kernel/cpu/parts/forward.h"
#include "kernel/cpu/parts/backward.h"
#include "kernel/cpu/parts/describe.h"
#include "kernel/cpu/parts/split.h"
#if defined(BATCHNORM_HOOK_CHECK)
#include "kernel/cpu/parts/hook_check.h"
#endif

// The table of storage type T (Element<T>) whose forward passes end in Epilogue and whose backward reads
// grad_output through GradientMask (hooks.h).
template <typename T, typename Epilogue, typename GradientMask>
void fill(KernelTable<T>& table) {
  table.trainingForward = &trainingForward<T, Epilogue>;
  table.evalForward = &evalForward<T, Epilogue>;
  table.backward = &backward<T, GradientMask>;
  table.describe = &describe<T>;
  table.splitStatistics = &splitStatistics<T>;
  table.splitAffine = &splitAffine<T, Epilogue>;
  table.splitGradientSums = &splitGradientSums<T, GradientMask>;
  table.splitGradInput = &splitGradInput<T, GradientMask>;
}

}  // namespace

void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable) {
  fill<float, NoEpilogue, NoGradientMask>(floatTable);
  fill<double, NoEpilogue, NoGradientMask>(doubleTable);
}

#if defined(BATCHNORM_HOOK_CHECK)
void fillHookCheckKernels(HookCheckTables& tables) {
  fill<StoredFloat, NoEpilogue, NoGradientMask>(tables.storedFloat);
  fill<float, NegatingHook, NegatingHook>(tables.negated);
}
#endif

}  // namespace batchnorm::cpu::BATCHNORM_CPU_NAMESPACE
