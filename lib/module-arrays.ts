// The module's per-channel arrays as the kernels see them: copies made for each call (repeated for
// InstanceNorm's batch of instances), and the reductions that bring results back to the module's channels.
import type { Parameter } from './module-options';
import type { DType, FloatArray } from './tensor';

/**
 * Per-channel arrays the kernels get instead of the module's own, and the saved statistics a training
 * forward writes: disjoint views of one buffer that no caller can reach.
 */
export interface KernelCopies {
  weight: FloatArray;
  bias: FloatArray;
  runningMean: FloatArray;
  runningVar: FloatArray;
  saveMean: FloatArray;
  saveInvstd: FloatArray;
}

export function newKernelCopies(dtype: DType, length: number): KernelCopies {
  // Views of one ArrayBuffer made up front, so reading their buffer later allocates nothing.
  const size = dtype === 'float32' ? 4 : 8;
  const buffer = new ArrayBuffer(6 * size * length);
  const view = (i: number): FloatArray =>
    dtype === 'float32' ? new Float32Array(buffer, i * size * length, length) : new Float64Array(buffer, i * size * length, length);
  return { weight: view(0), bias: view(1), runningMean: view(2), runningVar: view(3), saveMean: view(4), saveInvstd: view(5) };
}

/**
 * `target[c]` = the mean over r of `repeated[r * C + c]` (PyTorch's instance_norm averages the repeated
 * running stats over the batch), accumulated in double; with one repeat, a plain copy.
 */
export function averageRepeats(target: FloatArray, repeated: FloatArray, repeat: number): void {
  if (repeat === 1) {
    target.set(repeated);
    return;
  }
  const channels = target.length;
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let r = 0; r < repeat; r++) sum += repeated[r * channels + c]!;
    target[c] = sum / repeat;
  }
}

/** The gradient of a repeated per-channel array: the sum over its repeats (autograd's `repeat` backward). */
export function sumRepeats(gradient: FloatArray, repeat: number): FloatArray {
  if (repeat === 1) return gradient;
  const channels = gradient.length / repeat;
  const sums = gradient.subarray(0, channels).slice();
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (let r = 0; r < repeat; r++) sum += gradient[r * channels + c]!;
    sums[c] = sum;
  }
  return sums;
}

export function accumulate<A extends FloatArray>(parameter: Parameter<A>, gradient: A): void {
  if (parameter.grad === null) {
    parameter.grad = gradient;
    return;
  }
  for (let i = 0; i < gradient.length; i++) parameter.grad[i]! += gradient[i]!;
}
