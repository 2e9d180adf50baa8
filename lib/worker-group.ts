// A ProcessGroup of worker threads on one machine, over shared memory: the main thread creates it,
// each worker joins it with its rank. An all-gather writes this rank's array into its slot of one of two
// buffers (alternate rounds use alternate buffers, so a round needs a single barrier: a rank can only
// overwrite a buffer two rounds later, after every rank has read it), counts its arrival, and waits
// (Atomics.waitAsync, so the event loop stays free) until every rank of the round has arrived. The main
// thread watches the workers: one that exits breaks the group, and every pending or later exchange
// rejects with an error that names it; an optional time-out does the same for a peer that never comes.
import type { Worker } from 'node:worker_threads';

import { invalidType, invalidValue } from './errors';
import { type ProcessGroup, allReduceByGather } from './process-group';
import type { FloatArray } from './tensor';

/** `Atomics.waitAsync` (ES2024; in every Node this package supports), typed here for the ES2022 target. */
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: (array: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult })
  .waitAsync;

/** Control words (Int32) of a group's shared memory. */
const BROKEN = 0; // 0, or 1 + the rank whose worker exited, -1 for a time-out, -2 - the rank that failed in a step by blocks
// (word 1 is unused)
const ARRIVED = 2; // two counters, one per buffer: arrivals so far
const LENGTHS = 4; // per buffer and rank: the length written
// then, per rank, PROGRESS = LENGTHS + 2 * size: the blocks of SyncBatchNorm's steps by blocks it has
// published so far (native/binding/worker_group_exchange.h), and EXIT_CODES = LENGTHS + 3 * size: its
// worker's exit code, stored before BROKEN names it (native code reads BROKEN without waiting for a
// notification, so the code must already be there).
const progressWord = (size: number) => LENGTHS + 2 * size;
const exitCodeWord = (size: number, rank: number) => LENGTHS + 3 * size + rank;

/** What a worker needs to join a group: pass it in `workerData` (it is structured-cloneable). */
export interface WorkerGroupMember {
  readonly rank: number;
  readonly size: number;
  readonly maxLength: number;
  readonly timeoutMs: number | null;
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

/** Options of {@link createWorkerGroup}. */
export interface WorkerGroupOptions {
  /** The longest array a rank may exchange, in doubles. Default 65,536 (SyncBatchNorm needs 2C, and at least 6). */
  maxLength?: number;
  /** Reject an exchange that waits longer than this for a peer (milliseconds). Default: wait as long as it takes. */
  timeoutMs?: number | null;
}

/** The main thread's handle of a worker group. */
export interface WorkerGroup {
  readonly size: number;
  /** What the worker of `rank` passes to {@link joinWorkerGroup} (send it in `workerData`). */
  member(rank: number): WorkerGroupMember;
  /** Watches the worker of `rank`: if it exits, the group breaks and its peers' exchanges reject. */
  watch(worker: Worker, rank: number): void;
}

/** A worker's member of a group: a {@link ProcessGroup}, with an in-place all-reduce (sum) besides. */
export interface WorkerProcessGroup extends ProcessGroup {
  /** Sums `array` over the ranks in place (in rank order, in double), e.g. to average gradients. */
  allReduce(array: FloatArray): Promise<void>;
}

/**
 * A group of `size` worker threads (created on the main thread). Give each worker its
 * `group.member(rank)` in `workerData` and call `group.watch(worker, rank)`; each worker calls
 * {@link joinWorkerGroup}.
 */
export function createWorkerGroup(size: number, options: WorkerGroupOptions = {}): WorkerGroup {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) throw invalidType('size', 'a positive integer', size);
  const maxLength = options.maxLength ?? 65_536;
  if (!Number.isSafeInteger(maxLength) || maxLength < 1) throw invalidValue('options.maxLength', 'a positive integer', maxLength);
  const timeoutMs = options.timeoutMs ?? null;
  if (timeoutMs !== null && !(typeof timeoutMs === 'number' && timeoutMs > 0)) {
    throw invalidValue('options.timeoutMs', 'a positive number of milliseconds or null', timeoutMs);
  }
  const control = new SharedArrayBuffer(4 * (LENGTHS + 4 * size));
  const data = new SharedArrayBuffer(8 * 2 * size * maxLength);
  const words = new Int32Array(control);
  return {
    size,
    member(rank: number): WorkerGroupMember {
      if (!Number.isSafeInteger(rank) || rank < 0 || rank >= size) throw invalidValue('rank', `an integer from 0 to ${size - 1}`, rank);
      return { rank, size, maxLength, timeoutMs, control, data };
    },
    watch(worker: Worker, rank: number): void {
      worker.once('exit', (code: number) => {
        Atomics.store(words, exitCodeWord(size, rank), code);
        if (Atomics.compareExchange(words, BROKEN, 0, 1 + rank) !== 0) return;
        Atomics.notify(words, ARRIVED);
        Atomics.notify(words, ARRIVED + 1);
      });
    },
  };
}

