// SyncBatchNorm: batch norm whose training statistics are those of every rank's shard together, for
// data-parallel training (torch.nn.SyncBatchNorm's semantics, on the CPU and over any transport). Each
// training step exchanges per-channel partials in double through a ProcessGroup (lib/process-group.ts):
// forward the shards' (count, mean, m2), backward their (sum dy, sum dy (x - mean)). Evaluation, and a
// group of one, are exactly BatchNorm*d's.
import { isMainThread } from 'node:worker_threads';

import { BatchNormStateError, formatShape } from './errors';
import { type CallerArray, protectAsyncArrays } from './async-memory';
import { elementCount } from './intrinsics';
import { InstanceNormBase } from './instancenorm';
import { permuteTo } from './layout';
import { native } from './native';
import {
  type BlockRoundArguments,
  gradInputByBlocksArguments,
  GradInputByBlocksArgument,
  gradInputWithArguments,
  GradInputWithArgument,
  normalizeByBlocksArguments,
  NormalizeByBlocksArgument,
  normalizeWithArguments,
  NormalizeWithArgument,
  shardGradientSumsArguments,
  ShardGradientSumsArgument,
  shardStatisticsArguments,
  ShardStatisticsArgument,
} from './native-arguments';
import { BatchNormBase, type BatchNormModuleOptions, type ModuleBackwardOptions, type ModuleForwardOptions, rankError } from './norm-base';
import { type MergedStatistics, type ProcessGroup, checkProcessGroup, gatherChecked, mergeStatistics, sumGradientParts } from './process-group';
import { type BlockRound, blockRounds } from './worker-group';
import { type ArrayOf, type CheckedTensor, type DType, type FloatArray, type Tensor, checkSameDtype, checkTensor, newLike, newOutputLike, overlaps } from './tensor';
import { checkBoolean, checkOptions } from './validate';

/** Options of {@link SyncBatchNorm}: the batch-norm options and the group to synchronize over. */
export interface SyncBatchNormOptions<D extends DType = DType> extends BatchNormModuleOptions<D> {
  /** The replicas whose shards make up the batch (required). */
  processGroup: ProcessGroup;
}

/**
 * Runs a compute phase of a synchronized step. In a worker, on the worker's own thread (the native
 * call's synchronous form): the hop to libuv's pool and back cost about 0.2 ms a phase with two ranks
 * busy, a sixth of a (16,64,56,56) step (docs/PERFORMANCE.md, "SyncBatchNorm"), and a training worker
 * has nothing to run meanwhile. On the main thread, on the pool, as every large async call. Either way
 * the caller's arrays are checked and protected as an async call's (the protection lasts across the
 * exchanges), and the exchanges between the phases stay asynchronous, so a late peer never blocks the
 * event loop.
 */
async function runPhase<Args extends unknown[]>(
  sync: (...args: Args) => void,
  async: (...args: [...Args, staged: number]) => Promise<void>,
  args: Args,
  callerArrays: readonly CallerArray[],
): Promise<void> {
  if (!isMainThread) {
    // Checked and marked as for an async call; nothing is staged, as the call returns before the caller
    // can reach the arrays.
    protectAsyncArrays(callerArrays);
    onThisThreadAlone(() => sync(...args));
    return;
  }
  await async(...args, protectAsyncArrays(callerArrays));
}

/**
 * Runs a native call of a worker's step on the worker's thread at one kernel thread: the ranks run
 * their passes at the same moment, and the process's one kernel pool serves one call at a time, so it
 * would give one rank every core while the others run alone (the step waits for the slowest rank
 * anyway), and its threads would compete with the other ranks' for the cores (two workers on two
 * cores: a step about 1.4x faster without).
 */
function onThisThreadAlone<R>(run: () => R): R {
  const binding = native();
  const threads = binding.getNumThreads();
  if (threads > 1) binding.setNumThreads(1);
  try {
    return run();
  } finally {
    if (threads > 1) binding.setNumThreads(threads);
  }
}

