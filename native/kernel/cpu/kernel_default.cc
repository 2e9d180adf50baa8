// The batch-norm kernels compiled for the portable default path (baseline ISA flags only); flags are set for this file in CMakeLists.txt.
#if defined(__aarch64__)
// NEON is baseline on AArch64: the default path there uses it directly.
#define BATCHNORM_CPU_NEON
#endif
#define BATCHNORM_CPU_NAMESPACE base
#include "kernel/cpu/batch_norm_kernel.cc"