/**
 * Waits until the arrivals at `buffer` reach `target`, without blocking the event loop; throws
 * brokenError() once a peer has exited or, after timeoutMs, marks the group broken and throws it.
 */
async function waitForArrivals(
  words: Int32Array,
  buffer: number,
  target: number,
  timeoutMs: number | null,
  brokenError: () => Error,
): Promise<void> {
  const deadline = timeoutMs === null ? Infinity : Date.now() + timeoutMs;
  // A pending waitAsync does not keep a worker's event loop alive: a timer handle does.
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  try {
    for (;;) {
      // A completed round counts even if a peer has exited since (it may have finished its last round).
      const seen = Atomics.load(words, ARRIVED + buffer);
      if (seen >= target) return;
      if (Atomics.load(words, BROKEN) !== 0) throw brokenError();
      const left = deadline - Date.now();
      if (left <= 0) {
        Atomics.compareExchange(words, BROKEN, 0, -1);
        Atomics.notify(words, ARRIVED + buffer);
        throw brokenError();
      }
      const wait = waitAsync(words, ARRIVED + buffer, seen, Number.isFinite(left) ? left : undefined);
      if (wait.async) {
        keepAlive ??= setInterval(() => {}, 1 << 30);
        await wait.value;
      }
    }
  } finally {
    if (keepAlive !== undefined) clearInterval(keepAlive);
  }
}

/**
 * One round of a worker group's exchange taken by one of SyncBatchNorm's steps by blocks, which the
 * native normalizeByBlocks or gradInputByBlocks runs on the group's shared memory: a round like an allGather's (it takes the next of
 * the two buffers, so the protocol's one-barrier-per-round reasoning holds), whose barriers are the
 * native per-block waits. `finish` counts this rank's arrival in the round once the native call has
 * returned (or, when it failed, wakes the ranks waiting in JavaScript).
 */
export interface BlockRound {
  readonly control: Int32Array;
  readonly exchange: Float64Array;
  readonly rank: number;
  readonly size: number;
  readonly slotLength: number;
  readonly progressWord: number;
  /** Infinity when the group has no time-out. */
  readonly timeoutMs: number;
  finish(succeeded: boolean): void;
  /**
   * Ends the round after the native call threw instead of returning (a bug: the package checks its
   * arguments first): the group breaks, so that peers waiting in the round reject instead of waiting on.
   */
  abandon(): void;
  /** The error every exchange of a broken group rejects with. */
  brokenError(): Error;
}

/**
 * The worker groups' members, each with the function that starts a {@link BlockRound} (kept here, not
 * on the member, so nothing outside the package can pose as a worker group).
 */
export const blockRounds = new WeakMap<ProcessGroup, (channels: number) => BlockRound>();