/**
 * A worker group's round as the native steps by blocks take it, with the block size's bytes per channel
 * (0: one block).
 */
function roundArguments(round: BlockRound, channelBytes: number): BlockRoundArguments {
  const { control, exchange, rank, size, slotLength, progressWord, timeoutMs } = round;
  return { channelBytes, control, exchange, rank, size, slotLength, progressWord, timeoutMs };
}

/**
 * Runs a native step by blocks on this thread alone and ends its round; a group that broke meanwhile
 * (a peer exited, a time-out) is this rank's error too. The caller's arrays were protected before the
 * step's first exchange, so a bad one is this rank's TypeError before any peer waits on it in native code.
 */
function runRound(round: BlockRound, run: () => number): void {
  let outcome: number;
  try {
    outcome = onThisThreadAlone(run);
  } catch (error) {
    round.abandon();
    throw error;
  }
  round.finish(outcome === 0);
  if (outcome !== 0) throw round.brokenError();
}

/** What a synchronized forward's passes give the step: the whole batch's statistics and the output. */
interface NormalizedStep {
  merged: MergedStatistics;
  invstd: Float64Array;
  result: FloatArray;
  /** The largest shard's input bytes per channel when every rank's tensor is planar, else -1. */
  blockBytes: number;
}

/** What a synchronized training step keeps for its backward. */
interface SyncStep {
  x: CheckedTensor;
  mean: Float64Array;
  invstd: Float64Array;
  /** Values per channel over all ranks. */
  total: number;
  weight: FloatArray | null;
  /** The input's fingerprint at forward, with checkInputUnchanged. */
  fingerprint: bigint | null;
  /** By blocks (a worker group): the largest shard's input bytes per channel, -1 for one block. */
  blockBytes: number;
}

const FORWARD_CALL_KEYS = ['out'] as const;
const BACKWARD_CALL_KEYS = ['out'] as const;
const BACKWARD_OUT_KEYS = ['gradInput'] as const;
const SYNC_KEYS = ['eps', 'momentum', 'affine', 'trackRunningStats', 'dtype', 'checkInputUnchanged', 'processGroup'] as const;

/** The first exchange of a module: what every rank must agree on. */
const HEADER_LENGTH = 6;

/** 1 / sqrt(var + eps), or 0 when both are 0 (PyTorch's InvStd, as the kernels compute it). */
function invStd(variance: number, eps: number): number {
  return variance === 0 && eps === 0 ? 0 : 1 / Math.sqrt(variance + eps);
}

/**
 * Batch normalization over the shards of all ranks of a process group, as `torch.nn.SyncBatchNorm`:
 * in training, the statistics are those of the whole batch (every rank's shard, count-weighted; ranks
 * may hold different N, an empty shard included), the running statistics get one identical update on
 * every rank, and backward gives each rank its slice of the whole batch's input gradient and its share
 * of the weight and bias gradients (which sum over the ranks to the whole batch's; average them as
 * with any other layer's). Takes (N, C, *spatial) inputs of rank 2 to 5; its state dict has
 * `BatchNorm2d`'s keys. Training with a group of more than one rank exchanges with the other ranks, so
 * it runs through {@link forwardAsync} and {@link backwardAsync}; evaluation and a group of one behave
 * exactly as `BatchNorm*d`, sync or async.
 */
export class SyncBatchNorm<D extends DType = 'float32'> extends BatchNormBase<D> {
  protected readonly className: string = 'SyncBatchNorm';
  /** The group this module synchronizes over. */
  readonly processGroup: ProcessGroup;
  private step: SyncStep | null = null;
  private stepTaken = false;
  private agreed = false;

