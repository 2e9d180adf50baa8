// The batch-norm kernels compiled for AVX-512 F/BW/VL/DQ; flags are set for this file in CMakeLists.txt.
#define BATCHNORM_CPU_AVX512
#define BATCHNORM_CPU_NAMESPACE avx512
#include "kernel/cpu/batch_norm_kernel.cc"
