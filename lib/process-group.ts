// The process-group contract SyncBatchNorm exchanges its per-channel partials through, and the
// rank-order merges of those partials: every rank merges the same arrays in the same order with the
// same double arithmetic, so every rank computes bit-identical statistics, whatever the transport and
// the order in which the ranks' arrays arrived.
import { describeValue, invalidType } from './errors';
import { elementCount, ownValue, typedArrayKind } from './intrinsics';
import type { FloatArray } from './tensor';

/**
 * A group of replicas that exchange arrays: a worker thread, a process or a machine each. Plug in any
 * transport by implementing this.
 */
export interface ProcessGroup {
  /** This replica's index, 0 to size - 1. */
  readonly rank: number;
  /** How many replicas the group has. */
  readonly size: number;
  /**
   * Every rank calls it with an array of the same length, in the same order of calls; it resolves with
   * `size` arrays, the ranks' arrays in rank order (this rank's own included).
   */
  allGather(local: Float64Array): Promise<Float64Array[]>;
}

/** Checks a process group argument (own or inherited members: a group is typically a class instance). */
export function checkProcessGroup(value: unknown, name: string): ProcessGroup {
  if (typeof value !== 'object' || value === null) throw invalidType(name, 'a process group { rank, size, allGather }', value);
  const group = value as Partial<ProcessGroup>;
  const { rank, size } = group;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    throw invalidType(`${name}.size`, 'a positive integer', size);
  }
  if (typeof rank !== 'number' || !Number.isSafeInteger(rank) || rank < 0 || rank >= size) {
    throw invalidType(`${name}.rank`, `an integer from 0 to ${size - 1} (size - 1)`, rank);
  }
  if (typeof group.allGather !== 'function') throw invalidType(`${name}.allGather`, 'a function', group.allGather);
  return group as ProcessGroup;
}

/**
 * `group.allGather(local)`, with its answer checked: `size` Float64Arrays of `local`'s length. A
 * transport that answers otherwise gets a RangeError naming what it returned, never a wrong merge.
 */
export async function gatherChecked(group: ProcessGroup, local: Float64Array): Promise<Float64Array[]> {
  const gathered: unknown = await group.allGather(local);
  const length = elementCount(local);
  if (!Array.isArray(gathered) || gathered.length !== group.size) {
    throw new RangeError(
      `processGroup.allGather must resolve with ${group.size} arrays (one per rank) but resolved with ${describeValue(gathered)}` +
        (Array.isArray(gathered) ? ` of ${gathered.length}` : ''),
    );
  }
  return gathered.map((array: unknown, rank) => {
    const item = ownValue(gathered, rank);
    if (typedArrayKind(item) !== 'Float64Array' || elementCount(item as Float64Array) !== length) {
      throw new RangeError(
        `processGroup.allGather resolved with ${describeValue(array)} for rank ${rank}, not a Float64Array of ${length} elements ` +
          '(every rank must pass arrays of the same length)',
      );
    }
    return item as Float64Array;
  });
}

/** The whole batch's per-channel count, mean and m2 (sum of squared deviations). */
export interface MergedStatistics {
  count: number;
  mean: Float64Array;
  m2: Float64Array;
}

/**
 * Merges the ranks' `[count, mean[C], m2[C]]` in rank order (Chan, Golub and LeVeque's pairwise update
 * of mean and m2), skipping empty shards.
 */
export function mergeStatistics(parts: readonly Float64Array[], channels: number): MergedStatistics {
  const mean = new Float64Array(channels);
  const m2 = new Float64Array(channels);
  let count = 0;
  for (const part of parts) {
    const partCount = part[0]!;
    if (partCount === 0) continue;
    if (count === 0) {
      mean.set(part.subarray(1, 1 + channels));
      m2.set(part.subarray(1 + channels, 1 + 2 * channels));
      count = partCount;
      continue;
    }
    const total = count + partCount;
    const weight = partCount / total;
    const cross = (count * partCount) / total;
    for (let c = 0; c < channels; c++) {
      const delta = part[1 + c]! - mean[c]!;
      mean[c]! += delta * weight;
      m2[c]! += part[1 + channels + c]! + delta * delta * cross;
    }
    count = total;
  }
  return { count, mean, m2 };
}

/** Adds the ranks' `[sumDy[C], dotp[C]]` in rank order. */
export function sumGradientParts(parts: readonly Float64Array[], channels: number): { sumDy: Float64Array; dotp: Float64Array } {
  const sumDy = new Float64Array(channels);
  const dotp = new Float64Array(channels);
  for (const part of parts) {
    for (let c = 0; c < channels; c++) {
      sumDy[c]! += part[c]!;
      dotp[c]! += part[channels + c]!;
    }
  }
  return { sumDy, dotp };
}

/**
 * Sums `array` over the ranks in place through an all-gather: the ranks' arrays added in rank order in
 * double, so every rank gets the same bits (an MPI_Allreduce promises no such thing).
 */
export async function allReduceByGather(allGather: ProcessGroup['allGather'], array: FloatArray): Promise<void> {
  const parts = await allGather(Float64Array.from(array));
  for (let i = 0; i < array.length; i++) {
    let sum = 0;
    for (const part of parts) sum += part[i]!;
    array[i] = sum;
  }
}