  constructor(numFeatures: number, options: SyncBatchNormOptions<D>) {
    const opts = checkOptions(options, 'options', SYNC_KEYS, true);
    const { processGroup, ...moduleOptions } = opts;
    super(numFeatures, moduleOptions as BatchNormModuleOptions<D>, { affine: true, trackRunningStats: true });
    this.processGroup = checkProcessGroup(processGroup, 'options.processGroup');
  }

  /**
   * A SyncBatchNorm with `module`'s options, parameters (values and `requiresGrad`) and buffers, as
   * PyTorch's `convert_sync_batchnorm` does for one layer. The parameters are copies: build the
   * optimizer from the new module's `parameters()`.
   */
  static fromModule<D extends DType>(module: BatchNormBase<D>, processGroup: ProcessGroup): SyncBatchNorm<D> {
    if (!(module instanceof BatchNormBase) || module instanceof InstanceNormBase) {
      throw new TypeError(`Expected a BatchNorm1d/2d/3d for module but received ${module?.constructor?.name ?? String(module)}`);
    }
    const sync = new SyncBatchNorm<D>(module.numFeatures, {
      eps: module.eps,
      momentum: module.momentum,
      affine: module.affine,
      trackRunningStats: module.trackRunningStats,
      dtype: module.dtype,
      checkInputUnchanged: module.checkInputUnchanged,
      processGroup,
    });
    sync.loadStateDict(module.stateDict());
    if (module.weight !== null && sync.weight !== null) sync.weight.requiresGrad = module.weight.requiresGrad;
    if (module.bias !== null && sync.bias !== null) sync.bias.requiresGrad = module.bias.requiresGrad;
    sync.training = module.training;
    return sync;
  }

  protected checkInputRank(rank: number): void {
    if (rank < 2 || rank > 5) throw rankError('2D to 5D', rank);
  }

  protected override forwardCommitted(): void {
    this.step = null;
  }

  /** Whether a forward now exchanges with other ranks (as PyTorch's: in training, with more than one rank). */
  private get synchronizes(): boolean {
    return this.processGroup.size > 1 && this.training;
  }

  /**
   * {@link BatchNormBase.forward}: in evaluation, or with a group of one. Training over several ranks
   * waits for the others, so it is {@link forwardAsync}'s.
   */
  override forward(input: Tensor<ArrayOf<D>>, options?: ModuleForwardOptions<D>): Tensor<ArrayOf<D>> {
    if (this.synchronizes) {
      throw new BatchNormStateError(
        'SyncBatchNorm.forward() in training waits for the other ranks of its process group: call forwardAsync()',
      );
    }
    const output = super.forward(input, options);
    this.lastForwardSynchronized = false;
    return output;
  }

  override backward(gradOutput: Tensor<ArrayOf<D>>, options?: ModuleBackwardOptions<D>): Tensor<ArrayOf<D>> {
    if (this.step !== null) {
      throw new BatchNormStateError(
        'SyncBatchNorm.backward() of a synchronized training step waits for the other ranks of its process group: call backwardAsync()',
      );
    }
    return super.backward(gradOutput, options);
  }

  override forwardAsync(input: Tensor<ArrayOf<D>>, options?: ModuleForwardOptions<D>): Promise<Tensor<ArrayOf<D>>> {
    // Decided at the call, as the mode is: a backward queued next pairs with this forward.
    this.lastForwardSynchronized = this.synchronizes;
    if (!this.lastForwardSynchronized) return super.forwardAsync(input, options);
    return this.enqueue(() => this.synchronizedForward(input, options));
  }

  override backwardAsync(gradOutput: Tensor<ArrayOf<D>>, options?: ModuleBackwardOptions<D>): Promise<Tensor<ArrayOf<D>>> {
    if (!this.lastForwardSynchronized) return super.backwardAsync(gradOutput, options);
    return this.enqueue(() => this.synchronizedBackward(gradOutput, options));
  }

  /** Whether the last forward called (sync or queued) was a synchronized training step. */
  private lastForwardSynchronized = false;

