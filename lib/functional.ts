import { type CallerArray, protectAsyncArrays } from './async-memory';
import { permuteTo } from './layout';
import { formatShape, invalidType } from './errors';
import { elementCount, ownValue } from './intrinsics';
import { native } from './native';
import {
  type ArrayOf,
  type CheckedTensor,
  type DType,
  type DTypeOf,
  type FloatArray,
  type Tensor,
  checkChannelArray,
  checkNoOverlap,
  checkSameDtype,
  checkTensor,
  isFloat32Array,
  newLike,
  newOutputLike,
  overlaps,
} from './tensor';
import { checkBoolean, checkEps, checkFiniteNumber, checkOptions } from './validate';
import { BackwardArgument, ForwardArgument, backwardArguments, forwardArguments } from './native-arguments';

/**
 * Options of {@link batchNorm}; names and defaults follow `torch.nn.functional.batch_norm`. `D` is the
 * input's dtype: every array here has its element type.
 */
export interface BatchNormOptions<D extends DType = DType> {
  /** Per-channel scale (gamma), length C; absent means 1. */
  weight?: ArrayOf<D> | null;
  /** Per-channel shift (beta), length C; absent means 0. */
  bias?: ArrayOf<D> | null;
  /** Running mean, length C. Read in evaluation; updated in place when training. */
  runningMean?: ArrayOf<D> | null;
  /** Running (unbiased) variance, length C. Read in evaluation; updated in place when training. */
  runningVar?: ArrayOf<D> | null;
  /** Use batch statistics (true) or the running statistics (false, the default). */
  training?: boolean;
  /** Weight of the new batch statistic in the running-stat update. Default 0.1. */
  momentum?: number;
  /** Added to the variance for numerical stability. Default 1e-5. */
  eps?: number;
  /**
   * Destination for the output: same dtype and element count as the input, in the output's layout (the
   * input's memory format). In evaluation it may be the input's own elements (in place); in training it
   * must not overlap the input, which backward reads (a RangeError).
   */
  out?: ArrayOf<D>;
}

/** Result of {@link batchNorm}. */
export interface BatchNormResult<D extends DType = DType> {
  /** The normalized tensor, same shape, dtype and memory format as the input (contiguous for a copied strided input). */
  output: Tensor<ArrayOf<D>>;
  /** Batch mean per channel (training); empty in evaluation. */
  saveMean: ArrayOf<D>;
  /** Batch `1 / sqrt(var + eps)` per channel, biased variance (training); empty in evaluation. */
  saveInvstd: ArrayOf<D>;
}

/** Options of {@link batchNormBackward}; mirrors `torch.ops.aten.native_batch_norm_backward`. */
export interface BatchNormBackwardOptions<D extends DType = DType> {
  /** The weight used in the forward pass, length C; absent means 1. */
  weight?: ArrayOf<D> | null;
  /** Running mean: required when `training` is false. */
  runningMean?: ArrayOf<D> | null;
  /** Running variance: required when `training` is false. */
  runningVar?: ArrayOf<D> | null;
  /** `saveMean` returned by the training forward: required when `training` is true. */
  saveMean?: ArrayOf<D> | null;
  /** `saveInvstd` returned by the training forward: required when `training` is true. */
  saveInvstd?: ArrayOf<D> | null;
  /** Whether the forward pass used batch statistics. */
  training: boolean;
  /** The forward pass's eps (used in evaluation mode). Default 1e-5. */
  eps?: number;
  /** Which gradients to compute: `[input, weight, bias]`. Default all true. */
  outputMask?: readonly [boolean, boolean, boolean];
  /**
   * Destinations for the gradients (same dtype; input-sized in the input's layout / length C), to reuse
   * buffers across steps. Each must belong to a requested gradient and share no memory with any other
   * argument.
   */
  out?: { gradInput?: ArrayOf<D>; gradWeight?: ArrayOf<D>; gradBias?: ArrayOf<D> };
}

/** Result of {@link batchNormBackward}; an entry is null when its `outputMask` flag is false. */
export interface BatchNormBackwardResult<D extends DType = DType> {
  /** In the input's memory format, whatever the gradient's (PyTorch's rule). */
  gradInput: Tensor<ArrayOf<D>> | null;
  gradWeight: ArrayOf<D> | null;
  gradBias: ArrayOf<D> | null;
}

