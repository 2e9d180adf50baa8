// The positional arguments of the native forward(), backward() and split phases (binding.d.ts), by name:
// the one source of native/binding/argument_names.h, which scripts/write-argument-names.js writes from these
// lists (test/native-boundary.test.ts checks the header, binding.d.ts and the builders against them).
import type { NativeBinding } from '../binding';

type ForwardArgs = Parameters<NativeBinding['forward']>;
type BackwardArgs = Parameters<NativeBinding['backward']>;

export const FORWARD_ARGUMENTS = [
  'input', 'output', 'batch', 'channels', 'spatial', 'weight', 'bias', 'runningMean', 'runningVar', 'saveMean',
  'saveInvstd', 'training', 'momentum', 'eps', 'privateRunningStats',
] as const;

export const BACKWARD_ARGUMENTS = [
  'gradOutput', 'input', 'batch', 'channels', 'spatial', 'weight', 'runningMean', 'runningVar', 'saveMean',
  'saveInvstd', 'gradInput', 'gradWeight', 'gradBias', 'training', 'eps',
] as const;

type Positions<Names extends readonly string[]> = { readonly [K in Names[number]]: number };

function positions<Names extends readonly string[]>(names: Names): Positions<Names> {
  return Object.freeze(Object.fromEntries(names.map((name, i) => [name, i]))) as Positions<Names>;
}

/** Position of each forward() argument (also the bit of an async call's staged mask). */
export const ForwardArgument = positions(FORWARD_ARGUMENTS);
/** Position of each backward() argument (also the bit of an async call's staged mask). */
export const BackwardArgument = positions(BACKWARD_ARGUMENTS);

/**
 * forward()'s argument list from its named arguments (written out: a call builds it every time).
 * `privateRunningStats` (default false): the running statistics are copies the caller commits itself
 * (a module's), so the native call updates them in place instead of through a copy of its own.
 */
export function forwardArguments(a: {
  input: ForwardArgs[0]; output: ForwardArgs[1]; batch: number; channels: number; spatial: number;
  weight: ForwardArgs[5]; bias: ForwardArgs[6]; runningMean: ForwardArgs[7]; runningVar: ForwardArgs[8];
  saveMean: ForwardArgs[9]; saveInvstd: ForwardArgs[10]; training: boolean; momentum: number; eps: number;
  privateRunningStats?: boolean;
}): ForwardArgs {
  return [a.input, a.output, a.batch, a.channels, a.spatial, a.weight, a.bias, a.runningMean, a.runningVar, a.saveMean,
    a.saveInvstd, a.training, a.momentum, a.eps, a.privateRunningStats ?? false];
}

/** backward()'s argument list from its named arguments. */
export function backwardArguments(a: {
  gradOutput: BackwardArgs[0]; input: BackwardArgs[1]; batch: number; channels: number; spatial: number;
  weight: BackwardArgs[5]; runningMean: BackwardArgs[6]; runningVar: BackwardArgs[7]; saveMean: BackwardArgs[8];
  saveInvstd: BackwardArgs[9]; gradInput: BackwardArgs[10]; gradWeight: BackwardArgs[11]; gradBias: BackwardArgs[12];
  training: boolean; eps: number;
}): BackwardArgs {
  return [a.gradOutput, a.input, a.batch, a.channels, a.spatial, a.weight, a.runningMean, a.runningVar, a.saveMean,
    a.saveInvstd, a.gradInput, a.gradWeight, a.gradBias, a.training, a.eps];
}

type StatisticsArgs = Parameters<NativeBinding['shardStatistics']>;
type NormalizeArgs = Parameters<NativeBinding['normalizeWith']>;
type SumsArgs = Parameters<NativeBinding['shardGradientSums']>;
type GradInputArgs = Parameters<NativeBinding['gradInputWith']>;

export const SHARD_STATISTICS_ARGUMENTS = ['input', 'batch', 'channels', 'spatial', 'mean', 'm2'] as const;
export const NORMALIZE_WITH_ARGUMENTS = ['input', 'output', 'batch', 'channels', 'spatial', 'mean', 'invstd', 'weight', 'bias'] as const;
export const SHARD_GRADIENT_SUMS_ARGUMENTS = ['gradOutput', 'input', 'batch', 'channels', 'spatial', 'mean', 'sumDy', 'dotp'] as const;
export const GRAD_INPUT_WITH_ARGUMENTS = [
  'gradOutput', 'input', 'gradInput', 'batch', 'channels', 'spatial', 'mean', 'invstd', 'weight', 'sumDy', 'dotp', 'total',
] as const;

/** The steps by blocks end with the worker group's round (lib/worker-group.ts BlockRound) and the block size. */
const BLOCK_ROUND_ARGUMENTS = ['channelBytes', 'control', 'exchange', 'rank', 'size', 'slotLength', 'progressWord', 'timeoutMs'] as const;
export const NORMALIZE_BY_BLOCKS_ARGUMENTS = [
  'input', 'output', 'batch', 'channels', 'spatial', 'weight', 'bias', 'eps', 'counts', 'mean', 'm2', 'invstd',
  ...BLOCK_ROUND_ARGUMENTS,
] as const;
export const GRAD_INPUT_BY_BLOCKS_ARGUMENTS = [...GRAD_INPUT_WITH_ARGUMENTS, ...BLOCK_ROUND_ARGUMENTS] as const;

