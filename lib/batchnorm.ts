// BatchNorm1d/2d/3d and their lazy twins, as torch.nn's: the shared machinery is lib/norm-base.ts.
import { BatchNormBase, type BatchNormModuleOptions, LAZY_FEATURES, rankError } from './norm-base';
import type { DType } from './tensor';

export type { BatchNormModuleOptions, ModuleBackwardOptions, ModuleForwardOptions, NamedOptions, Parameter } from './norm-base';
export { BatchNormBase } from './norm-base';
export type { DType } from './tensor';

const BATCH_NORM_DEFAULTS = { affine: true, trackRunningStats: true };

function checkRank1d(rank: number): void {
  if (rank !== 2 && rank !== 3) throw rankError('2D or 3D', rank);
}
function checkRank2d(rank: number): void {
  if (rank !== 4) throw rankError('4D', rank);
}
function checkRank3d(rank: number): void {
  if (rank !== 5) throw rankError('5D', rank);
}

/** Batch norm over (N, C) or (N, C, L) inputs, as `torch.nn.BatchNorm1d`. */
export class BatchNorm1d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm1d';
  constructor(numFeatures: number, options?: BatchNormModuleOptions<D>) {
    super(numFeatures, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank1d(rank);
  }
}

/** Batch norm over (N, C, H, W) inputs, as `torch.nn.BatchNorm2d`. */
export class BatchNorm2d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm2d';
  constructor(numFeatures: number, options?: BatchNormModuleOptions<D>) {
    super(numFeatures, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank2d(rank);
  }
}

/** Batch norm over (N, C, D, H, W) inputs, as `torch.nn.BatchNorm3d`. */
export class BatchNorm3d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm3d';
  constructor(numFeatures: number, options?: BatchNormModuleOptions<D>) {
    super(numFeatures, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank3d(rank);
  }
}

/**
 * {@link BatchNorm1d} whose numFeatures comes from the first input (its dimension 1), as
 * `torch.nn.LazyBatchNorm1d`; or from a loaded state dict. Until then `numFeatures` is 0, the
 * parameters' `data` is empty and the buffers are null; the parameter objects stay the same, so an
 * optimizer may be built before the first forward.
 */
export class LazyBatchNorm1d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'LazyBatchNorm1d';
  constructor(options?: BatchNormModuleOptions<D>) {
    super(LAZY_FEATURES, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank1d(rank);
  }
}

/** {@link BatchNorm2d} whose numFeatures comes from the first input, as `torch.nn.LazyBatchNorm2d`. */
export class LazyBatchNorm2d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'LazyBatchNorm2d';
  constructor(options?: BatchNormModuleOptions<D>) {
    super(LAZY_FEATURES, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank2d(rank);
  }
}

/** {@link BatchNorm3d} whose numFeatures comes from the first input, as `torch.nn.LazyBatchNorm3d`. */
export class LazyBatchNorm3d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'LazyBatchNorm3d';
  constructor(options?: BatchNormModuleOptions<D>) {
    super(LAZY_FEATURES, options, BATCH_NORM_DEFAULTS);
  }
  protected checkInputRank(rank: number): void {
    checkRank3d(rank);
  }
}
