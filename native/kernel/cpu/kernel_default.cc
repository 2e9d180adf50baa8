// The batch-norm kernels compiled for the portable default path (baseline ISA flags only); flags are set for this file in CMakeLists.txt.
#define BATCHNORM_CPU_NAMESPACE base
#include "kernel/cpu/batch_norm_kernel.cc"
