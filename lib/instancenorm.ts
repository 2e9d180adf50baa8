// InstanceNorm1d/2d/3d as torch.nn's, on the batch-norm kernels the way PyTorch's instance_norm
// (Normalization.cpp) runs them: the input seen as (1, N * C, *spatial), the per-channel arrays repeated
// N times, the repeated running stats averaged back over the batch. num_batches_tracked is never
// incremented (PyTorch's _InstanceNorm does not count batches).
import { formatShape } from './errors';
import { permuteTo } from './layout';
import { BatchNormBase, type BatchNormModuleOptions, type KernelInput, contiguousOf, rankError } from './norm-base';
import type { CheckedTensor, DType, FloatArray, Tensor } from './tensor';

const INSTANCE_NORM_DEFAULTS = { affine: false, trackRunningStats: false };

/**
 * The shared implementation of {@link InstanceNorm1d}, {@link InstanceNorm2d} and {@link InstanceNorm3d}.
 * Statistics are per sample and channel; `affine` and `trackRunningStats` default to false.
 */
export abstract class InstanceNormBase<D extends DType = DType> extends BatchNormBase<D> {
  /** The rank of a batched input (3, 4 or 5); one less is an unbatched (C, *spatial) input. */
  protected abstract readonly batchedRank: number;

  constructor(numFeatures: number, options?: BatchNormModuleOptions<D>) {
    super(numFeatures, options, INSTANCE_NORM_DEFAULTS);
    if (this.momentum === null) {
      // PyTorch: "instance_norm(): argument 'momentum' must be float, not NoneType" at the first forward.
      throw new TypeError('Expected a finite number for options.momentum but received null (InstanceNorm has no cumulative average)');
    }
  }

  protected checkInputRank(rank: number): void {
    if (rank !== this.batchedRank && rank !== this.batchedRank - 1) {
      throw rankError(`${this.batchedRank - 1}D or ${this.batchedRank}D`, rank);
    }
  }

  protected override isUnbatchedRank(rank: number): boolean {
    return rank === this.batchedRank - 1;
  }

  /** numFeatures is only used by the weight, bias and running stats: without them any C is accepted (as in PyTorch). */
  protected override checkChannels(tensor: CheckedTensor): void {
    if (!this.affine && !this.trackRunningStats) return;
    if (tensor.channels !== this.numFeatures) {
      throw new RangeError(
        `expected input's size at dim=${tensor.unbatched ? 0 : 1} to match num_features (${this.numFeatures}), ` +
          `but got: ${tensor.channels} (input.shape ${formatShape(tensor.unbatched ? tensor.shape.slice(1) : tensor.shape)})`,
      );
    }
  }

  protected override checkTrainingInput(x: CheckedTensor): void {
    if (x.spatial <= 1) {
      const shape = x.unbatched ? x.shape.slice(1) : x.shape;
      throw new RangeError(`Expected more than 1 spatial element when training, got input size ${formatShape(shape)}`);
    }
  }

  protected override get countsBatches(): boolean {
    return false;
  }

  /** (N, C, *spatial) as (1, N * C, spatial), contiguous: channels-last input is permuted first (a copy), as PyTorch does. */
  protected override kernelInput(x: CheckedTensor): KernelInput {
    const c = contiguousOf(x);
    const channels = x.batch * x.channels;
    return {
      x: { ...c, shape: [1, channels, x.spatial], batch: 1, channels, kernelBatch: 1, kernelSpatial: x.spatial },
      repeat: x.batch,
    };
  }

  /** Contiguous, in the input's logical shape (PyTorch returns a contiguous output for a channels-last input). */
  protected override outputTensor(result: Tensor, original: CheckedTensor): Tensor {
    return { data: result.data, shape: logicalShape(original), memoryFormat: 'contiguous' };
  }

  /** In the input's layout and logical shape (PyTorch's gradient follows the input's strides). */
  protected override gradInputTensor(result: Tensor, original: CheckedTensor, destination: FloatArray | undefined): Tensor {
    if (original.memoryFormat === 'contiguous') return { data: result.data, shape: logicalShape(original), memoryFormat: 'contiguous' };
    const contiguous: CheckedTensor = { ...original, data: result.data, memoryFormat: 'contiguous' };
    const permuted = permuteTo(contiguous, original.memoryFormat, destination);
    return { data: permuted.data, shape: logicalShape(original), memoryFormat: original.memoryFormat };
  }

  protected override gradInputInKernelLayout(original: CheckedTensor): boolean {
    return original.memoryFormat === 'contiguous';
  }
}

function logicalShape(x: CheckedTensor): number[] {
  return x.unbatched ? x.shape.slice(1) : [...x.shape];
}

/** Instance norm over (N, C, L) or unbatched (C, L) inputs, as `torch.nn.InstanceNorm1d`. */
export class InstanceNorm1d<D extends DType = 'float32'> extends InstanceNormBase<D> {
  protected readonly className: string = 'InstanceNorm1d';
  protected readonly batchedRank = 3;
}

/** Instance norm over (N, C, H, W) or unbatched (C, H, W) inputs, as `torch.nn.InstanceNorm2d`. */
export class InstanceNorm2d<D extends DType = 'float32'> extends InstanceNormBase<D> {
  protected readonly className: string = 'InstanceNorm2d';
  protected readonly batchedRank = 4;
}

/** Instance norm over (N, C, D, H, W) or unbatched (C, D, H, W) inputs, as `torch.nn.InstanceNorm3d`. */
export class InstanceNorm3d<D extends DType = 'float32'> extends InstanceNormBase<D> {
  protected readonly className: string = 'InstanceNorm3d';
  protected readonly batchedRank = 5;
}
