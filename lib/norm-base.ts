// The module machinery of the batch-norm family (BatchNorm*, LazyBatchNorm*, InstanceNorm*): parameters
// and buffers through their lifecycle, train/eval, forward and backward (sync and queued async), state
// dicts. Subclasses say how an input maps onto the batch-norm kernels (kernelInput and its hooks).
import { CallQueue } from './call-queue';
import { BatchNormStateError, formatShape, invalidType, invalidValue } from './errors';
import { type BatchNormBackwardResult, type BatchNormResult, checkedCalls } from './functional';
import { elementCount, ownValue } from './intrinsics';
import { permuteTo } from './layout';
import { moduleRepr } from './module-repr';
import { native } from './native';
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
import {
  type ArrayOf,
  type CheckedTensor,
  type DType,
  type FloatArray,
  type Tensor,
  checkSameDtype,
  checkTensor,
  dtypeName,
  isFloatArray,
  overlaps,
} from './tensor';
import { checkBoolean, checkOptions } from './validate';
import { type KernelCopies, accumulate, averageRepeats, newKernelCopies, sumRepeats } from './module-arrays';
import {
  BACKWARD_CALL_KEYS,
  BACKWARD_OUT_KEYS,
  type BatchNormModuleOptions,
  FORWARD_CALL_KEYS,
  LAZY_FEATURES,
  type ModuleBackwardOptions,
  type ModuleDefaults,
  type ModuleForwardOptions,
  type NamedOptions,
  type Parameter,
  checkModuleOptions,
  checkNamedOptions,
  newArray,
} from './module-options';

export {
  type BatchNormModuleOptions,
  LAZY_FEATURES,
  type ModuleBackwardOptions,
  type ModuleForwardOptions,
  type NamedOptions,
  type Parameter,
  newArray,
};
export { rankError } from './module-options';

/** How a module's input meets the kernels: the tensor they see and how often each channel repeats in it. */
export interface KernelInput {
  x: CheckedTensor;
  /** The kernels see `repeat` copies of each of the module's channels (InstanceNorm: N). */
  repeat: number;
}

/** What backward needs from the forward pass, as autograd would save it. */
interface SavedForward {
  /** The input as given (after strides), for the layout of the gradient. */
  original: CheckedTensor;
  kernel: KernelInput;
  /** Copy of the weight at forward time (an optimizer step before backward does not change the gradient). */
  weight: FloatArray | null;
  usedBatchStats: boolean;
  saveMean: FloatArray;
  saveInvstd: FloatArray;
  /** Copies of the running stats the forward read, for an evaluation-mode backward. */
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  /** The forward's `out`: if it was the input's memory (evaluation in place), the input is gone. */
  out: FloatArray | null;
  /** The input's fingerprint at forward, when the module checks that it is unchanged at backward. */
  fingerprint: bigint | null;
}




/**
 * The shared base of the batch-norm family: owns the parameters (`weight`, `bias` and their gradients)
 * and running buffers through train/eval, forward, backward and state dicts, following PyTorch's
 * `_NormBase`. `D` is the dtype: inputs, outputs, parameters and buffers are `Float32Array`s for
 * `'float32'` (the default), `Float64Array`s for `'float64'`. A lazy module (numFeatures 0) gets its
 * arrays from the first forward that passes validation, or from a loaded state dict.
 */
export abstract class BatchNormBase<D extends DType = DType> {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly dtype: D;
  /** Whether backward checks that the input did not change since forward (see the option). */
  readonly checkInputUnchanged: boolean;

  /** Scale (gamma), present when `affine` (its `data` is empty until a lazy module is initialized). */
  readonly weight: Parameter<ArrayOf<D>> | null;
  /** Shift (beta), present when `affine`. */
  readonly bias: Parameter<ArrayOf<D>> | null;
  /** Training mode (batch statistics) or evaluation mode (running statistics). New modules train. */
  training = true;

