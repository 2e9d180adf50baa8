// The per-ISA kernel table: the elementwise and reduction loops of batch norm, filled once at load.
//
// Per-channel values (statistics, affine coefficients) are always double, so float32 tensors
// accumulate and normalize in double as PyTorch's CPU accumulate type does.
#pragma once

#include "kernel/batch_norm.h"

namespace batchnorm {

template <typename T>
struct KernelTable {
  // The channel mean as an unevaluated sum mean[c] + meanLow[c] (|meanLow| <= ulp(mean) / 2) and
  // varSum[c] = sum((x - mean)^2), two passes about the mean. The low part keeps x - mean accurate in
  // float64 when |mean| >> std, where rounding the mean alone would cost digits of every output.
  void (*collectStats)(const Geometry& geometry, const T* input, double* mean, double* meanLow, double* varSum);

  // y = (x - center[c]) * scale[c] + shift[c]; output may alias input.
  void (*applyAffine)(const Geometry& geometry, const T* input, T* output, const double* center,
                      const double* scale, const double* shift);

  // sumDy[c] = sum(dy) and dotp[c] = sum(dy * (x - center[c])).
  void (*reduceGradients)(const Geometry& geometry, const T* input, const T* gradOutput,
                          const double* center, double* sumDy, double* dotp);

  // Training-mode input gradient: dx = (dy - gradMean[c] - (x - center[c]) * projection[c]) * scale[c].
  void (*trainingGradInput)(const Geometry& geometry, const T* input, const T* gradOutput, T* gradInput,
                            const double* center, const double* gradMean, const double* projection,
                            const double* scale);
};

// The table for the kernel path in use (see cpuCapability()).
template <typename T>
const KernelTable<T>& kernels();

// Name of the kernel path in use: "default" (portable scalar C++) for now.
const char* cpuCapability();

namespace cpu::scalar {
void fillKernels(KernelTable<float>& floatTable, KernelTable<double>& doubleTable);
}  // namespace cpu::scalar

}  // namespace batchnorm