const FORWARD_KEYS = ['weight', 'bias', 'runningMean', 'runningVar', 'training', 'momentum', 'eps', 'out'] as const;
const BACKWARD_KEYS = [
  'weight',
  'runningMean',
  'runningVar',
  'saveMean',
  'saveInvstd',
  'training',
  'eps',
  'outputMask',
  'out',
] as const;

const BACKWARD_OUT_KEYS = ['gradInput', 'gradWeight', 'gradBias'] as const;

export const DEFAULT_EPS = 1e-5;
export const DEFAULT_MOMENTUM = 0.1;

// Evaluation returns empty saved statistics; one frozen empty array per dtype serves every call.
const EMPTY_FLOAT32 = Object.freeze(new Float32Array(0)) as Float32Array;
const EMPTY_FLOAT64 = Object.freeze(new Float64Array(0)) as Float64Array;

/**
 * saveMean and saveInvstd as two views of one ArrayBuffer: for small tensors a call's cost is mostly
 * allocations, and this saves one.
 */
function newSavedStats(like: FloatArray, channels: number): [FloatArray, FloatArray] {
  if (isFloat32Array(like)) {
    const buffer = new ArrayBuffer(8 * channels);
    return [new Float32Array(buffer, 0, channels), new Float32Array(buffer, 4 * channels, channels)];
  }
  const buffer = new ArrayBuffer(16 * channels);
  return [new Float64Array(buffer, 0, channels), new Float64Array(buffer, 8 * channels, channels)];
}

function missingRunningStat(name: string): TypeError {
  return new TypeError(`${name} must be defined in evaluation mode (training: false uses the running statistics)`);
}

/** PyTorch's `_verify_batch_size`: training needs at least two values per channel. */
export function checkBatchSizeForTraining(input: CheckedTensor): void {
  if (input.batch * input.spatial === 1) {
    throw new RangeError(
      `Expected more than 1 value per channel when training, got input size ${formatShape(input.shape)} ` +
        '(for inference on a single sample, pass training: false)',
    );
  }
}

/**
 * A training forward may not write its output over its input: backward reads the forward's input
 * (PyTorch refuses it as "modified by an inplace operation"). Evaluation may run in place.
 */
function checkNotInPlaceForTraining(x: CheckedTensor, out: FloatArray | null): void {
  if (out !== null && overlaps(out, x.data)) {
    throw new RangeError(
      'options.out must not overlap input.data in training: backward needs the forward\'s input, which the output ' +
        'would overwrite (write the output elsewhere; in-place output is allowed in evaluation)',
    );
  }
}

/**
 * Batch normalization of an `(N, C, *spatial)` tensor, as `torch.nn.functional.batch_norm`.
 *
 * Training normalizes with the batch's own statistics and, when given, updates `runningMean` and
 * `runningVar` in place; evaluation normalizes with the running statistics. A call that throws
 * modifies nothing.
 *
 * @example
 * const x = { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] };
 * const runningMean = new Float32Array(2), runningVar = new Float32Array([1, 1]);
 * const { output } = batchNorm(x, { training: true, runningMean, runningVar });
 */
export function batchNorm<A extends FloatArray>(input: Tensor<A>, options?: BatchNormOptions<DTypeOf<A>>): BatchNormResult<DTypeOf<A>> {
  const call = prepareForward(input, options);
  native().forward(...call.args);
  return call.result as BatchNormResult<DTypeOf<A>>;
}

/**
 * {@link batchNorm} on the libuv thread pool, so a large tensor does not block the event loop. Arguments
 * are checked before the promise is created (a bad call rejects and changes nothing). The arrays must
 * not be modified, transferred or reused by another call until the promise settles.
 */
export async function batchNormAsync<A extends FloatArray>(
  input: Tensor<A>,
  options?: BatchNormOptions<DTypeOf<A>>,
): Promise<BatchNormResult<DTypeOf<A>>> {
  const call = prepareForward(input, options);
  const staged = protectAsyncArrays(call.callerArrays());
  await native().forwardAsync(...call.args, staged);
  return call.result as BatchNormResult<DTypeOf<A>>;
}

type ForwardArgs = Parameters<ReturnType<typeof native>['forward']>;
type BackwardArgs = Parameters<ReturnType<typeof native>['backward']>;

interface PreparedCall<Args, Result> {
  args: Args;
  result: Result;
  /**
   * The arrays among args that the caller passed in (and so can reach while an async call runs); built
   * only for an async call, as a sync call returns before the caller can reach them.
   */
  callerArrays: () => CallerArray[];
}