  private async synchronizedForward(input: unknown, options: unknown): Promise<Tensor<ArrayOf<D>>> {
    const { out } = checkOptions(options, 'options', FORWARD_CALL_KEYS);
    const x = this.checkInput(input);
    let output: FloatArray | null = null;
    if (out !== undefined) {
      checkSameDtype(out, 'options.out', x.data);
      const length = elementCount(out);
      if (length !== x.elements) throw new RangeError(`options.out should contain ${x.elements} elements not ${length}`);
      if (overlaps(out, x.data)) {
        throw new RangeError("options.out must not overlap input.data in training: backward needs the forward's input");
      }
      output = out;
    }
    const channels = this.numFeatures;
    const group = this.processGroup;
    const fingerprint = this.checkInputUnchanged ? native().fingerprint(x.data) : null;
    if (!this.agreed) await this.agreeWithRanks();

    const weight = this.weight === null ? null : this.weight.data.slice();
    const bias = this.bias === null ? null : this.bias.data.slice();
    const startRound = blockRounds.get(group);
    const { merged, invstd, result, blockBytes } =
      startRound === undefined
        ? await this.forwardInTwoPasses(x, output, weight, bias)
        : await this.forwardByBlocks(x, output, weight, bias, startRound);

    // Commit: the running statistics and the counter, identical on every rank.
    let counted = this.numBatchesTracked;
    if (this.trackRunningStats) {
      counted += 1;
      const factor = this.momentum ?? 1 / counted;
      const runningMean = this.runningMean!;
      const runningVar = this.runningVar!;
      for (let c = 0; c < channels; c++) {
        runningMean[c] = factor * merged.mean[c]! + (1 - factor) * runningMean[c]!;
        runningVar[c] = factor * (merged.m2[c]! / (merged.count - 1)) + (1 - factor) * runningVar[c]!;
      }
    }
    this.commitOwnStep(counted);
    this.step = { x, mean: merged.mean, invstd, total: merged.count, weight, fingerprint, blockBytes };
    this.stepTaken = false;
    return { data: result as ArrayOf<D>, shape: x.shape, memoryFormat: x.memoryFormat };
  }

  /**
   * The forward's passes with one exchange between them: this rank's statistics of every channel, the
   * ranks' merged in rank order, then the normalization (x read twice).
   */
  private async forwardInTwoPasses(
    x: CheckedTensor, output: FloatArray | null, weight: FloatArray | null, bias: FloatArray | null,
  ): Promise<NormalizedStep> {
    const channels = this.numFeatures;
    const mean = new Float64Array(channels);
    const m2 = new Float64Array(channels);
    const geometry = { batch: x.kernelBatch, channels, spatial: x.kernelSpatial };
    const binding = native();
    await runPhase(binding.shardStatistics, binding.shardStatisticsAsync, shardStatisticsArguments({ input: x.data, ...geometry, mean, m2 }), [
      { name: 'input.data', array: x.data, argument: ShardStatisticsArgument.input },
    ]);
    const local = new Float64Array(1 + 2 * channels);
    local[0] = x.batch * x.spatial;
    local.set(mean, 1);
    local.set(m2, 1 + channels);
    const merged = mergeStatistics(await gatherChecked(this.processGroup, local), channels);
    this.checkWholeBatch(merged.count, x);
    const invstd = new Float64Array(channels);
    for (let c = 0; c < channels; c++) invstd[c] = invStd(merged.m2[c]! / merged.count, this.eps);
    const result = output ?? newOutputLike(x.data, x.elements);
    const normalize = normalizeWithArguments({ input: x.data, output: result, ...geometry, mean: merged.mean, invstd, weight, bias });
    await runPhase(binding.normalizeWith, binding.normalizeWithAsync, normalize, [
      { name: 'input.data', array: x.data, argument: NormalizeWithArgument.input },
      { name: 'options.out', array: output, argument: NormalizeWithArgument.output },
    ]);
    return { merged, invstd, result, blockBytes: -1 };
  }

