export type { FloatArray, MemoryFormat, Tensor } from './tensor';
export type {
  BatchNormBackwardOptions,
  BatchNormBackwardResult,
  BatchNormOptions,
  BatchNormResult,
} from './functional';
export {
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  batchNormBackwardAsync,
  cpuCapability,
  getNumThreads,
  setNumThreads,
} from './functional';
export type { BatchNormModuleOptions, DType, Parameter } from './batchnorm';
export { BatchNorm1d, BatchNorm2d, BatchNorm3d, BatchNormBase } from './batchnorm';
export type { LoadStateDictOptions, LoadStateDictResult, StateDict, StateDictInput } from './state-dict';
export { fromSafetensors, loadSafetensors, saveSafetensors, toSafetensors } from './safetensors';
export type { KerasBatchNormConfig, KerasBatchNormWeights } from './keras';
export { fromKerasWeights, toKerasWeights } from './keras';
export { toChannelsLast, toContiguous } from './layout';
export { BatchNormLoadError } from './native';
export { BatchNormStateError } from './errors';
export type { AsyncMemoryGuard } from './async-memory';
export { asyncMemoryGuard } from './async-memory';
