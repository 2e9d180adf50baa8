// Kernel tables that prove the two extension points of the kernels (kernel/cpu/parts/elements.h and
// hooks.h) reach every walk: compiled only into the core's native test driver (BATCHNORM_HOOK_CHECK,
// test/native/core_check.cc), never into the addon.
//   storedFloat  the kernels over StoredFloat, a float held in a struct with its own Element trait:
//                every output must be the float kernels' bits;
//   negated      the float kernels with an epilogue that negates each normalized chunk and a gradient
//                mask that negates each chunk of grad_output: the forward's output and every gradient
//                must be the plain kernels' negated (negation is exact, and IEEE rounding is symmetric),
//                the statistics unchanged.
// A walk that bypassed the trait or a hook would fail these comparisons.
#pragma once

#include "kernel/dispatch.h"

namespace batchnorm {

// A float32 value behind a storage type of its own, converted with static_cast as Element<T> requires.
struct StoredFloat {
  float value = 0;
  StoredFloat() = default;
  explicit StoredFloat(double v) : value(static_cast<float>(v)) {}
  explicit operator double() const { return value; }
};
static_assert(sizeof(StoredFloat) == sizeof(float), "StoredFloat arrays are float arrays");

struct HookCheckTables {
  KernelTable<StoredFloat> storedFloat{};
  KernelTable<float> negated{};
};

// The tables of the kernel path in use (kernels<T>()'s).
const HookCheckTables& hookCheckKernels();

namespace cpu {
namespace base {
void fillHookCheckKernels(HookCheckTables& tables);
}
namespace avx2 {
void fillHookCheckKernels(HookCheckTables& tables);
}
namespace avx512 {
void fillHookCheckKernels(HookCheckTables& tables);
}
}  // namespace cpu

}  // namespace batchnorm