function prepareForward(input: unknown, options: unknown): PreparedCall<ForwardArgs, BatchNormResult> {
  const x = checkTensor(input, 'input');
  return prepareForwardCall(x, checkForwardCall(x, options));
}

/**
 * The private arrays of a module's call (lib/norm-base.ts): its options object has every key as its own
 * property, its per-channel arrays are disjoint views of one buffer no caller can reach (so only the
 * caller's tensors are checked for overlap), and a training forward writes its saved statistics into
 * `savedStats`, two more such views.
 */
interface ModuleArrays {
  savedStats: [FloatArray, FloatArray] | null;
}
const MODULE_BACKWARD: ModuleArrays = Object.freeze({ savedStats: null });

/**
 * A forward call's options, valid: checked once by checkForwardCall for a functional call, or valid by
 * construction on a module's call (its own eps and momentum, checked when it was made, and its private
 * per-channel arrays of the input's dtype and channel count, lib/norm-base.ts). `out` is the caller's in
 * both, checked by prepareForwardCall. The native call checks everything again, as a safety net.
 */
export interface ForwardCall {
  training: boolean;
  momentum: number;
  eps: number;
  weight: FloatArray | null;
  bias: FloatArray | null;
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  out: unknown;
}

/** A functional forward's options, checked. */
function checkForwardCall(x: CheckedTensor, options: unknown): ForwardCall {
  const opts = checkOptions(options, 'options', FORWARD_KEYS);
  const training = checkBoolean(opts.training, 'options.training', false);
  const momentum = checkFiniteNumber(opts.momentum, 'options.momentum', DEFAULT_MOMENTUM);
  const eps = checkEps(opts.eps, 'options.eps', DEFAULT_EPS);
  const weight = checkChannelArray(opts.weight, 'weight', x);
  const bias = checkChannelArray(opts.bias, 'bias', x);
  const runningMean = checkChannelArray(opts.runningMean, 'runningMean', x);
  const runningVar = checkChannelArray(opts.runningVar, 'runningVar', x);
  if (!training) {
    if (runningMean === null) throw missingRunningStat('runningMean');
    if (runningVar === null) throw missingRunningStat('runningVar');
  }
  return { training, momentum, eps, weight, bias, runningMean, runningVar, out: opts.out };
}

/** A forward call for an input already checked (the modules check theirs with their own rules). */
function prepareForwardCall(x: CheckedTensor, call: ForwardCall, module?: ModuleArrays): PreparedCall<ForwardArgs, BatchNormResult> {
  const { training, momentum, eps, weight, bias, runningMean, runningVar } = call;
  let out: FloatArray | null = null;
  if (call.out !== undefined) {
    checkSameDtype(call.out, 'options.out', x.data);
    const length = elementCount(call.out);
    if (length !== x.elements) throw new RangeError(`options.out should contain ${x.elements} elements not ${length}`);
    out = call.out;
  }
  if (training) checkNotInPlaceForTraining(x, out);
  const input = { name: 'input.data', array: x.data, written: false };
  const output = { name: 'options.out', array: out, written: true };
  checkNoOverlap(
    module !== undefined
      ? [input, output]
      : [
          input,
          output,
          { name: 'weight', array: weight, written: false },
          { name: 'bias', array: bias, written: false },
          { name: 'runningMean', array: runningMean, written: training },
          { name: 'runningVar', array: runningVar, written: training },
        ],
    ['input.data', 'options.out'],
  );
  if (training) checkBatchSizeForTraining(x);

  const destination = out ?? newOutputLike(x.data, x.elements);
  const empty = isFloat32Array(x.data) ? EMPTY_FLOAT32 : EMPTY_FLOAT64;
  const [saveMean, saveInvstd] = !training ? [empty, empty] : (module?.savedStats ?? newSavedStats(x.data, x.channels));
  const args = forwardArguments({
    input: x.data,
    output: destination,
    batch: x.kernelBatch,
    channels: x.channels,
    spatial: x.kernelSpatial,
    weight,
    bias,
    runningMean,
    runningVar,
    saveMean: training ? saveMean : null,
    saveInvstd: training ? saveInvstd : null,
    training,
    momentum,
    eps,
    // A module's running statistics are its private copies, committed by the module (one copy per call).
    privateRunningStats: module !== undefined,
  });
  return {
    args,
    result: { output: { data: destination, shape: x.shape, memoryFormat: x.memoryFormat }, saveMean, saveInvstd },
    callerArrays: () => [
      { name: 'input.data', array: x.data, argument: ForwardArgument.input },
      { name: 'options.out', array: out, argument: ForwardArgument.output },
      { name: 'weight', array: weight, argument: ForwardArgument.weight },
      { name: 'bias', array: bias, argument: ForwardArgument.bias },
      { name: 'runningMean', array: runningMean, argument: ForwardArgument.runningMean },
      { name: 'runningVar', array: runningVar, argument: ForwardArgument.runningVar },
    ],
  };
}

