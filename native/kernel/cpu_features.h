// What the CPU and the operating system support, read once with CPUID and XGETBV.
#pragma once

namespace batchnorm {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA, with the OS saving YMM state
  bool avx512 = false;  // AVX-512 F/BW/VL/DQ, with the OS saving ZMM and mask state
};

CpuFeatures detectCpuFeatures();

}  // namespace batchnorm
