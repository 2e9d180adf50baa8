#include "kernel/dispatch.h"

namespace batchnorm {
namespace {

struct Registry {
  KernelTable<float> floatKernels{};
  KernelTable<double> doubleKernels{};
  const char* capability = "default";

  Registry() { cpu::scalar::fillKernels(floatKernels, doubleKernels); }
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

const char* cpuCapability() { return registry().capability; }

}  // namespace batchnorm
