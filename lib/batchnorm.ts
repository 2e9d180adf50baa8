import { BatchNormStateError, formatShape, invalidType, invalidValue } from './errors';
import {
  type BatchNormBackwardResult,
  type BatchNormResult,
  DEFAULT_EPS,
  DEFAULT_MOMENTUM,
  checkBatchSizeForTraining,
  checkedCalls,
} from './functional';
import { ownValue } from './intrinsics';
import {
  type BatchNormStateDict,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDict,
  type StateDictInput,
  type StateDictOptions,
  checkStateDictOptions,
  loadIntoModule,
} from './state-dict';
import { type ArrayOf, type CheckedTensor, type DType, type FloatArray, type Tensor, checkSameDtype, checkTensor, dtypeName } from './tensor';
import { checkBoolean, checkEps, checkFiniteNumber, checkOptions } from './validate';

export type { DType } from './tensor';

/** A trainable per-channel array and its accumulated gradient (null until a backward pass, or after zeroGrad). */
export interface Parameter<A extends FloatArray = FloatArray> {
  data: A;
  grad: A | null;
}

/** Options of the BatchNorm classes; names and defaults follow `torch.nn.BatchNorm2d`. */
export interface BatchNormModuleOptions<D extends DType = DType> {
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Running-stat update factor; `null` uses a cumulative moving average. Default 0.1. */
  momentum?: number | null;
  /** Learnable weight (init 1) and bias (init 0). Default true. */
  affine?: boolean;
  /** Keep running_mean/running_var/num_batches_tracked and use them in eval mode. Default true. */
  trackRunningStats?: boolean;
  /** Element type of parameters, buffers and accepted inputs. Default 'float32'. */
  dtype?: D;
}

/** Options of a module's forward: where to write the output. */
export interface ModuleForwardOptions<D extends DType = DType> {
  /**
   * Destination for the output (the input's element count and dtype, in the input's layout), reused
   * across steps instead of a new array per call. May be the input's own elements (in place); then
   * backward, which reads the forward's input, must come before the input is overwritten again.
   */
  out?: ArrayOf<D>;
}

/** Options of a module's backward: where to write the input gradient. */
export interface ModuleBackwardOptions<D extends DType = DType> {
  /** `gradInput`: destination for the gradient w.r.t. the input (input-sized, in the input's layout). */
  out?: { gradInput?: ArrayOf<D> };
}

/** What backward needs from the forward pass, as autograd would save it. */
interface SavedForward {
  input: CheckedTensor;
  /** Copy of the weight at forward time (an optimizer step before backward does not change the gradient). */
  weight: FloatArray | null;
  usedBatchStats: boolean;
  saveMean: FloatArray;
  saveInvstd: FloatArray;
  /** Copies of the running stats the forward read, for an evaluation-mode backward. */
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
}

const MODULE_KEYS = ['eps', 'momentum', 'affine', 'trackRunningStats', 'dtype'] as const;
const FORWARD_CALL_KEYS = ['out'] as const;
const BACKWARD_CALL_KEYS = ['out'] as const;
const BACKWARD_OUT_KEYS = ['gradInput'] as const;

export function newArray<D extends DType>(dtype: D, length: number): ArrayOf<D> {
  return (dtype === 'float32' ? new Float32Array(length) : new Float64Array(length)) as ArrayOf<D>;
}

export function checkDType(value: unknown, name: string): DType {
  if (value !== undefined && value !== 'float32' && value !== 'float64') {
    throw invalidType(name, "'float32' or 'float64'", value);
  }
  return (value as DType | undefined) ?? 'float32';
}

/**
 * Shared implementation of {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}: owns the
 * parameters (`weight`, `bias` and their gradients) and running buffers through train/eval, forward,
 * backward and state dicts, following PyTorch's `_BatchNorm` module. `D` is the dtype: inputs, outputs,
 * parameters and buffers are `Float32Array`s for `'float32'` (the default), `Float64Array`s for `'float64'`.
 */