  private features = 0;
  private meanBuffer: ArrayOf<D> | null = null;
  private varBuffer: ArrayOf<D> | null = null;
  /** num_batches_tracked, as the live int64 buffer {@link namedBuffers} hands out (little-endian words). */
  private readonly counter = new BigInt64Array(1);
  private readonly counterWords = new Uint32Array(this.counter.buffer);
  private saved: SavedForward | null = null;
  /**
   * Two sets of copies of the per-channel arrays for the kernels, used in turn: the set the saved
   * forward refers to is never written by the next forward's plan, so a forward that fails leaves the
   * saved one intact. Reused across calls (a fresh small typed array per call, plus materializing its
   * buffer for the overlap checks, cost several microseconds per small call).
   */
  private kernelCopies: [KernelCopies, KernelCopies] | null = null;
  private nextCopies = 0;
  /** Whether the last forward's gradient was taken (for the message of a second backward). */
  private backwardTaken = false;
  private readonly calls = new CallQueue();

  /** The module's name in messages, e.g. `BatchNorm2d`. */
  protected abstract readonly className: string;

  /** Throws a RangeError like PyTorch's "expected 4D input (got 3D input)" for a rank this class rejects. */
  protected abstract checkInputRank(rank: number): void;

  /**
   * @param numFeatures C, or {@link LAZY_FEATURES} for a lazy module (inferred from the first input).
   * @param defaults the class's defaults for `affine` and `trackRunningStats`.
   */
  constructor(numFeatures: number | typeof LAZY_FEATURES, options: BatchNormModuleOptions<D> | undefined, defaults: ModuleDefaults) {
    const checked = checkModuleOptions(numFeatures, options, defaults);
    this.eps = checked.eps;
    this.momentum = checked.momentum;
    this.affine = checked.affine;
    this.trackRunningStats = checked.trackRunningStats;
    this.dtype = checked.dtype;
    this.checkInputUnchanged = checked.checkInputUnchanged;
    this.weight = this.affine ? { data: newArray(this.dtype, 0), grad: null, requiresGrad: true } : null;
    this.bias = this.affine ? { data: newArray(this.dtype, 0), grad: null, requiresGrad: true } : null;
    if (numFeatures !== LAZY_FEATURES) this.initialize(numFeatures);
  }

  /**
   * num_batches_tracked as a number, read from the int64 buffer through its two 32-bit words (a
   * BigInt per read or write would cost more than the rest of a small call's bookkeeping). A value the
   * caller wrote that is not a safe integer reads as NaN.
   */
  private get batchesTracked(): number {
    const words = this.counterWords;
    const high = words[1]! | 0;
    return high >= -0x200000 && high < 0x200000 ? high * 0x100000000 + words[0]! : NaN;
  }
  private set batchesTracked(value: number) {
    this.counterWords[0] = value % 0x100000000;
    this.counterWords[1] = Math.floor(value / 0x100000000);
  }

  /** C, the number of channels of accepted inputs (0 while a lazy module is not initialized). */
  get numFeatures(): number {
    return this.features;
  }

  /** Present when `trackRunningStats` (and initialized); updated in place by training forwards. */
  get runningMean(): ArrayOf<D> | null {
    return this.meanBuffer;
  }