function checkOutputMask(value: unknown): readonly [boolean, boolean, boolean] {
  if (value === undefined) return [true, true, true];
  // Own elements only: a hole must not be filled from a polluted prototype.
  const flags = Array.isArray(value) && value.length === 3 ? [0, 1, 2].map((i) => ownValue(value, i)) : [];
  if (flags.length !== 3 || !flags.every((flag) => typeof flag === 'boolean')) {
    throw invalidType('options.outputMask', 'an array of three booleans [input, weight, bias]', value);
  }
  return flags as [boolean, boolean, boolean];
}

/**
 * Gradients of {@link batchNorm} with respect to its input, weight and bias, as PyTorch's
 * `native_batch_norm_backward` on the CPU.
 *
 * Pass the same `training` flag as the forward pass: training uses `saveMean`/`saveInvstd` from the
 * forward result, evaluation uses the running statistics and `eps`.
 */
export function batchNormBackward<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  options: BatchNormBackwardOptions<DTypeOf<A>>,
): BatchNormBackwardResult<DTypeOf<A>> {
  const call = prepareBackward(gradOutput, input, options);
  native().backward(...call.args);
  return call.result as BatchNormBackwardResult<DTypeOf<A>>;
}

/** {@link batchNormBackward} on the libuv thread pool (see {@link batchNormAsync}). */
export async function batchNormBackwardAsync<A extends FloatArray>(
  gradOutput: Tensor<A>,
  input: Tensor<A>,
  options: BatchNormBackwardOptions<DTypeOf<A>>,
): Promise<BatchNormBackwardResult<DTypeOf<A>>> {
  const call = prepareBackward(gradOutput, input, options);
  const staged = protectAsyncArrays(call.callerArrays());
  await native().backwardAsync(...call.args, staged);
  return call.result as BatchNormBackwardResult<DTypeOf<A>>;
}

function prepareBackward(gradOutput: unknown, input: unknown, options: unknown): PreparedCall<BackwardArgs, BatchNormBackwardResult> {
  const dy = checkTensor(gradOutput, 'gradOutput');
  const x = checkTensor(input, 'input');
  // The tensors' errors come before the options'.
  return prepareBackwardCall(gradientLike(dy, x), x, checkBackwardCall(x, options));
}

/** The statistics a backward reads: the saved batch statistics in training, else the running ones. */
function checkBackwardStatistics(
  opts: Partial<Record<(typeof BACKWARD_KEYS)[number], unknown>>,
  x: CheckedTensor,
  training: boolean,
): { runningMean: FloatArray | null; runningVar: FloatArray | null; saveMean: FloatArray | null; saveInvstd: FloatArray | null } {
  if (training) {
    const saveMean = checkChannelArray(opts.saveMean, 'saveMean', x);
    const saveInvstd = checkChannelArray(opts.saveInvstd, 'saveInvstd', x);
    if (saveMean === null || saveInvstd === null) {
      const name = saveMean === null ? 'saveMean' : 'saveInvstd';
      throw new TypeError(`${name} must be defined when training is true (pass the ${name} returned by batchNorm)`);
    }
    return { runningMean: null, runningVar: null, saveMean, saveInvstd };
  }
  const runningMean = checkChannelArray(opts.runningMean, 'runningMean', x);
  const runningVar = checkChannelArray(opts.runningVar, 'runningVar', x);
  if (runningMean === null) throw missingRunningStat('runningMean');
  if (runningVar === null) throw missingRunningStat('runningVar');
  return { runningMean, runningVar, saveMean: null, saveInvstd: null };
}

/** Where a backward output goes: the caller's `out` array (checked), a new array if wanted, else null. */
function backwardDestination(
  value: unknown,
  key: 'gradInput' | 'gradWeight' | 'gradBias',
  wanted: boolean,
  x: CheckedTensor,
  length: number,
): FloatArray | null {
  // gradInput is written whole by the kernel; the per-channel gradients are small.
  if (value === undefined) return wanted ? (key === 'gradInput' ? newOutputLike : newLike)(x.data, length) : null;
  checkSameDtype(value, `options.out.${key}`, x.data);
  const received = elementCount(value as FloatArray);
  if (received !== length) throw new RangeError(`options.out.${key} should contain ${length} elements not ${received}`);
  if (!wanted) throw new RangeError(`options.out.${key} is given but outputMask does not ask for ${key}`);
  return value as FloatArray;
}

