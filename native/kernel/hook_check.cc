// The hook-check tables of the kernel path in use (kernel/hook_check.h); core check builds only.
#include "kernel/hook_check.h"

#include <cstring>

namespace batchnorm {

const HookCheckTables& hookCheckKernels() {
  static const HookCheckTables tables = [] {
    HookCheckTables t;
    const char* path = cpuCapability();
#if defined(BATCHNORM_HAVE_AVX512)
    if (std::strcmp(path, "avx512") == 0) {
      cpu::avx512::fillHookCheckKernels(t);
      return t;
    }
#endif
#if defined(BATCHNORM_HAVE_AVX2)
    if (std::strcmp(path, "avx2") == 0) {
      cpu::avx2::fillHookCheckKernels(t);
      return t;
    }
#endif
    (void)path;
    cpu::base::fillHookCheckKernels(t);
    return t;
  }();
  return tables;
}

}  // namespace batchnorm