export abstract class BatchNormBase<D extends DType = DType> {
  /** C, the number of channels of accepted inputs. */
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly dtype: D;

  /** Scale (gamma), present when `affine`. */
  readonly weight: Parameter<ArrayOf<D>> | null;
  /** Shift (beta), present when `affine`. */
  readonly bias: Parameter<ArrayOf<D>> | null;
  /** Present when `trackRunningStats`; updated in place by training forwards. */
  readonly runningMean: ArrayOf<D> | null;
  /** Present when `trackRunningStats`; holds the unbiased variance estimate. */
  readonly runningVar: ArrayOf<D> | null;
  /** Training mode (batch statistics) or evaluation mode (running statistics). New modules train. */
  training = true;

  private batchesTracked = 0;
  private saved: SavedForward | null = null;
  /**
   * Two sets of copies of the module's per-channel arrays for the kernels, used in turn: the set the
   * saved forward refers to is never written by the next forward's plan, so a forward that fails leaves
   * the saved one intact. Reused across calls (a fresh small typed array per call, plus materializing
   * its buffer for the overlap checks, cost several microseconds per small call).
   */
  private readonly kernelCopies: [KernelCopies, KernelCopies];
  private nextCopies = 0;
  /** Whether the last forward's gradient was taken (for the message of a second backward). */
  private backwardTaken = false;
  private pending = 0;
  private queue: Promise<unknown> = Promise.resolve();

  /** The module's name in messages, e.g. `BatchNorm2d`. */
  protected abstract readonly className: string;

  /** Throws a RangeError like PyTorch's "expected 4D input (got 3D input)" for a rank this class rejects. */
  protected abstract checkInputRank(rank: number): void;

  constructor(numFeatures: number, options?: BatchNormModuleOptions<D>) {
    if (typeof numFeatures !== 'number') throw invalidType('numFeatures', 'a positive integer', numFeatures);
    if (!Number.isSafeInteger(numFeatures) || numFeatures < 1) {
      throw invalidValue('numFeatures', 'a positive integer', numFeatures);
    }
    const opts = checkOptions(options, 'options', MODULE_KEYS);
    this.eps = checkEps(opts.eps, 'options.eps', DEFAULT_EPS);
    this.momentum = opts.momentum === null ? null : checkFiniteNumber(opts.momentum, 'options.momentum', DEFAULT_MOMENTUM);
    this.affine = checkBoolean(opts.affine, 'options.affine', true);
    this.trackRunningStats = checkBoolean(opts.trackRunningStats, 'options.trackRunningStats', true);
    this.dtype = checkDType(opts.dtype, 'options.dtype') as D;
    this.numFeatures = numFeatures;
    this.weight = this.affine ? { data: newArray(this.dtype, numFeatures), grad: null } : null;
    this.bias = this.affine ? { data: newArray(this.dtype, numFeatures), grad: null } : null;
    this.runningMean = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.runningVar = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.kernelCopies = [newKernelCopies(this.dtype, numFeatures), newKernelCopies(this.dtype, numFeatures)];
    this.resetParameters();
  }

  /** Training forwards seen so far (PyTorch's int64 `num_batches_tracked`): a non-negative safe integer. */
  get numBatchesTracked(): number {
    return this.batchesTracked;
  }
  set numBatchesTracked(value: number) {
    if (typeof value !== 'number') throw invalidType('numBatchesTracked', 'a non-negative safe integer', value);
    if (!Number.isSafeInteger(value) || value < 0) throw invalidValue('numBatchesTracked', 'a non-negative safe integer', value);
    this.checkIdle('numBatchesTracked');
    this.batchesTracked = value;
  }

  /** Sets training mode (`true`, the default) or evaluation mode. */
  train(mode = true): this {
    this.training = checkBoolean(mode, 'mode', true);
    return this;
  }

