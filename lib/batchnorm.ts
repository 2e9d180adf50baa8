import { BatchNormStateError, formatShape, invalidType, invalidValue } from './errors';
import {
  type BatchNormBackwardResult,
  type BatchNormResult,
  DEFAULT_EPS,
  DEFAULT_MOMENTUM,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  batchNormBackwardAsync,
  checkBatchSizeForTraining,
} from './functional';
import {
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDict,
  type StateDictInput,
  loadIntoModule,
} from './state-dict';
import { type CheckedTensor, type FloatArray, type Tensor, checkSameDtype, checkTensor, dtypeName } from './tensor';
import { checkBoolean, checkEps, checkFiniteNumber, checkOptions } from './validate';

/** A trainable per-channel array and its accumulated gradient (null until a backward pass, or after zeroGrad). */
export interface Parameter {
  data: FloatArray;
  grad: FloatArray | null;
}

/** The element type of a module's parameters, buffers and inputs. */
export type DType = 'float32' | 'float64';

/** Options of the BatchNorm classes; names and defaults follow `torch.nn.BatchNorm2d`. */
export interface BatchNormModuleOptions {
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Running-stat update factor; `null` uses a cumulative moving average. Default 0.1. */
  momentum?: number | null;
  /** Learnable weight (init 1) and bias (init 0). Default true. */
  affine?: boolean;
  /** Keep running_mean/running_var/num_batches_tracked and use them in eval mode. Default true. */
  trackRunningStats?: boolean;
  /** Element type of parameters, buffers and accepted inputs. Default 'float32'. */
  dtype?: DType;
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

function newArray(dtype: DType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

/**
 * Shared implementation of {@link BatchNorm1d}, {@link BatchNorm2d} and {@link BatchNorm3d}: owns the
 * parameters (`weight`, `bias` and their gradients) and running buffers through train/eval, forward,
 * backward and state dicts, following PyTorch's `_BatchNorm` module.
 */
export abstract class BatchNormBase {
  /** C, the number of channels of accepted inputs. */
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly dtype: DType;

  /** Scale (gamma), present when `affine`. */
  readonly weight: Parameter | null;
  /** Shift (beta), present when `affine`. */
  readonly bias: Parameter | null;
  /** Present when `trackRunningStats`; updated in place by training forwards. */
  readonly runningMean: FloatArray | null;
  /** Present when `trackRunningStats`; holds the unbiased variance estimate. */
  readonly runningVar: FloatArray | null;
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
  private batchesTracked = 0;
  /** Training mode (batch statistics) or evaluation mode (running statistics). New modules train. */
  training = true;

  private saved: SavedForward | null = null;
  /** Whether the last forward's gradient was taken (for the message of a second backward). */
  private backwardTaken = false;

  /** The module's name in messages, e.g. `BatchNorm2d`. */
  protected abstract readonly className: string;

  /** Throws a RangeError like PyTorch's "expected 4D input (got 3D input)" for a rank this class rejects. */
  protected abstract checkInputRank(rank: number): void;

  constructor(numFeatures: number, options?: BatchNormModuleOptions) {
    if (typeof numFeatures !== 'number') throw invalidType('numFeatures', 'a positive integer', numFeatures);
    if (!Number.isSafeInteger(numFeatures) || numFeatures < 1) {
      throw invalidValue('numFeatures', 'a positive integer', numFeatures);
    }
    const opts = checkOptions(options, 'options', MODULE_KEYS);
    this.eps = checkEps(opts.eps, 'options.eps', DEFAULT_EPS);
    this.momentum = opts.momentum === null ? null : checkFiniteNumber(opts.momentum, 'options.momentum', DEFAULT_MOMENTUM);
    this.affine = checkBoolean(opts.affine, 'options.affine', true);
    this.trackRunningStats = checkBoolean(opts.trackRunningStats, 'options.trackRunningStats', true);
    if (opts.dtype !== undefined && opts.dtype !== 'float32' && opts.dtype !== 'float64') {
      throw invalidType('options.dtype', "'float32' or 'float64'", opts.dtype);
    }
    this.dtype = (opts.dtype as DType | undefined) ?? 'float32';
    this.numFeatures = numFeatures;
    this.weight = this.affine ? { data: newArray(this.dtype, numFeatures), grad: null } : null;
    this.bias = this.affine ? { data: newArray(this.dtype, numFeatures), grad: null } : null;
    this.runningMean = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.runningVar = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.resetParameters();
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
    this.numBatchesTracked = 0;
  }

  /** Resets the running stats and sets weight = 1, bias = 0 (gradients are kept, as in PyTorch). */
  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  /** The trainable parameters, `[weight, bias]` (empty when not affine), for an optimizer. */
  parameters(): Parameter[] {
    return this.weight !== null && this.bias !== null ? [this.weight, this.bias] : [];
  }

  /** Sets every parameter's gradient back to null. */
  zeroGrad(): void {
    this.checkIdle('zeroGrad');
    for (const parameter of this.parameters()) parameter.grad = null;
  }

  private checkInput(value: unknown, name: string): CheckedTensor {
    // The class's own rank rule comes first, so BatchNorm2d says "expected 4D input (got 6D input)".
    const shape = (value as { shape?: unknown } | null)?.shape;
    if (Array.isArray(shape)) this.checkInputRank(shape.length);
    const tensor = checkTensor(value, name);
    if (dtypeName(tensor.data) !== this.dtype) {
      throw new TypeError(
        `Expected a ${this.dtype === 'float32' ? 'Float32Array' : 'Float64Array'} for ${name}.data ` +
          `(the module's dtype is ${this.dtype}) but received ${dtypeName(tensor.data) === 'float32' ? 'Float32Array' : 'Float64Array'}`,
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
   * Normalizes `input` (N, C, *spatial). In training mode this uses the batch statistics and updates the
   * running stats; in eval mode it uses the running stats (or batch statistics when they are not tracked).
   * Remembers what {@link backward} needs; `input.data` must not change until then.
   */
  forward(input: Tensor): Tensor {
    this.checkIdle('forward');
    const plan = this.planForward(input, this.training);
    const result = batchNorm(plan.input, plan.options);
    this.commitForward(plan, result);
    return result.output;
  }

  /**
   * {@link forward} on the libuv thread pool, so a large batch does not block the event loop. Async calls
   * on one module run one after another in call order (each sees the state the previous one left);
   * calls on different modules run in parallel. Until they settle, synchronous calls that use or change
   * the module's state throw, and the input's data must not change.
   */
  forwardAsync(input: Tensor): Promise<Tensor> {
    const training = this.training;
    return this.enqueue(async () => {
      const plan = this.planForward(input, training);
      const result = await batchNormAsync(plan.input, plan.options);
      this.commitForward(plan, result);
      return result.output;
    });
  }

  /**
   * Gradient with respect to the last forward's input, for `gradOutput` (the gradient of the loss with
   * respect to that forward's output). Adds the weight and bias gradients into `weight.grad` and
   * `bias.grad`, as PyTorch's autograd accumulates them. Each forward allows one backward.
   */
  backward(gradOutput: Tensor): Tensor {
    this.checkIdle('backward');
    const plan = this.planBackward(gradOutput);
    const grads = batchNormBackward(plan.gradOutput, plan.input, plan.options);
    return this.commitBackward(grads);
  }

  /** {@link backward} on the libuv thread pool, queued after this module's pending async calls. */
  backwardAsync(gradOutput: Tensor): Promise<Tensor> {
    return this.enqueue(async () => {
      const plan = this.planBackward(gradOutput);
      const grads = await batchNormBackwardAsync(plan.gradOutput, plan.input, plan.options);
      return this.commitBackward(grads);
    });
  }

  /** Async calls on this module that have not settled yet. */
  get pendingAsyncCalls(): number {
    return this.pending;
  }

  private pending = 0;
  private queue: Promise<unknown> = Promise.resolve();

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

  /**
   * Everything forward decides before touching state; throws (changing nothing) on bad input. The
   * kernels get copies of the module's arrays (C values each): the running stats are updated in the
   * copies and committed only when the call succeeds, and no array the module owns is ever marked or
   * held by an async call.
   */
  private planForward(input: Tensor, training: boolean) {
    const x = this.checkInput(input, 'input');
    const usedBatchStats = training || !this.trackRunningStats;
    const updatesRunningStats = training && this.trackRunningStats;
    if (usedBatchStats) checkBatchSizeForTraining(x);
    // PyTorch counts the batch first, so momentum null averages over batches including this one.
    const counted = updatesRunningStats ? this.batchesTracked + 1 : this.batchesTracked;
    const factor = this.momentum ?? (updatesRunningStats ? 1 / counted : 0);
    const readsRunningStats = usedBatchStats ? updatesRunningStats : true;
    const runningMean = readsRunningStats ? this.runningMean!.slice() : null;
    const runningVar = readsRunningStats ? this.runningVar!.slice() : null;
    const weight = this.weight?.data.slice() ?? null;
    return {
      x,
      usedBatchStats,
      counted,
      updatesRunningStats,
      input: { data: x.data, shape: x.shape, memoryFormat: x.memoryFormat },
      options: {
        weight,
        bias: this.bias?.data.slice() ?? null,
        runningMean,
        runningVar,
        training: usedBatchStats,
        momentum: factor,
        eps: this.eps,
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

  private planBackward(gradOutput: Tensor) {
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
    if (dy.memoryFormat !== saved.input.memoryFormat) {
      throw new RangeError(
        `gradOutput.memoryFormat '${dy.memoryFormat}' must equal the forward input's '${saved.input.memoryFormat}'`,
      );
    }
    // One backward per forward: claimed now, so a second (even queued) backward fails clearly.
    this.saved = null;
    this.backwardTaken = true;
    return {
      gradOutput: { data: dy.data, shape: dy.shape, memoryFormat: dy.memoryFormat },
      input: { data: saved.input.data, shape: saved.input.shape, memoryFormat: saved.input.memoryFormat },
      options: {
        weight: saved.weight,
        runningMean: saved.runningMean,
        runningVar: saved.runningVar,
        saveMean: saved.saveMean,
        saveInvstd: saved.saveInvstd,
        training: saved.usedBatchStats,
        eps: this.eps,
        outputMask: [true, this.affine, this.affine] as [boolean, boolean, boolean],
      },
    };
  }

  private commitBackward(grads: BatchNormBackwardResult): Tensor {
    if (this.weight !== null && this.bias !== null) {
      accumulate(this.weight, grads.gradWeight!);
      accumulate(this.bias, grads.gradBias!);
    }
    return grads.gradInput!;
  }

  /**
   * The module's state with PyTorch's keys and order: `weight`, `bias`, `running_mean`, `running_var`,
   * `num_batches_tracked` (those the module has). Values are copies, so the dict is a snapshot;
   * `num_batches_tracked` is a `BigInt64Array` of length 1.
   */
  stateDict(): StateDict {
    this.checkIdle('stateDict');
    const state: StateDict = {};
    if (this.weight !== null && this.bias !== null) {
      state.weight = this.weight.data.slice();
      state.bias = this.bias.data.slice();
    }
    if (this.runningMean !== null && this.runningVar !== null) {
      state.running_mean = this.runningMean.slice();
      state.running_var = this.runningVar.slice();
      state.num_batches_tracked = BigInt64Array.of(BigInt(this.numBatchesTracked));
    }
    return state;
  }

  /**
   * Copies a state dict into the module. Checks every entry first (keys when `strict`, which is the
   * default; lengths; dtypes), so a failed load changes nothing. As in PyTorch, a missing
   * `num_batches_tracked` counts as 0.
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
  toAffine(): { scale: FloatArray; shift: FloatArray } {
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

function accumulate(parameter: Parameter, gradient: FloatArray): void {
  if (parameter.grad === null) {
    parameter.grad = gradient;
    return;
  }
  for (let i = 0; i < gradient.length; i++) parameter.grad[i]! += gradient[i]!;
}

function rankError(expected: string, rank: number): RangeError {
  return new RangeError(`expected ${expected} input (got ${rank}D input)`);
}

/** Batch norm over (N, C) or (N, C, L) inputs, as `torch.nn.BatchNorm1d`. */
export class BatchNorm1d extends BatchNormBase {
  protected readonly className = 'BatchNorm1d';
  protected checkInputRank(rank: number): void {
    if (rank !== 2 && rank !== 3) throw rankError('2D or 3D', rank);
  }
}

/** Batch norm over (N, C, H, W) inputs, as `torch.nn.BatchNorm2d`. */
export class BatchNorm2d extends BatchNormBase {
  protected readonly className = 'BatchNorm2d';
  protected checkInputRank(rank: number): void {
    if (rank !== 4) throw rankError('4D', rank);
  }
}

/** Batch norm over (N, C, D, H, W) inputs, as `torch.nn.BatchNorm3d`. */
export class BatchNorm3d extends BatchNormBase {
  protected readonly className = 'BatchNorm3d';
  protected checkInputRank(rank: number): void {
    if (rank !== 5) throw rankError('5D', rank);
  }
}

