#include "kernel/cpu_features.h"

#include "kernel/cpuid.h"

namespace batchnorm {

#if defined(__x86_64__) || defined(_M_X64)
namespace {

// XCR0: which register states the OS saves on context switches. Plain asm, so this file needs no ISA flags.
unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

constexpr unsigned bit(unsigned n) { return 1u << n; }

}  // namespace

CpuFeatures detectCpuFeatures() {
  CpuFeatures features;
  if (cpuid(0, 0).eax < 7) return features;
  const CpuidRegisters leaf1 = cpuid(1, 0);
  const bool osxsave = (leaf1.ecx & bit(27)) != 0;
  const bool avx = (leaf1.ecx & bit(28)) != 0;
  const bool fma = (leaf1.ecx & bit(12)) != 0;
  if (!osxsave || !avx) return features;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymmState = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmmState = (xcr0 & 0xE6) == 0xE6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  const CpuidRegisters leaf7 = cpuid(7, 0);
  const bool avx2 = (leaf7.ebx & bit(5)) != 0;
  const bool avx512f = (leaf7.ebx & bit(16)) != 0, avx512dq = (leaf7.ebx & bit(17)) != 0;
  const bool avx512bw = (leaf7.ebx & bit(30)) != 0, avx512vl = (leaf7.ebx & bit(31)) != 0;
  features.avx2 = ymmState && avx2 && fma;
  features.avx512 = features.avx2 && zmmState && avx512f && avx512dq && avx512bw && avx512vl;
  return features;
}
#else
CpuFeatures detectCpuFeatures() { return {}; }
#endif

}  // namespace batchnorm
