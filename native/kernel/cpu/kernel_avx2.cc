// The batch-norm kernels compiled for AVX2 + FMA; flags are set for this file in CMakeLists.txt.
#define BATCHNORM_CPU_AVX2
#define BATCHNORM_CPU_NAMESPACE avx2
#include "kernel/cpu/batch_norm_kernel.cc"
