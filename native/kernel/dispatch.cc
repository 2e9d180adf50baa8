// Chooses the kernel path once, at first use: the best the CPU and OS support, or a lower one forced
// with BATCHNORM_CPU_CAPABILITY=default|avx2|avx512. Compiled without ISA flags.
#include "kernel/dispatch.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernel/cpu_features.h"

namespace batchnorm {
namespace {

// On AArch64 the default path is built over NEON (baseline there) and is reported as such.
#if defined(__aarch64__)
const char* const kNames[] = {"neon", "avx2", "avx512"};
#else
const char* const kNames[] = {"default", "avx2", "avx512"};
#endif

CpuCapability chooseCapability() {
  [[maybe_unused]] const CpuFeatures features = detectCpuFeatures();
  CpuCapability best = CpuCapability::Default;
#if defined(BATCHNORM_HAVE_AVX512)
  if (features.avx512) best = CpuCapability::Avx512;
#endif
#if defined(BATCHNORM_HAVE_AVX2)
  if (best == CpuCapability::Default && features.avx2) best = CpuCapability::Avx2;
#endif
  const char* requested = std::getenv("BATCHNORM_CPU_CAPABILITY");
  if (requested == nullptr || *requested == '\0') return best;
  for (int i = 0; i < 3; ++i) {
    if (std::strcmp(requested, kNames[i]) != 0) continue;
    if (i > static_cast<int>(best)) {
      std::fprintf(stderr, "batchnorm: BATCHNORM_CPU_CAPABILITY=%s is not supported on this CPU; using %s\n",
                   requested, kNames[static_cast<int>(best)]);
      return best;
    }
    return static_cast<CpuCapability>(i);
  }
  std::fprintf(stderr, "batchnorm: ignoring BATCHNORM_CPU_CAPABILITY=%s (expected %s, avx2 or avx512)\n", requested,
               kNames[0]);
  return best;
}

struct Registry {
  KernelTable<float> floatKernels{};
  KernelTable<double> doubleKernels{};
  KernelTable<float> floatReference{};
  KernelTable<double> doubleReference{};
  CpuCapability capability = CpuCapability::Default;

  Registry() : capability(chooseCapability()) {
    cpu::reference::fillKernels(floatReference, doubleReference);
    switch (capability) {
#if defined(BATCHNORM_HAVE_AVX512)
      case CpuCapability::Avx512:
        cpu::avx512::fillKernels(floatKernels, doubleKernels);
        break;
#endif
#if defined(BATCHNORM_HAVE_AVX2)
      case CpuCapability::Avx2:
        cpu::avx2::fillKernels(floatKernels, doubleKernels);
        break;
#endif
      default:
        cpu::base::fillKernels(floatKernels, doubleKernels);
        break;
    }
  }
};

// Built on first use (thread-safe static initialisation) and never changed afterwards.
const Registry& registry() {
  static const Registry instance;
  return instance;
}

}  // namespace

template <>
const KernelTable<float>& kernels<float>() {
  return registry().floatKernels;
}
template <>
const KernelTable<double>& kernels<double>() {
  return registry().doubleKernels;
}
template <>
const KernelTable<float>& referenceKernels<float>() {
  return registry().floatReference;
}
template <>
const KernelTable<double>& referenceKernels<double>() {
  return registry().doubleReference;
}

const char* cpuCapability() { return kNames[static_cast<int>(registry().capability)]; }

}  // namespace batchnorm