  /** Evaluation mode: normalize with the running statistics (when tracked). */
  eval(): this {
    return this.train(false);
  }

  /** running_mean = 0, running_var = 1, num_batches_tracked = 0. */
  resetRunningStats(): void {
    this.checkIdle('resetRunningStats');
    this.runningMean?.fill(0);
    this.runningVar?.fill(1);
    this.batchesTracked = 0;
  }

  /** Resets the running stats and sets weight = 1, bias = 0 (gradients are kept, as in PyTorch). */
  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  /** The trainable parameters, `[weight, bias]` (empty when not affine), for an optimizer. */
  parameters(): Parameter<ArrayOf<D>>[] {
    return this.weight !== null && this.bias !== null ? [this.weight, this.bias] : [];
  }

  /** Sets every parameter's gradient back to null. */
  zeroGrad(): void {
    this.checkIdle('zeroGrad');
    for (const parameter of this.parameters()) parameter.grad = null;
  }

  /**
   * Normalizes `input` (N, C, *spatial). In training mode this uses the batch statistics and updates the
   * running stats; in eval mode it uses the running stats (or batch statistics when they are not tracked).
   * Remembers what {@link backward} needs; `input.data` must not change until then. With `out`, the
   * output is written there (no allocation).
   */
  forward(input: Tensor<ArrayOf<D>>, options?: ModuleForwardOptions<D>): Tensor<ArrayOf<D>> {
    this.checkIdle('forward');
    const plan = this.planForward(input, this.training, options);
    const result = checkedCalls.forward(plan.x, plan.options);
    this.commitForward(plan, result);
    return result.output as Tensor<ArrayOf<D>>;
  }

  /**
   * {@link forward} on the libuv thread pool, so a large batch does not block the event loop. Async calls
   * on one module run one after another in call order (each sees the state the previous one left);
   * calls on different modules run in parallel. Until they settle, synchronous calls that use or change
   * the module's state throw, and the input's data (and `out`) must not change.
   */
  forwardAsync(input: Tensor<ArrayOf<D>>, options?: ModuleForwardOptions<D>): Promise<Tensor<ArrayOf<D>>> {
    const training = this.training;
    return this.enqueue(async () => {
      const plan = this.planForward(input, training, options);
      const result = await checkedCalls.forwardAsync(plan.x, plan.options);
      this.commitForward(plan, result);
      return result.output as Tensor<ArrayOf<D>>;
    });
  }

  /**
   * Gradient with respect to the last forward's input, for `gradOutput` (the gradient of the loss with
   * respect to that forward's output, in either memory format; the result takes the input's). Adds the
   * weight and bias gradients into `weight.grad` and `bias.grad`, as PyTorch's autograd accumulates them.
   * Each forward allows one backward. With `out.gradInput`, the gradient is written there.
   */
  backward(gradOutput: Tensor<ArrayOf<D>>, options?: ModuleBackwardOptions<D>): Tensor<ArrayOf<D>> {
    this.checkIdle('backward');
    const plan = this.planBackward(gradOutput, options);
    const grads = checkedCalls.backward(plan.gradOutput, plan.input, plan.options);
    return this.commitBackward(grads);
  }

  /** {@link backward} on the libuv thread pool, queued after this module's pending async calls. */
  backwardAsync(gradOutput: Tensor<ArrayOf<D>>, options?: ModuleBackwardOptions<D>): Promise<Tensor<ArrayOf<D>>> {
    return this.enqueue(async () => {
      const plan = this.planBackward(gradOutput, options);
      const grads = await checkedCalls.backwardAsync(plan.gradOutput, plan.input, plan.options);
      return this.commitBackward(grads);
    });
  }

  /** Async calls on this module that have not settled yet. */
  get pendingAsyncCalls(): number {
    return this.pending;
  }

  private enqueue<R>(task: () => Promise<R>): Promise<R> {
    this.pending++;
    const run = this.queue.then(task);
    this.queue = run.then(
      () => this.pending--,
      () => this.pending--,
    );
    return run;
  }