/** A member's {@link BlockRound} on data buffer `buffer` (0 or 1). */
function blockRound(member: WorkerGroupMember, words: Int32Array, doubles: Float64Array, buffer: number, brokenError: () => Error): BlockRound {
  const { rank, size, maxLength, timeoutMs } = member;
  const finish = (succeeded: boolean): void => {
    if (succeeded) Atomics.add(words, ARRIVED + buffer, 1);
    Atomics.notify(words, ARRIVED + buffer);
    if (!succeeded) Atomics.notify(words, ARRIVED + 1 - buffer);
  };
  return {
    control: words,
    exchange: doubles.subarray(buffer * size * maxLength, (buffer + 1) * size * maxLength),
    rank,
    size,
    slotLength: maxLength,
    progressWord: progressWord(size),
    timeoutMs: timeoutMs ?? Infinity,
    finish,
    abandon(): void {
      Atomics.compareExchange(words, BROKEN, 0, -2 - rank);
      finish(false);
    },
    brokenError,
  };
}

/** Joins a group inside a worker: the ProcessGroup of `member.rank`. */
export function joinWorkerGroup(member: WorkerGroupMember): WorkerProcessGroup {
  if (typeof member !== 'object' || member === null || !(member.control instanceof SharedArrayBuffer)) {
    throw invalidType('member', 'a WorkerGroupMember from group.member(rank)', member);
  }
  const { rank, size, maxLength, timeoutMs } = member;
  const words = new Int32Array(member.control);
  const doubles = new Float64Array(member.data);
  let round = 0;

  function brokenError(): Error {
    const broken = Atomics.load(words, BROKEN);
    if (broken === -1) return new Error(`worker group: an exchange waited more than ${timeoutMs} ms for a peer (rank ${rank} gave up)`);
    if (broken < -1) return new Error(`worker group: rank ${-2 - broken} failed inside a SyncBatchNorm step by blocks, so its peers cannot complete it`);
    return new Error(
      `worker group: the worker of rank ${broken - 1} exited (code ${Atomics.load(words, exitCodeWord(size, broken - 1))}), so its peers' exchanges cannot complete`,
    );
  }

  async function allGather(local: Float64Array): Promise<Float64Array[]> {
    if (!(local instanceof Float64Array)) throw invalidType('local', 'a Float64Array', local);
    if (local.length > maxLength) {
      throw new RangeError(`worker group: an exchange of ${local.length} doubles exceeds its maxLength of ${maxLength}`);
    }
    if (Atomics.load(words, BROKEN) !== 0) throw brokenError();
    const buffer = round & 1;
    const target = ((round >> 1) + 1) * size;
    round++;
    const slot = (r: number) => (buffer * size + r) * maxLength;
    doubles.set(local, slot(rank));
    Atomics.store(words, LENGTHS + buffer * size + rank, local.length);
    // The store of the count publishes the slot (Atomics are sequentially consistent).
    Atomics.add(words, ARRIVED + buffer, 1);
    Atomics.notify(words, ARRIVED + buffer);
    await waitForArrivals(words, buffer, target, timeoutMs, brokenError);
    const parts: Float64Array[] = [];
    for (let r = 0; r < size; r++) {
      const length = Atomics.load(words, LENGTHS + buffer * size + r);
      parts.push(doubles.slice(slot(r), slot(r) + length));
    }
    return parts;
  }

  /** Every rank of a step starts it with the same channels, so all throw alike or none does. */
  function startBlockRound(channels: number): BlockRound {
    if (Atomics.load(words, BROKEN) !== 0) throw brokenError();
    if (2 * channels > maxLength) {
      throw new RangeError(
        `worker group: a SyncBatchNorm step of ${channels} channels exchanges ${2 * channels} doubles per rank, ` +
          `more than its maxLength of ${maxLength}`,
      );
    }
    const buffer = round & 1;
    round++;
    return blockRound(member, words, doubles, buffer, brokenError);
  }

  const group: WorkerProcessGroup = {
    rank,
    size,
    allGather,
    allReduce: (array: FloatArray) => allReduceByGather(allGather, array),
  };
  blockRounds.set(group, startBlockRound);
  return group;
}