  /** Present when `trackRunningStats` (and initialized); holds the unbiased variance estimate. */
  get runningVar(): ArrayOf<D> | null {
    return this.varBuffer;
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

  /** Whether the module has its arrays (always, but for a lazy module before its first forward or load). */
  get initialized(): boolean {
    return this.features > 0;
  }

  /**
   * Gives the module its arrays for `numFeatures` channels (PyTorch's `initialize_parameters`): the
   * parameter objects keep their identity (an optimizer built before holds them), their data is replaced.
   */
  protected initialize(numFeatures: number): void {
    this.features = numFeatures;
    if (this.weight !== null && this.bias !== null) {
      this.weight.data = newArray(this.dtype, numFeatures);
      this.bias.data = newArray(this.dtype, numFeatures);
    }
    this.meanBuffer = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.varBuffer = this.trackRunningStats ? newArray(this.dtype, numFeatures) : null;
    this.kernelCopies = null;
    // PyTorch's reset_parameters, without the idle check: a queued forwardAsync initializes too.
    this.meanBuffer?.fill(0);
    this.varBuffer?.fill(1);
    this.batchesTracked = 0;
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  /** Back to the uninitialized state of a lazy module (a load that failed while initializing it). */
  private uninitialize(): void {
    this.features = 0;
    if (this.weight !== null && this.bias !== null) {
      this.weight.data = newArray(this.dtype, 0);
      this.bias.data = newArray(this.dtype, 0);
    }
    this.meanBuffer = this.varBuffer = null;
  }

  private requireInitialized(method: string): void {
    if (!this.initialized) {
      throw new BatchNormStateError(
        `${this.className}.${method}() needs the module's arrays, which a lazy module gets from its first forward() or loadStateDict()`,
      );
    }
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
    this.meanBuffer?.fill(0);
    this.varBuffer?.fill(1);
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

  /**
   * The parameters with PyTorch's names, `[['weight', weight], ['bias', bias]]` (empty when not affine),
   * as `named_parameters()`: the same objects as {@link parameters}. With `prefix`, every name starts with it.
   */
  namedParameters(options?: NamedOptions): [string, Parameter<ArrayOf<D>>][] {
    const { prefix } = checkNamedOptions(options);
    return this.weight !== null && this.bias !== null
      ? [
          [`${prefix}weight`, this.weight],
          [`${prefix}bias`, this.bias],
        ]
      : [];
  }

  /**
   * The buffers, `[runningMean, runningVar, num_batches_tracked]`, as `buffers()`: the live arrays the
   * module updates (not copies), num_batches_tracked as a `BigInt64Array` of length 1. Empty when
   * `trackRunningStats` is false or a lazy module is not initialized.
   */
  buffers(): (ArrayOf<D> | BigInt64Array)[] {
    return this.namedBuffers().map(([, buffer]) => buffer);
  }

  /** {@link buffers} with PyTorch's names (`running_mean`, `running_var`, `num_batches_tracked`), as `named_buffers()`. */
  namedBuffers(options?: NamedOptions): [string, ArrayOf<D> | BigInt64Array][] {
    const { prefix } = checkNamedOptions(options);
    if (this.meanBuffer === null || this.varBuffer === null) return [];
    return [
      [`${prefix}running_mean`, this.meanBuffer],
      [`${prefix}running_var`, this.varBuffer],
      [`${prefix}num_batches_tracked`, this.counter],
    ];
  }

  /** PyTorch's `repr(module)`, e.g. `BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)`. */
  toString(): string {
    // A lazy module becomes its eager class once initialized, as PyTorch's does.
    const name = this.initialized ? this.className.replace(/^Lazy/, '') : this.className;
    return moduleRepr(name, this);
  }

  /** What `console.log(module)` and `util.inspect` print: {@link toString}. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /**
   * Resolves when every async call queued on this module so far has settled (whether it succeeded or
   * not); then the synchronous methods may be called again.
   */
  async whenIdle(): Promise<void> {
    await this.calls.whenIdle();
  }

  /** Sets every parameter's gradient back to null. */
  zeroGrad(): void {
    this.checkIdle('zeroGrad');
    for (const parameter of this.parameters()) parameter.grad = null;
  }

  /**
   * Normalizes `input`. In training mode this uses the batch statistics and updates the running stats;
   * in eval mode it uses the running stats (or batch statistics when they are not tracked). Remembers
   * what {@link backward} needs; `input.data` must not change until then. With `out`, the output is
   * written there (no allocation).
   */
  forward(input: Tensor<ArrayOf<D>>, options?: ModuleForwardOptions<D>): Tensor<ArrayOf<D>> {
    this.checkIdle('forward');
    const plan = this.planForward(input, this.training, options);
    const result = checkedCalls.forward(plan.kernel.x, plan.options, plan.savedStats);
    return this.commitForward(plan, result);
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
      const result = await checkedCalls.forwardAsync(plan.kernel.x, plan.options, plan.savedStats);
      return this.commitForward(plan, result);
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
    const grads = checkedCalls.backward(plan.gradOutput, plan.saved.kernel.x, plan.options);
    return this.commitBackward(plan.saved, grads, plan.destination);
  }

  /** {@link backward} on the libuv thread pool, queued after this module's pending async calls. */
  backwardAsync(gradOutput: Tensor<ArrayOf<D>>, options?: ModuleBackwardOptions<D>): Promise<Tensor<ArrayOf<D>>> {
    return this.enqueue(async () => {
      const plan = this.planBackward(gradOutput, options);
      const grads = await checkedCalls.backwardAsync(plan.gradOutput, plan.saved.kernel.x, plan.options);
      return this.commitBackward(plan.saved, grads, plan.destination);
    });
  }

  /** Async calls on this module that have not settled yet. */
  get pendingAsyncCalls(): number {
    return this.calls.pending;
  }

  /** Queues an async call behind this module's pending ones (they run one after another, in call order). */
  protected enqueue<R>(task: () => Promise<R>): Promise<R> {
    return this.calls.enqueue(task);
  }

  /** Synchronous calls that read or change state must not interleave with queued async calls. */
  protected checkIdle(method: string): void {
    this.calls.checkIdle(this.className, method);
  }

  /**
   * Reads an input or gradient: the class's rank rule first (PyTorch's message), then the tensor, with
   * a batch dimension of 1 added to an unbatched one (InstanceNorm's (C, *spatial)).
   */
  protected readTensor(value: unknown, name: string): CheckedTensor {
    const shape = typeof value === 'object' && value !== null ? ownValue(value, 'shape') : undefined;
    if (!Array.isArray(shape)) return checkTensor(value, name);
    this.checkInputRank(shape.length);
    if (!this.isUnbatchedRank(shape.length)) return checkTensor(value, name);
    return { ...checkTensor(withBatchDimension(value as object, shape), name), unbatched: true };
  }

  /** Whether inputs of this rank have no batch dimension (InstanceNorm's (C, *spatial)). */
  protected isUnbatchedRank(_rank: number): boolean {
    return false;
  }

  /** Checks an input: rank, dtype and channel count. */
  protected checkInput(value: unknown): CheckedTensor {
    const tensor = this.readTensor(value, 'input');
    if (dtypeName(tensor.data) !== this.dtype) {
      const arrayName = (dtype: DType) => (dtype === 'float32' ? 'Float32Array' : 'Float64Array');
      throw new TypeError(
        `Expected a ${arrayName(this.dtype)} for input.data (the module's dtype is ${this.dtype}) but received ` +
          arrayName(dtypeName(tensor.data)),
      );
    }
    if (this.initialized) this.checkChannels(tensor);
    else if (tensor.channels < 1) throw new RangeError(`A lazy ${this.className} needs an input with at least one channel`);
    return tensor;
  }

  /** The channel rule: the input's C must be numFeatures. */
  protected checkChannels(tensor: CheckedTensor): void {
    if (tensor.channels !== this.features) {
      throw new RangeError(
        `Expected input with ${this.features} channels (numFeatures) but got ${tensor.channels} ` +
          `(input.shape ${formatShape(tensor.shape)})`,
      );
    }
  }

  /** PyTorch's check that batch statistics see more than one value per channel. */
  protected checkTrainingInput(x: CheckedTensor): void {
    if (x.batch * x.spatial === 1) {
      throw new RangeError(
        `Expected more than 1 value per channel when training, got input size ${formatShape(x.shape)} ` +
          '(for inference on a single sample, call eval() first)',
      );
    }
  }

  /** How the input meets the kernels; batch norm: as it is. */
  protected kernelInput(x: CheckedTensor): KernelInput {
    return { x, repeat: 1 };
  }

  /** Called when a forward of this class's own path has committed (SyncBatchNorm forgets its step then). */
  protected forwardCommitted(): void {}

  /**
   * For a subclass that runs a training step of its own (SyncBatchNorm): the step has committed, so
   * the counter takes its new value and the last forward's saved state is gone (a backward of this
   * class's path would otherwise pair with an older forward).
   */
  protected commitOwnStep(batchesTracked: number): void {
    this.batchesTracked = batchesTracked;
    this.saved = null;
    this.backwardTaken = false;
  }

  /** Whether a training forward counts in numBatchesTracked (InstanceNorm's never does). */
  protected get countsBatches(): boolean {
    return true;
  }

  /** The output of a forward as the caller gets it. */
  protected outputTensor(result: Tensor, _original: CheckedTensor, _kernel: KernelInput): Tensor {
    return result;
  }

  /**
   * The input gradient of a backward as the caller gets it; `destination` is the caller's
   * `out.gradInput` when the kernels could not write it there directly.
   */
  protected gradInputTensor(result: Tensor, _original: CheckedTensor, _destination: FloatArray | undefined): Tensor {
    return result;
  }

  /** Whether the kernels' gradient is already in the caller's layout (so it may go straight into `out`). */
  protected gradInputInKernelLayout(_original: CheckedTensor): boolean {
    return true;
  }

  /** The kernels' copies for `length` per-channel values, two sets used in turn. */
  private copiesFor(length: number): KernelCopies {
    if (this.kernelCopies === null || this.kernelCopies[0].weight.length !== length) {
      this.kernelCopies = [newKernelCopies(this.dtype, length), newKernelCopies(this.dtype, length)];
    }
    return this.kernelCopies[this.nextCopies]!;
  }

  /**
   * Everything forward decides before touching state; throws (changing nothing) on bad input. The
   * kernels get copies of the module's arrays (each channel's values repeated as the kernel input
   * needs): the running stats are updated in the copies and committed only when the call succeeds,
   * and no array the module owns is ever marked or held by an async call.
   */
  private planForward(input: unknown, training: boolean, options: unknown) {
    const { out } = checkOptions(options, 'options', FORWARD_CALL_KEYS);
    const original = this.checkInput(input);
    const usedBatchStats = training || !this.trackRunningStats;
    const updatesRunningStats = usedBatchStats && this.trackRunningStats;
    if (usedBatchStats) this.checkTrainingInput(original);
    const kernel = this.kernelInput(original);
    if (!this.initialized) this.initialize(original.channels);
    const tracked = this.batchesTracked;
    if (!Number.isSafeInteger(tracked) || tracked < 0) {
      throw new BatchNormStateError(`${this.className}'s num_batches_tracked buffer holds ${tracked}, not a non-negative safe integer`);
    }
    // PyTorch counts the batch first, so momentum null averages over batches including this one.
    const counted = updatesRunningStats && this.countsBatches ? tracked + 1 : tracked;
    const factor = this.momentum ?? (updatesRunningStats ? 1 / counted : 0);
    const readsRunningStats = usedBatchStats ? updatesRunningStats : true;
    const copies = this.copiesFor(this.features * kernel.repeat);
    const repeated = (source: FloatArray | null | undefined, target: FloatArray) => {
      if (source == null) return null;
      for (let r = 0; r < kernel.repeat; r++) target.set(source, r * source.length);
      return target;
    };
    const runningMean = readsRunningStats ? repeated(this.meanBuffer, copies.runningMean) : null;
    const runningVar = readsRunningStats ? repeated(this.varBuffer, copies.runningVar) : null;
    const weight = repeated(this.weight?.data, copies.weight);
    return {
      original,
      kernel,
      usedBatchStats,
      counted,
      updatesRunningStats,
      options: {
        weight,
        bias: repeated(this.bias?.data, copies.bias),
        runningMean,
        runningVar,
        training: usedBatchStats,
        momentum: factor,
        eps: this.eps,
        out: out as FloatArray | undefined,
      },
      // The weight and running stats this forward used, for its backward (an optimizer step in between
      // must not change the gradient).
      runningMeanAtForward: usedBatchStats ? null : runningMean,
      runningVarAtForward: usedBatchStats ? null : runningVar,
      // Where a training forward writes its saved statistics (kept for backward; the next forward uses
      // the other set of copies). An InstanceNorm without parameters or running statistics takes any C,
      // so its kernel may have other channels than the copies: the call then allocates them.
      savedStats:
        copies.saveMean.length === kernel.x.channels ? ([copies.saveMean, copies.saveInvstd] as [FloatArray, FloatArray]) : null,
      // Taken before the kernel runs, as the input the forward reads.
      fingerprint: this.checkInputUnchanged ? native().fingerprint(kernel.x.data) : null,
    };
  }

  /** Applies a successful forward: running stats, counter and what backward needs, all at once. */
  private commitForward(plan: ReturnType<BatchNormBase['planForward']>, result: BatchNormResult): Tensor<ArrayOf<D>> {
    if (plan.updatesRunningStats) {
      averageRepeats(this.meanBuffer!, plan.options.runningMean!, plan.kernel.repeat);
      averageRepeats(this.varBuffer!, plan.options.runningVar!, plan.kernel.repeat);
    }
    if (plan.counted !== this.batchesTracked) this.batchesTracked = plan.counted;
    this.nextCopies = 1 - this.nextCopies;
    this.saved = {
      original: plan.original,
      kernel: plan.kernel,
      weight: plan.options.weight,
      usedBatchStats: plan.usedBatchStats,
      saveMean: result.saveMean,
      saveInvstd: result.saveInvstd,
      runningMean: plan.runningMeanAtForward,
      runningVar: plan.runningVarAtForward,
      out: plan.options.out ?? null,
      fingerprint: plan.fingerprint,
    };
    this.backwardTaken = false;
    this.forwardCommitted();
    return this.outputTensor(result.output, plan.original, plan.kernel) as Tensor<ArrayOf<D>>;
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
    let dy = this.readTensor(gradOutput, 'gradOutput');
    checkSameDtype(dy.data, 'gradOutput.data', saved.original.data);
    if (dy.shape.length !== saved.original.shape.length || dy.shape.some((size, i) => size !== saved.original.shape[i])) {
      throw new RangeError(
        `gradOutput.shape ${formatShape(dy.shape)} must equal the forward input's shape ${formatShape(saved.original.shape)}`,
      );
    }
    if (gradInput !== undefined) {
      checkSameDtype(gradInput, 'options.out.gradInput', saved.original.data);
      const length = elementCount(gradInput);
      if (length !== saved.original.elements) {
        throw new RangeError(`options.out.gradInput should contain ${saved.original.elements} elements not ${length}`);
      }
    }
    const wantWeight = this.weight !== null && checkBoolean(this.weight.requiresGrad, 'weight.requiresGrad', undefined);
    const wantBias = this.bias !== null && checkBoolean(this.bias.requiresGrad, 'bias.requiresGrad', undefined);
    // Training's gradient reads the input everywhere; evaluation's only for the weight's gradient.
    if (saved.usedBatchStats || wantWeight) this.checkSavedInput(saved);
    if (saved.kernel.x !== saved.original) dy = this.kernelInput(dy).x;
    // One backward per forward: claimed now, so a second (even queued) backward fails clearly.
    this.saved = null;
    this.backwardTaken = true;
    const direct = this.gradInputInKernelLayout(saved.original);
    return {
      gradOutput: dy,
      saved,
      destination: direct ? undefined : (gradInput as FloatArray | undefined),
      options: {
        weight: saved.weight,
        runningMean: saved.runningMean,
        runningVar: saved.runningVar,
        saveMean: saved.saveMean,
        saveInvstd: saved.saveInvstd,
        training: saved.usedBatchStats,
        eps: this.eps,
        outputMask: [true, wantWeight, wantBias] as [boolean, boolean, boolean],
        out: gradInput === undefined || !direct ? undefined : { gradInput: gradInput as FloatArray },
      },
    };
  }

  /** The input backward is about to read is the one the forward read, or a BatchNormStateError. */
  private checkSavedInput(saved: SavedForward): void {
    // An evaluation in place (training in place is refused by the call itself).
    if (saved.out !== null && overlaps(saved.out, saved.kernel.x.data)) {
      throw new BatchNormStateError(
        `${this.className}.backward() needs the forward's input, which that forward overwrote with its output ` +
          '(out was the input\'s memory); write the output elsewhere when a backward follows',
      );
    }
    if (saved.fingerprint !== null && native().fingerprint(saved.kernel.x.data) !== saved.fingerprint) {
      throw new BatchNormStateError(
        `${this.className}.backward(): input.data changed after forward() read it, so the gradient would be wrong; ` +
          'keep the input unchanged until backward (checkInputUnchanged found it)',
      );
    }
  }

  private commitBackward(saved: SavedForward, grads: BatchNormBackwardResult, destination: FloatArray | undefined): Tensor<ArrayOf<D>> {
    if (this.weight !== null && grads.gradWeight !== null) {
      accumulate(this.weight, sumRepeats(grads.gradWeight, saved.kernel.repeat) as ArrayOf<D>);
    }
    if (this.bias !== null && grads.gradBias !== null) {
      accumulate(this.bias, sumRepeats(grads.gradBias, saved.kernel.repeat) as ArrayOf<D>);
    }
    return this.gradInputTensor(grads.gradInput!, saved.original, destination) as Tensor<ArrayOf<D>>;
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
    this.requireInitialized('stateDict');
    const state: StateDict = {};
    if (this.weight !== null && this.bias !== null) {
      state[`${prefix}weight`] = this.weight.data.slice();
      state[`${prefix}bias`] = this.bias.data.slice();
    }
    if (this.meanBuffer !== null && this.varBuffer !== null) {
      state[`${prefix}running_mean`] = this.meanBuffer.slice();
      state[`${prefix}running_var`] = this.varBuffer.slice();
      state[`${prefix}num_batches_tracked`] = BigInt64Array.of(BigInt(this.batchesTracked));
    }
    return state;
  }

  /**
   * Copies a state dict into the module. Checks every entry first (keys when `strict`, which is the
   * default; lengths; dtypes), so a failed load changes nothing. As in PyTorch, a missing
   * `num_batches_tracked` counts as 0. With `prefix` (say `'1.'` for the second layer of an
   * `nn.Sequential`), only the keys that start with it are this module's (the prefix removed); the
   * others belong to other layers and are neither loaded nor reported. A lazy module not yet
   * initialized takes its numFeatures from the state dict's arrays.
   */
  loadStateDict(stateDict: StateDictInput, options?: LoadStateDictOptions): LoadStateDictResult {
    this.checkIdle('loadStateDict');
    if (this.initialized) return loadIntoModule(this, stateDict, options);
    const length = lengthInStateDict(stateDict, options);
    if (length === null) {
      throw new BatchNormStateError(`${this.className}.loadStateDict() found no array to take numFeatures from`);
    }
    this.initialize(length);
    try {
      return loadIntoModule(this, stateDict, options);
    } catch (error) {
      this.uninitialize();
      throw error;
    }
  }

  /**
   * The per-channel map `y = x * scale + shift` this module applies in eval mode, for folding into a
   * preceding linear or convolution layer: `scale = weight / sqrt(running_var + eps)`,
   * `shift = bias - running_mean * scale`.
   */
  toAffine(): { scale: ArrayOf<D>; shift: ArrayOf<D> } {
    this.checkIdle('toAffine');
    this.requireInitialized('toAffine');
    if (this.meanBuffer === null || this.varBuffer === null) {
      throw new BatchNormStateError(`${this.className}.toAffine() needs running statistics, but trackRunningStats is false`);
    }
    const scale = newArray(this.dtype, this.features);
    const shift = newArray(this.dtype, this.features);
    for (let c = 0; c < this.features; c++) {
      const s = (this.weight?.data[c] ?? 1) / Math.sqrt(this.varBuffer[c]! + this.eps);
      scale[c] = s;
      shift[c] = (this.bias?.data[c] ?? 0) - this.meanBuffer[c]! * s;
    }
    return { scale, shift };
  }
}


/** numFeatures as a state dict gives it (the length of its first per-channel array), or null. */
function lengthInStateDict(stateDict: unknown, options: unknown): number | null {
  if (typeof stateDict !== 'object' || stateDict === null) return null;
  const prefixValue = typeof options === 'object' && options !== null ? ownValue(options, 'prefix') : undefined;
  const prefix = typeof prefixValue === 'string' ? prefixValue : '';
  for (const key of ['weight', 'bias', 'running_mean', 'running_var']) {
    const value = ownValue(stateDict, prefix + key);
    if (isFloatArray(value) && elementCount(value) > 0) return elementCount(value);
  }
  return null;
}


/** A tensor object with a leading dimension of size 1 (own fields only). */
function withBatchDimension(value: object, shape: unknown[]): object {
  const stride = ownValue(value, 'stride');
  return {
    data: ownValue(value, 'data'),
    shape: [1, ...shape],
    memoryFormat: ownValue(value, 'memoryFormat'),
    stride: Array.isArray(stride) ? [0, ...stride] : stride,
    offset: ownValue(value, 'offset'),
  };
}

/** A tensor's elements in the contiguous layout (itself when it is; InstanceNorm's kernels need it). */
export function contiguousOf(x: CheckedTensor): CheckedTensor {
  return x.memoryFormat === 'contiguous' ? x : checkTensor(permuteTo(x, 'contiguous'), 'input');
}