  /** Synchronous calls that read or change state must not interleave with queued async calls. */
  protected checkIdle(method: string): void {
    if (this.pending > 0) {
      throw new BatchNormStateError(
        `${this.className}.${method}() was called while ${this.pending} async call(s) on this module are pending; ` +
          'await them first (or use the async variant, which queues behind them)',
      );
    }
  }

  /** Checks an input: the class's rank rule first (PyTorch's message), then dtype and channel count. */
  protected checkInput(value: unknown, name: string): CheckedTensor {
    const shape = typeof value === 'object' && value !== null ? ownValue(value, 'shape') : undefined;
    if (Array.isArray(shape)) this.checkInputRank(shape.length);
    const tensor = checkTensor(value, name);
    if (dtypeName(tensor.data) !== this.dtype) {
      const arrayName = (dtype: DType) => (dtype === 'float32' ? 'Float32Array' : 'Float64Array');
      throw new TypeError(
        `Expected a ${arrayName(this.dtype)} for ${name}.data (the module's dtype is ${this.dtype}) but received ` +
          arrayName(dtypeName(tensor.data)),
      );
    }
    if (tensor.channels !== this.numFeatures) {
      throw new RangeError(
        `Expected ${name} with ${this.numFeatures} channels (numFeatures) but got ${tensor.channels} ` +
          `(${name}.shape ${formatShape(tensor.shape)})`,
      );
    }
    return tensor;
  }

  /**
   * Everything forward decides before touching state; throws (changing nothing) on bad input. The
   * kernels get copies of the module's arrays (C values each): the running stats are updated in the
   * copies and committed only when the call succeeds, and no array the module owns is ever marked or
   * held by an async call.
   */
  private planForward(input: unknown, training: boolean, options: unknown) {
    const { out } = checkOptions(options, 'options', FORWARD_CALL_KEYS);
    const x = this.checkInput(input, 'input');
    const usedBatchStats = training || !this.trackRunningStats;
    const updatesRunningStats = training && this.trackRunningStats;
    if (usedBatchStats) checkTrainingBatch(x);
    // PyTorch counts the batch first, so momentum null averages over batches including this one.
    const counted = updatesRunningStats ? this.batchesTracked + 1 : this.batchesTracked;
    const factor = this.momentum ?? (updatesRunningStats ? 1 / counted : 0);
    const readsRunningStats = usedBatchStats ? updatesRunningStats : true;
    const copies = this.kernelCopies[this.nextCopies]!;
    const copy = (source: FloatArray | null | undefined, target: FloatArray) => {
      if (source == null) return null;
      target.set(source);
      return target;
    };
    const runningMean = readsRunningStats ? copy(this.runningMean, copies.runningMean) : null;
    const runningVar = readsRunningStats ? copy(this.runningVar, copies.runningVar) : null;
    const weight = copy(this.weight?.data, copies.weight);
    return {
      x,
      usedBatchStats,
      counted,
      updatesRunningStats,
      options: {
        weight,
        bias: copy(this.bias?.data, copies.bias),
        runningMean,
        runningVar,
        training: usedBatchStats,
        momentum: factor,
        eps: this.eps,
        out: out as FloatArray | undefined,
      },
      // The weight and running stats this forward used, for its backward (an optimizer step in between
      // must not change the gradient).
      weightAtForward: weight,
      runningMeanAtForward: usedBatchStats ? null : runningMean,
      runningVarAtForward: usedBatchStats ? null : runningVar,
    };
  }

