// The batch-norm operator of the C++ core: plain C++ with no Node headers.
//
// Callers (the N-API binding, native tests) have already checked every size and pointer; the
// functions here only execute. All index math is 64-bit.
#pragma once

#include <cstdint>

#include "kernel/geometry.h"

namespace batchnorm {

// Nullable pointers mean "absent" exactly as PyTorch's undefined tensors do.
template <typename T>
struct ForwardArgs {
  const T* input = nullptr;
  T* output = nullptr;  // may equal input (in place)
  const T* weight = nullptr;
  const T* bias = nullptr;
  T* runningMean = nullptr;  // updated in place when training
  T* runningVar = nullptr;
  T* saveMean = nullptr;  // written when training, length C
  T* saveInvstd = nullptr;
  bool training = false;
  double momentum = 0.1;
  double eps = 1e-5;
  bool useReference = false;  // run the scalar oracle instead of the dispatched kernels (tests)
};

template <typename T>
struct BackwardArgs {
  const T* gradOutput = nullptr;
  const T* input = nullptr;
  const T* weight = nullptr;
  const T* runningMean = nullptr;  // used in evaluation mode
  const T* runningVar = nullptr;
  const T* saveMean = nullptr;  // used in training mode
  const T* saveInvstd = nullptr;
  T* gradInput = nullptr;  // null: not asked for
  T* gradWeight = nullptr;
  T* gradBias = nullptr;
  bool training = false;
  double eps = 1e-5;
  bool useReference = false;  // run the scalar oracle instead of the dispatched kernels (tests)
};

template <typename T>
void batchNormForward(const Geometry& geometry, const ForwardArgs<T>& args);

template <typename T>
void batchNormBackward(const Geometry& geometry, const BackwardArgs<T>& args);

extern template void batchNormForward<float>(const Geometry&, const ForwardArgs<float>&);
extern template void batchNormForward<double>(const Geometry&, const ForwardArgs<double>&);
extern template void batchNormBackward<float>(const Geometry&, const BackwardArgs<float>&);
extern template void batchNormBackward<double>(const Geometry&, const BackwardArgs<double>&);

}  // namespace batchnorm