/**
 * A backward call's options, valid: checked once by checkBackwardCall for a functional call, or valid by
 * construction on a module's call (see ForwardCall). `out` is the caller's in both, checked by
 * prepareBackwardCall.
 */
export interface BackwardCall {
  training: boolean;
  eps: number;
  outputMask: readonly [boolean, boolean, boolean];
  weight: FloatArray | null;
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  saveMean: FloatArray | null;
  saveInvstd: FloatArray | null;
  out: unknown;
}

/** A functional backward's options, checked. */
function checkBackwardCall(x: CheckedTensor, options: unknown): BackwardCall {
  const opts = checkOptions(options, 'options', BACKWARD_KEYS, true);
  const training = checkBoolean(opts.training, 'options.training', undefined);
  const eps = checkEps(opts.eps, 'options.eps', DEFAULT_EPS);
  const outputMask = checkOutputMask(opts.outputMask);
  const weight = checkChannelArray(opts.weight, 'weight', x);
  const { runningMean, runningVar, saveMean, saveInvstd } = checkBackwardStatistics(opts, x, training);
  return { training, eps, outputMask, weight, runningMean, runningVar, saveMean, saveInvstd, out: opts.out };
}

/**
 * The gradient of `x`, checked against it: same dtype and shape, in x's layout. PyTorch accepts a
 * gradient in either layout and returns grad_input in the input's: a gradient in the other one is
 * permuted into the input's layout (a copy of gradOutput).
 */
function gradientLike(dy: CheckedTensor, x: CheckedTensor): CheckedTensor {
  checkSameDtype(dy.data, 'gradOutput.data', x.data);
  if (dy.shape.length !== x.shape.length || dy.shape.some((size, i) => size !== x.shape[i])) {
    throw new RangeError(
      `gradOutput.shape ${formatShape(dy.shape)} must equal input.shape ${formatShape(x.shape)}`,
    );
  }
  return dy.memoryFormat === x.memoryFormat ? dy : checkTensor(permuteTo(dy, x.memoryFormat), 'gradOutput');
}

/** A backward call for tensors already checked (gradientLike) and options already valid (a BackwardCall). */
function prepareBackwardCall(
  dy: CheckedTensor,
  x: CheckedTensor,
  call: BackwardCall,
  module?: ModuleArrays,
): PreparedCall<BackwardArgs, BatchNormBackwardResult> {
  const { training, eps, weight, runningMean, runningVar, saveMean, saveInvstd } = call;
  const [wantInput, wantWeight, wantBias] = call.outputMask;
  const outs = checkOptions(call.out, 'options.out', BACKWARD_OUT_KEYS);
  const gradInput = backwardDestination(outs.gradInput, 'gradInput', wantInput, x, x.elements);
  const gradWeight = backwardDestination(outs.gradWeight, 'gradWeight', wantWeight, x, x.channels);
  const gradBias = backwardDestination(outs.gradBias, 'gradBias', wantBias, x, x.channels);
  // Only the caller's own outputs: a fresh array overlaps nothing.
  const gradOutputArray = { name: 'gradOutput.data', array: dy.data, written: false };
  const inputArray = { name: 'input.data', array: x.data, written: false };
  const gradInputArray = { name: 'options.out.gradInput', array: outs.gradInput === undefined ? null : gradInput, written: true };
  checkNoOverlap(
    module !== undefined
      ? [gradOutputArray, inputArray, gradInputArray]
      : [
          gradOutputArray,
          inputArray,
          { name: 'weight', array: weight, written: false },
          { name: 'runningMean', array: runningMean, written: false },
          { name: 'runningVar', array: runningVar, written: false },
          { name: 'saveMean', array: saveMean, written: false },
          { name: 'saveInvstd', array: saveInvstd, written: false },
          gradInputArray,
          { name: 'options.out.gradWeight', array: outs.gradWeight === undefined ? null : gradWeight, written: true },
          { name: 'options.out.gradBias', array: outs.gradBias === undefined ? null : gradBias, written: true },
        ],
  );
  const args = backwardArguments({
    gradOutput: dy.data,
    input: x.data,
    batch: x.kernelBatch,
    channels: x.channels,
    spatial: x.kernelSpatial,
    weight,
    runningMean,
    runningVar,
    saveMean,
    saveInvstd,
    gradInput,
    gradWeight,
    gradBias,
    training,
    eps,
  });
  return {
    args,
    result: {
      gradInput: gradInput === null ? null : { data: gradInput, shape: x.shape, memoryFormat: x.memoryFormat },
      gradWeight,
      gradBias,
    },
    callerArrays: () => [
      { name: 'gradOutput.data', array: dy.data, argument: BackwardArgument.gradOutput },
      { name: 'input.data', array: x.data, argument: BackwardArgument.input },
      { name: 'weight', array: weight, argument: BackwardArgument.weight },
      { name: 'runningMean', array: runningMean, argument: BackwardArgument.runningMean },
      { name: 'runningVar', array: runningVar, argument: BackwardArgument.runningVar },
      { name: 'saveMean', array: saveMean, argument: BackwardArgument.saveMean },
      { name: 'saveInvstd', array: saveInvstd, argument: BackwardArgument.saveInvstd },
      { name: 'options.out.gradInput', array: outs.gradInput === undefined ? null : gradInput, argument: BackwardArgument.gradInput },
      { name: 'options.out.gradWeight', array: outs.gradWeight === undefined ? null : gradWeight, argument: BackwardArgument.gradWeight },
      { name: 'options.out.gradBias', array: outs.gradBias === undefined ? null : gradBias, argument: BackwardArgument.gradBias },
    ],
  };
}

