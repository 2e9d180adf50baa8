export type { ArrayOf, DType, DTypeOf, FloatArray, MemoryFormat, Tensor } from './tensor';
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
export type { BatchNormModuleOptions, ModuleBackwardOptions, ModuleForwardOptions, NamedOptions, Parameter } from './batchnorm';
export {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  BatchNormBase,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  LazyBatchNorm3d,
} from './batchnorm';
export { InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, InstanceNormBase } from './instancenorm';
export type { SyncBatchNormOptions } from './sync-batchnorm';
export { SyncBatchNorm } from './sync-batchnorm';
export type { ProcessGroup } from './process-group';
export type { WorkerGroup, WorkerGroupMember, WorkerGroupOptions, WorkerProcessGroup } from './worker-group';
export { createWorkerGroup, joinWorkerGroup } from './worker-group';
export type {
  BatchNormStateDict,
  LoadStateDictOptions,
  LoadStateDictResult,
  StateDict,
  StateDictInput,
  StateDictOptions,
} from './state-dict';
export { fromSafetensors, loadSafetensors, saveSafetensors, toSafetensors } from './safetensors';
export type { KerasBatchNormConfig, KerasBatchNormWeights } from './keras';
export { fromKerasWeights, toKerasWeights } from './keras';
export { toChannelsLast, toContiguous } from './layout';
export type { KernelPlan, KernelWalk, PhasePlan } from './kernel-plan';
export { kernelPlan } from './kernel-plan';
export { BatchNormLoadError } from './native';
export { BatchNormStateError } from './errors';
export type { AsyncMemoryGuard } from './async-memory';
export { asyncMemoryGuard, setAsyncMemoryGuard } from './async-memory';