  /** Applies a successful forward: running stats, counter and what backward needs, all at once. */
  private commitForward(plan: ReturnType<BatchNormBase['planForward']>, result: BatchNormResult): void {
    if (plan.updatesRunningStats) {
      this.runningMean!.set(plan.options.runningMean!);
      this.runningVar!.set(plan.options.runningVar!);
    }
    this.batchesTracked = plan.counted;
    this.nextCopies = 1 - this.nextCopies;
    this.saved = {
      input: plan.x,
      weight: plan.weightAtForward,
      usedBatchStats: plan.usedBatchStats,
      saveMean: result.saveMean,
      saveInvstd: result.saveInvstd,
      runningMean: plan.runningMeanAtForward,
      runningVar: plan.runningVarAtForward,
    };
    this.backwardTaken = false;
  }

  private planBackward(gradOutput: unknown, options: unknown) {
    const { out } = checkOptions(options, 'options', BACKWARD_CALL_KEYS);
    const { gradInput } = checkOptions(out, 'options.out', BACKWARD_OUT_KEYS);
    const saved = this.saved;
    if (saved === null) {
      throw new BatchNormStateError(
        this.backwardTaken
          ? `${this.className}.backward() was already called for the last forward(); each forward allows one backward ` +
              '(run forward() again for another gradient)'
          : `${this.className}.backward() needs a preceding forward() (none since the module was created)`,
      );
    }
    const dy = checkTensor(gradOutput, 'gradOutput');
    checkSameDtype(dy.data, 'gradOutput.data', saved.input.data);
    if (dy.shape.length !== saved.input.shape.length || dy.shape.some((size, i) => size !== saved.input.shape[i])) {
      throw new RangeError(
        `gradOutput.shape ${formatShape(dy.shape)} must equal the forward input's shape ${formatShape(saved.input.shape)}`,
      );
    }
    // One backward per forward: claimed now, so a second (even queued) backward fails clearly.
    this.saved = null;
    this.backwardTaken = true;
    return {
      gradOutput: dy,
      input: saved.input,
      options: {
        weight: saved.weight,
        runningMean: saved.runningMean,
        runningVar: saved.runningVar,
        saveMean: saved.saveMean,
        saveInvstd: saved.saveInvstd,
        training: saved.usedBatchStats,
        eps: this.eps,
        outputMask: [true, this.affine, this.affine] as [boolean, boolean, boolean],
        out: gradInput === undefined ? undefined : { gradInput: gradInput as FloatArray },
      },
    };
  }

  private commitBackward(grads: BatchNormBackwardResult): Tensor<ArrayOf<D>> {
    if (this.weight !== null && this.bias !== null) {
      accumulate(this.weight, grads.gradWeight as ArrayOf<D>);
      accumulate(this.bias, grads.gradBias as ArrayOf<D>);
    }
    return grads.gradInput as Tensor<ArrayOf<D>>;
  }

  /**
   * The module's state with PyTorch's keys and order: `weight`, `bias`, `running_mean`, `running_var`,
   * `num_batches_tracked` (those the module has). Values are copies, so the dict is a snapshot;
   * `num_batches_tracked` is a `BigInt64Array` of length 1. With `prefix` (say `'bn1.'`), every key
   * starts with it, as a layer's keys do in a whole model's state dict.
   */
  stateDict(): BatchNormStateDict<D>;
  stateDict(options: StateDictOptions): StateDict;
  stateDict(options?: StateDictOptions): BatchNormStateDict<D> | StateDict {
    const { prefix } = checkStateDictOptions(options);
    this.checkIdle('stateDict');
    const state: StateDict = {};
    if (this.weight !== null && this.bias !== null) {
      state[`${prefix}weight`] = this.weight.data.slice();
      state[`${prefix}bias`] = this.bias.data.slice();
    }
    if (this.runningMean !== null && this.runningVar !== null) {
      state[`${prefix}running_mean`] = this.runningMean.slice();
      state[`${prefix}running_var`] = this.runningVar.slice();
      state[`${prefix}num_batches_tracked`] = BigInt64Array.of(BigInt(this.batchesTracked));
    }
    return state;
  }

