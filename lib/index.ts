export type { FloatArray, MemoryFormat, Tensor } from './tensor';
export type {
  BatchNormBackwardOptions,
  BatchNormBackwardResult,
  BatchNormOptions,
  BatchNormResult,
} from './functional';
export { batchNorm, batchNormBackward, cpuCapability } from './functional';
export { BatchNormLoadError } from './native';