/**
 * The calls of the modules (lib/norm-base.ts): the same preparation, without checking again the tensors
 * the module checked or the options it builds from its own state (a ForwardCall or BackwardCall).
 */
export const checkedCalls = {
  forward(x: CheckedTensor, options: ForwardCall, savedStats: [FloatArray, FloatArray] | null): BatchNormResult {
    const call = prepareForwardCall(x, options, { savedStats });
    native().forward(...call.args);
    return call.result;
  },
  async forwardAsync(
    x: CheckedTensor,
    options: ForwardCall,
    savedStats: [FloatArray, FloatArray] | null,
  ): Promise<BatchNormResult> {
    const call = prepareForwardCall(x, options, { savedStats });
    const staged = protectAsyncArrays(call.callerArrays());
    await native().forwardAsync(...call.args, staged);
    return call.result;
  },
  backward(dy: CheckedTensor, x: CheckedTensor, options: BackwardCall): BatchNormBackwardResult {
    const call = prepareBackwardCall(gradientLike(dy, x), x, options, MODULE_BACKWARD);
    native().backward(...call.args);
    return call.result;
  },
  async backwardAsync(dy: CheckedTensor, x: CheckedTensor, options: BackwardCall): Promise<BatchNormBackwardResult> {
    const call = prepareBackwardCall(gradientLike(dy, x), x, options, MODULE_BACKWARD);
    const staged = protectAsyncArrays(call.callerArrays());
    await native().backwardAsync(...call.args, staged);
    return call.result;
  },
};

/**
 * Name of the native kernel path in use: `'avx512'`, `'avx2'` or `'default'` (portable C++) on x86-64,
 * `'neon'` on arm64; chosen at load from the CPU, or forced lower with the environment variable
 * `BATCHNORM_CPU_CAPABILITY`.
 */
export function cpuCapability(): 'default' | 'avx2' | 'avx512' | 'neon' {
  return native().cpuCapability() as 'default' | 'avx2' | 'avx512' | 'neon';
}

/**
 * Sets how many threads this thread's kernel calls use, the calling thread included (1 to 256), capped
 * by the process's budget: `BATCHNORM_NUM_THREADS` at load, else `os.availableParallelism()`. The
 * main thread and every worker share one pool of at most budget - 1 kernel threads; a call that finds
 * it busy with another worker's call runs on its own thread. The default is the whole budget. Results
 * are bitwise identical for every thread count.
 */
export function setNumThreads(threads: number): void {
  if (typeof threads !== 'number') throw invalidType('threads', 'an integer from 1 to 256', threads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new RangeError(`Expected an integer from 1 to 256 for threads but received ${threads}`);
  }
  native().setNumThreads(threads);
}

/** The number of threads this thread's kernel calls use, after the budget's cap (see {@link setNumThreads}). */
export function getNumThreads(): number {
  return native().getNumThreads();
}