export const ShardStatisticsArgument = positions(SHARD_STATISTICS_ARGUMENTS);
export const NormalizeWithArgument = positions(NORMALIZE_WITH_ARGUMENTS);
export const ShardGradientSumsArgument = positions(SHARD_GRADIENT_SUMS_ARGUMENTS);
export const GradInputWithArgument = positions(GRAD_INPUT_WITH_ARGUMENTS);
export const NormalizeByBlocksArgument = positions(NORMALIZE_BY_BLOCKS_ARGUMENTS);
export const GradInputByBlocksArgument = positions(GRAD_INPUT_BY_BLOCKS_ARGUMENTS);

export function shardStatisticsArguments(a: {
  input: StatisticsArgs[0]; batch: number; channels: number; spatial: number; mean: Float64Array; m2: Float64Array;
}): StatisticsArgs {
  return [a.input, a.batch, a.channels, a.spatial, a.mean, a.m2];
}

export function normalizeWithArguments(a: {
  input: NormalizeArgs[0]; output: NormalizeArgs[1]; batch: number; channels: number; spatial: number; mean: Float64Array;
  invstd: Float64Array; weight: NormalizeArgs[7]; bias: NormalizeArgs[8];
}): NormalizeArgs {
  return [a.input, a.output, a.batch, a.channels, a.spatial, a.mean, a.invstd, a.weight, a.bias];
}

export function shardGradientSumsArguments(a: {
  gradOutput: SumsArgs[0]; input: SumsArgs[1]; batch: number; channels: number; spatial: number; mean: Float64Array;
  sumDy: Float64Array; dotp: Float64Array;
}): SumsArgs {
  return [a.gradOutput, a.input, a.batch, a.channels, a.spatial, a.mean, a.sumDy, a.dotp];
}

export function gradInputWithArguments(a: {
  gradOutput: GradInputArgs[0]; input: GradInputArgs[1]; gradInput: GradInputArgs[2]; batch: number; channels: number;
  spatial: number; mean: Float64Array; invstd: Float64Array; weight: GradInputArgs[8]; sumDy: Float64Array; dotp: Float64Array;
  total: number;
}): GradInputArgs {
  return [a.gradOutput, a.input, a.gradInput, a.batch, a.channels, a.spatial, a.mean, a.invstd, a.weight, a.sumDy, a.dotp,
    a.total];
}

/** A worker group's round and the block size, as the steps by blocks take them (lib/worker-group.ts). */
export interface BlockRoundArguments {
  channelBytes: number; control: Int32Array; exchange: Float64Array; rank: number; size: number; slotLength: number;
  progressWord: number; timeoutMs: number;
}

type NormalizeByBlocksArgs = Parameters<NativeBinding['normalizeByBlocks']>;

/**
 * normalizeByBlocks()'s argument list: the training forward's input, output and parameters, every
 * rank's values per channel (`counts`), the merged statistics' outputs, and the round.
 */
export function normalizeByBlocksArguments(a: {
  input: NormalizeByBlocksArgs[0]; output: NormalizeByBlocksArgs[1]; batch: number; channels: number; spatial: number;
  weight: NormalizeByBlocksArgs[5]; bias: NormalizeByBlocksArgs[6]; eps: number; counts: Float64Array; mean: Float64Array;
  m2: Float64Array; invstd: Float64Array;
} & BlockRoundArguments): NormalizeByBlocksArgs {
  return [a.input, a.output, a.batch, a.channels, a.spatial, a.weight, a.bias, a.eps, a.counts, a.mean, a.m2, a.invstd,
    a.channelBytes, a.control, a.exchange, a.rank, a.size, a.slotLength, a.progressWord, a.timeoutMs];
}

type ByBlocksArgs = Parameters<NativeBinding['gradInputByBlocks']>;

/**
 * gradInputByBlocks()'s argument list: gradInputWith's (sumDy/dotp receive this rank's sums) and the round.
 */
export function gradInputByBlocksArguments(a: {
  gradOutput: ByBlocksArgs[0]; input: ByBlocksArgs[1]; gradInput: ByBlocksArgs[2]; batch: number; channels: number;
  spatial: number; mean: Float64Array; invstd: Float64Array; weight: ByBlocksArgs[8]; sumDy: Float64Array; dotp: Float64Array;
  total: number;
} & BlockRoundArguments): ByBlocksArgs {
  return [a.gradOutput, a.input, a.gradInput, a.batch, a.channels, a.spatial, a.mean, a.invstd, a.weight, a.sumDy, a.dotp,
    a.total, a.channelBytes, a.control, a.exchange, a.rank, a.size, a.slotLength, a.progressWord, a.timeoutMs];
}