  /**
   * The forward by blocks of channels (the members of a worker group): an exchange of each rank's count
   * and bytes per channel (so that every rank knows the whole batch's count, and all cut the same
   * blocks), then one native call on this thread that computes a block's statistics, exchanges them
   * through the group's shared memory, merges them in rank order (the arithmetic of mergeStatistics) and
   * normalizes the block while its x is still in cache. The same bits as the two passes. A tensor whose
   * rows are shorter than `blockMinSpatial` on any rank runs as one block.
   */
  private async forwardByBlocks(
    x: CheckedTensor, output: FloatArray | null, weight: FloatArray | null, bias: FloatArray | null, startRound: (channels: number) => BlockRound,
  ): Promise<NormalizedStep> {
    const channels = this.numFeatures;
    const binding = native();
    protectAsyncArrays([
      { name: 'input.data', array: x.data, argument: NormalizeByBlocksArgument.input },
      { name: 'options.out', array: output, argument: NormalizeByBlocksArgument.output },
    ]);
    const planarBytes = x.kernelSpatial >= binding.blockMinSpatial ? x.kernelBatch * x.kernelSpatial * x.data.BYTES_PER_ELEMENT : -1;
    const parts = await gatherChecked(this.processGroup, Float64Array.of(x.batch * x.spatial, planarBytes));
    const counts = Float64Array.from(parts, (part) => part[0]!);
    let count = 0;
    for (const partCount of counts) count += partCount;
    this.checkWholeBatch(count, x);
    const blockBytes = parts.every((part) => part[1]! >= 0) ? Math.max(...parts.map((part) => part[1]!)) : -1;
    const mean = new Float64Array(channels);
    const m2 = new Float64Array(channels);
    const invstd = new Float64Array(channels);
    const result = output ?? newOutputLike(x.data, x.elements);
    const round = startRound(channels);
    const args = normalizeByBlocksArguments({
      input: x.data, output: result, batch: x.kernelBatch, channels, spatial: x.kernelSpatial, weight, bias, eps: this.eps, counts,
      mean, m2, invstd, ...roundArguments(round, Math.max(blockBytes, 0)),
    });
    runRound(round, () => binding.normalizeByBlocks(...args));
    return { merged: { count, mean, m2 }, invstd, result, blockBytes };
  }

  /** PyTorch's rule, on the whole batch: every rank throws the same, before any state changes. */
  private checkWholeBatch(count: number, x: CheckedTensor): void {
    if (count > 1) return;
    throw new RangeError(
      `Expected more than 1 value per channel when training, got ${count} over the ${this.processGroup.size} ranks of the ` +
        `process group (input size ${formatShape(x.shape)} on this rank)`,
    );
  }