  /**
   * Copies a state dict into the module. Checks every entry first (keys when `strict`, which is the
   * default; lengths; dtypes), so a failed load changes nothing. As in PyTorch, a missing
   * `num_batches_tracked` counts as 0. With `prefix` (say `'1.'` for the second layer of an
   * `nn.Sequential`), only the keys that start with it are this module's (the prefix removed); the
   * others belong to other layers and are neither loaded nor reported.
   */
  loadStateDict(stateDict: StateDictInput, options?: LoadStateDictOptions): LoadStateDictResult {
    this.checkIdle('loadStateDict');
    return loadIntoModule(this, stateDict, options);
  }

  /**
   * The per-channel map `y = x * scale + shift` this module applies in eval mode, for folding into a
   * preceding linear or convolution layer: `scale = weight / sqrt(running_var + eps)`,
   * `shift = bias - running_mean * scale`.
   */
  toAffine(): { scale: ArrayOf<D>; shift: ArrayOf<D> } {
    this.checkIdle('toAffine');
    if (this.runningMean === null || this.runningVar === null) {
      throw new BatchNormStateError(`${this.className}.toAffine() needs running statistics, but trackRunningStats is false`);
    }
    const scale = newArray(this.dtype, this.numFeatures);
    const shift = newArray(this.dtype, this.numFeatures);
    for (let c = 0; c < this.numFeatures; c++) {
      const s = (this.weight?.data[c] ?? 1) / Math.sqrt(this.runningVar[c]! + this.eps);
      scale[c] = s;
      shift[c] = (this.bias?.data[c] ?? 0) - this.runningMean[c]! * s;
    }
    return { scale, shift };
  }
}

/** Per-channel arrays the kernels get instead of the module's own (see BatchNormBase.kernelCopies). */
interface KernelCopies {
  weight: FloatArray;
  bias: FloatArray;
  runningMean: FloatArray;
  runningVar: FloatArray;
}

function newKernelCopies(dtype: DType, channels: number): KernelCopies {
  // Views of one ArrayBuffer made up front, so reading their buffer later allocates nothing.
  const size = dtype === 'float32' ? 4 : 8;
  const buffer = new ArrayBuffer(4 * size * channels);
  const view = (i: number): FloatArray =>
    dtype === 'float32' ? new Float32Array(buffer, i * size * channels, channels) : new Float64Array(buffer, i * size * channels, channels);
  return { weight: view(0), bias: view(1), runningMean: view(2), runningVar: view(3) };
}

/** PyTorch's check that training sees more than one value per channel, with a hint for inference. */
function checkTrainingBatch(x: CheckedTensor): void {
  try {
    checkBatchSizeForTraining(x);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new RangeError(`${error.message} (for inference on a single sample, call eval() first)`);
  }
}

function accumulate<A extends FloatArray>(parameter: Parameter<A>, gradient: A): void {
  if (parameter.grad === null) {
    parameter.grad = gradient;
    return;
  }
  for (let i = 0; i < gradient.length; i++) parameter.grad[i]! += gradient[i]!;
}

export function rankError(expected: string, rank: number): RangeError {
  return new RangeError(`expected ${expected} input (got ${rank}D input)`);
}

/** Batch norm over (N, C) or (N, C, L) inputs, as `torch.nn.BatchNorm1d`. */
export class BatchNorm1d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm1d';
  protected checkInputRank(rank: number): void {
    if (rank !== 2 && rank !== 3) throw rankError('2D or 3D', rank);
  }
}

/** Batch norm over (N, C, H, W) inputs, as `torch.nn.BatchNorm2d`. */
export class BatchNorm2d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm2d';
  protected checkInputRank(rank: number): void {
    if (rank !== 4) throw rankError('4D', rank);
  }
}

/** Batch norm over (N, C, D, H, W) inputs, as `torch.nn.BatchNorm3d`. */
export class BatchNorm3d<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'BatchNorm3d';
  protected checkInputRank(rank: number): void {
    if (rank !== 5) throw rankError('5D', rank);
  }
}