  private async synchronizedBackward(gradOutput: unknown, options: unknown): Promise<Tensor<ArrayOf<D>>> {
    const { out } = checkOptions(options, 'options', BACKWARD_CALL_KEYS);
    const { gradInput: destination } = checkOptions(out, 'options.out', BACKWARD_OUT_KEYS);
    const step = this.step;
    if (step === null) {
      throw new BatchNormStateError(
        this.stepTaken
          ? 'SyncBatchNorm.backward() was already called for the last forward(); each forward allows one backward'
          : 'SyncBatchNorm.backward() needs a preceding forward()',
      );
    }
    const { x } = step;
    let dy = this.readTensor(gradOutput, 'gradOutput');
    checkSameDtype(dy.data, 'gradOutput.data', x.data);
    if (dy.shape.length !== x.shape.length || dy.shape.some((size, i) => size !== x.shape[i])) {
      throw new RangeError(`gradOutput.shape ${formatShape(dy.shape)} must equal the forward input's shape ${formatShape(x.shape)}`);
    }
    if (dy.memoryFormat !== x.memoryFormat) dy = checkTensor(permuteTo(dy, x.memoryFormat), 'gradOutput');
    if (destination !== undefined) {
      checkSameDtype(destination, 'options.out.gradInput', x.data);
      const length = elementCount(destination);
      if (length !== x.elements) throw new RangeError(`options.out.gradInput should contain ${x.elements} elements not ${length}`);
      if (overlaps(destination, x.data) || overlaps(destination, dy.data)) {
        throw new RangeError('options.out.gradInput must not overlap the input or the gradient');
      }
    }
    const wantWeight = this.weight !== null && checkBoolean(this.weight.requiresGrad, 'weight.requiresGrad', undefined);
    const wantBias = this.bias !== null && checkBoolean(this.bias.requiresGrad, 'bias.requiresGrad', undefined);
    if (step.fingerprint !== null && native().fingerprint(x.data) !== step.fingerprint) {
      throw new BatchNormStateError(
        'SyncBatchNorm.backward(): input.data changed after forward() read it, so the gradient would be wrong; ' +
          'keep the input unchanged until backward (checkInputUnchanged found it)',
      );
    }
    this.step = null;
    this.stepTaken = true;

    const sumDy = new Float64Array(this.numFeatures);
    const dotp = new Float64Array(this.numFeatures);
    const startRound = blockRounds.get(this.processGroup);
    const gradInput =
      startRound === undefined
        ? await this.backwardInTwoPasses(step, dy, destination as FloatArray | undefined, sumDy, dotp)
        : await this.backwardByBlocks(step, dy, destination as FloatArray | undefined, sumDy, dotp, startRound);
    // This rank's shares of the weight and bias gradients, accumulated as autograd does.
    if (wantWeight) accumulateInto(this.weight!, dotp.map((value, c) => value * step.invstd[c]!));
    if (wantBias) accumulateInto(this.bias!, sumDy);
    return { data: gradInput as ArrayOf<D>, shape: x.shape, memoryFormat: x.memoryFormat };
  }

  /**
   * The backward's passes with one exchange between them: this rank's sums of every channel, the
   * ranks' sums added, then gradInput (x and dy read twice).
   */
  private async backwardInTwoPasses(
    step: SyncStep, dy: CheckedTensor, destination: FloatArray | undefined, sumDy: Float64Array, dotp: Float64Array,
  ): Promise<FloatArray> {
    const { x } = step;
    const channels = this.numFeatures;
    const geometry = { batch: x.kernelBatch, channels, spatial: x.kernelSpatial };
    const sums = shardGradientSumsArguments({ gradOutput: dy.data, input: x.data, ...geometry, mean: step.mean, sumDy, dotp });
    const binding = native();
    await runPhase(binding.shardGradientSums, binding.shardGradientSumsAsync, sums, [
      { name: 'gradOutput.data', array: dy.data, argument: ShardGradientSumsArgument.gradOutput },
      { name: 'input.data', array: x.data, argument: ShardGradientSumsArgument.input },
    ]);
    const local = new Float64Array(2 * channels);
    local.set(sumDy);
    local.set(dotp, channels);
    const total = sumGradientParts(await gatherChecked(this.processGroup, local), channels);
    const gradInput = destination ?? newOutputLike(x.data, x.elements);
    const args = gradInputWithArguments({
      gradOutput: dy.data, input: x.data, gradInput, ...geometry, mean: step.mean, invstd: step.invstd, weight: step.weight,
      sumDy: total.sumDy, dotp: total.dotp, total: step.total,
    });
    await runPhase(binding.gradInputWith, binding.gradInputWithAsync, args, [
      { name: 'gradOutput.data', array: dy.data, argument: GradInputWithArgument.gradOutput },
      { name: 'input.data', array: x.data, argument: GradInputWithArgument.input },
      { name: 'options.out.gradInput', array: destination ?? null, argument: GradInputWithArgument.gradInput },
    ]);
    return gradInput;
  }

  /**
   * The backward by blocks of channels (a worker group's workers, planar tensors): once every rank has
   * arrived (an asynchronous exchange, so a late peer never blocks this event loop), one native call on
   * this thread computes a block's sums, exchanges them through the group's shared memory, and writes
   * the block's gradInput while its x and dy are still in cache: the fused backward's single read of
   * them. The same bits as the two passes. If a peer leaves meanwhile, gradInput may be partly written
   * and the call rejects, as every rank's does.
   */
  private async backwardByBlocks(
    step: SyncStep, dy: CheckedTensor, destination: FloatArray | undefined, sumDy: Float64Array, dotp: Float64Array,
    startRound: (channels: number) => BlockRound,
  ): Promise<FloatArray> {
    const { x } = step;
    protectAsyncArrays([
      { name: 'gradOutput.data', array: dy.data, argument: GradInputByBlocksArgument.gradOutput },
      { name: 'input.data', array: x.data, argument: GradInputByBlocksArgument.input },
      { name: 'options.out.gradInput', array: destination ?? null, argument: GradInputByBlocksArgument.gradInput },
    ]);
    await gatherChecked(this.processGroup, new Float64Array(1));
    const gradInput = destination ?? newOutputLike(x.data, x.elements);
    const round = startRound(this.numFeatures);
    const args = gradInputByBlocksArguments({
      gradOutput: dy.data, input: x.data, gradInput, batch: x.kernelBatch, channels: this.numFeatures, spatial: x.kernelSpatial,
      mean: step.mean, invstd: step.invstd, weight: step.weight, sumDy, dotp, total: step.total,
      ...roundArguments(round, Math.max(2 * step.blockBytes, 0)),
    });
    runRound(round, () => native().gradInputByBlocks(...args));
    return gradInput;
  }

  /**
   * The module's first synchronized step checks that every rank has the same channels, dtype, eps,
   * momentum, affine and tracking: a mismatch is the same RangeError on every rank, before any state
   * changes. (Every later step's exchange has a length that depends on the channels only.)
   */
  private async agreeWithRanks(): Promise<void> {
    const header = Float64Array.of(
      this.numFeatures,
      this.dtype === 'float32' ? 32 : 64,
      this.eps,
      this.momentum ?? NaN,
      this.affine ? 1 : 0,
      this.trackRunningStats ? 1 : 0,
    );
    const headers = await gatherChecked(this.processGroup, header);
    const names = ['numFeatures', 'dtype', 'eps', 'momentum', 'affine', 'trackRunningStats'];
    for (let field = 0; field < HEADER_LENGTH; field++) {
      const values = headers.map((h) => h[field]!);
      if (values.every((v) => Object.is(v, values[0]))) continue;
      const shown = values.map((v, rank) => `rank ${rank}: ${describeField(names[field]!, v)}`).join(', ');
      throw new RangeError(`SyncBatchNorm: the ranks of the process group disagree on ${names[field]} (${shown}); nothing was changed`);
    }
    this.agreed = true;
  }
}

function describeField(name: string, value: number): string {
  if (name === 'dtype') return value === 32 ? 'float32' : 'float64';
  if (name === 'momentum' && Number.isNaN(value)) return 'null';
  if (name === 'affine' || name === 'trackRunningStats') return value === 1 ? 'true' : 'false';
  return String(value);
}

/**
 * Adds a gradient computed in double into a parameter's gradient: rounded once to the parameter's dtype
 * first, as the kernels' gradients are, then accumulated as autograd does.
 */
function accumulateInto(parameter: { data: FloatArray; grad: FloatArray | null }, gradient: Float64Array): void {
  const rounded = newLike(parameter.data, gradient.length);
  rounded.set(gradient);
  if (parameter.grad === null) {
    parameter.grad = rounded;
    return;
  }
  for (let c = 0; c < rounded.length; c++) parameter.grad[c]! += rounded[c]!;
}
