// Types of the raw native module (build/Release/batchnorm.node or prebuilds/<platform>-<arch>/*.node).
// Only lib/native.ts loads it; the public API never exposes it. lib/ validates every argument before
// calling in; the native side re-checks kinds, dtypes, lengths and overlaps and throws TypeError or
// RangeError rather than touching memory it should not.

type NativeFloatArray = Float32Array | Float64Array;

export interface NativeBinding {
  /**
   * Batch-norm forward over a contiguous tensor seen as (batch, channels, spatial).
   * All arrays share the input's dtype. `output` has `batch * channels * spatial` elements and may be
   * `input` itself (in place), otherwise it shares no memory with any argument.
   * Training: `saveMean`/`saveInvstd` (length `channels`) are written; `runningMean`/`runningVar`
   * (each optional) are updated with `momentum`, all at once when the call succeeds and not at all
   * otherwise (through a copy the call owns), or, with `privateRunningStats`, in place: the caller's
   * own copies, which it commits itself. An empty batch writes zeros to the save arrays and leaves the
   * running stats alone.
   * Evaluation: `runningMean`/`runningVar` are required and read; the save arrays are ignored (pass null).
   */
  forward(
    input: NativeFloatArray,
    output: NativeFloatArray,
    batch: number,
    channels: number,
    spatial: number,
    weight: NativeFloatArray | null,
    bias: NativeFloatArray | null,
    runningMean: NativeFloatArray | null,
    runningVar: NativeFloatArray | null,
    saveMean: NativeFloatArray | null,
    saveInvstd: NativeFloatArray | null,
    training: boolean,
    momentum: number,
    eps: number,
    privateRunningStats: boolean,
  ): void;

  /**
   * Batch-norm backward. Training reads `saveMean`/`saveInvstd`; evaluation reads `runningMean`/`runningVar`
   * and `eps`. Each of `gradInput` (input-sized), `gradWeight` and `gradBias` (length `channels`) is written
   * when given and skipped when null; none may share memory with any other argument.
   */
  backward(
    gradOutput: NativeFloatArray,
    input: NativeFloatArray,
    batch: number,
    channels: number,
    spatial: number,
    weight: NativeFloatArray | null,
    runningMean: NativeFloatArray | null,
    runningVar: NativeFloatArray | null,
    saveMean: NativeFloatArray | null,
    saveInvstd: NativeFloatArray | null,
    gradInput: NativeFloatArray | null,
    gradWeight: NativeFloatArray | null,
    gradBias: NativeFloatArray | null,
    training: boolean,
    eps: number,
  ): void;

  /**
   * forward() on the libuv thread pool, or on this thread for a tensor of at most 65,536 elements (the
   * promise is then settled when it returns). Checks run synchronously (and throw); the promise resolves when
   * the outputs are written. Every array argument is referenced until then. `staged` is a mask: bit i
   * runs argument i on a copy owned by the call, written back (all or none) on completion if every
   * array is still attached and of its length. The caller keeps unstaged arrays from being detached
   * (lib/async-memory.ts). The running statistics change only when the promise resolves.
   */
  forwardAsync(...args: [...Parameters<NativeBinding['forward']>, staged: number]): Promise<void>;

  /** backward() on the libuv thread pool (see forwardAsync). */
  backwardAsync(...args: [...Parameters<NativeBinding['backward']>, staged: number]): Promise<void>;

  /**
   * The split phases of a SyncBatchNorm training step (native/kernel/split_phases.h), each over a
   * contiguous (batch, channels, spatial) tensor of either dtype with per-channel Float64Arrays, in
   * double: the shard's mean and m2 = sum((x - mean)^2) per channel (0 and 0 for an empty shard).
   */
  shardStatistics(input: NativeFloatArray, batch: number, channels: number, spatial: number, mean: Float64Array, m2: Float64Array): void;
  shardStatisticsAsync(...args: [...Parameters<NativeBinding['shardStatistics']>, staged: number]): Promise<void>;
  /** output = (input - mean) * invstd * weight + bias per channel (weight/bias: the input's dtype, or null). */
  normalizeWith(
    input: NativeFloatArray, output: NativeFloatArray, batch: number, channels: number, spatial: number, mean: Float64Array,
    invstd: Float64Array, weight: NativeFloatArray | null, bias: NativeFloatArray | null,
  ): void;
  normalizeWithAsync(...args: [...Parameters<NativeBinding['normalizeWith']>, staged: number]): Promise<void>;
  /** sumDy = sum(gradOutput) and dotp = sum(gradOutput * (input - mean)) per channel of the shard. */
  shardGradientSums(
    gradOutput: NativeFloatArray, input: NativeFloatArray, batch: number, channels: number, spatial: number, mean: Float64Array,
    sumDy: Float64Array, dotp: Float64Array,
  ): void;
  shardGradientSumsAsync(...args: [...Parameters<NativeBinding['shardGradientSums']>, staged: number]): Promise<void>;
  /** The training gradInput from the whole batch's sums and its count per channel (`total`, >= 1). */
  gradInputWith(
    gradOutput: NativeFloatArray, input: NativeFloatArray, gradInput: NativeFloatArray, batch: number, channels: number,
    spatial: number, mean: Float64Array, invstd: Float64Array, weight: NativeFloatArray | null, sumDy: Float64Array,
    dotp: Float64Array, total: number,
  ): void;
  gradInputWithAsync(...args: [...Parameters<NativeBinding['gradInputWith']>, staged: number]): Promise<void>;
  /**
   * SyncBatchNorm's training forward by blocks of channels over one round of a worker group's shared
   * memory (lib/worker-group.ts), on the calling thread: the normalized output with the statistics of
   * every rank's shard (`counts`: each rank's values per channel), whose mean, m2 and invstd come out.
   * `channelBytes`: the largest shard's input bytes per channel (0: one block). Returns 0 (done), 1 (the
   * group broke: a peer exited or timed out) or 2 (this rank timed out and marked the group broken);
   * output is partly written unless 0. `timeoutMs`: Infinity for none.
   */
  normalizeByBlocks(
    input: NativeFloatArray, output: NativeFloatArray, batch: number, channels: number, spatial: number,
    weight: NativeFloatArray | null, bias: NativeFloatArray | null, eps: number, counts: Float64Array, mean: Float64Array,
    m2: Float64Array, invstd: Float64Array, channelBytes: number, control: Int32Array, exchange: Float64Array, rank: number,
    size: number, slotLength: number, progressWord: number, timeoutMs: number,
  ): number;
  /**
   * SyncBatchNorm's backward by blocks, as normalizeByBlocks: gradInputWith's result from sums exchanged
   * block by block, this rank's sums in sumDy/dotp (`channelBytes`: of x and dy).
   */
  gradInputByBlocks(
    gradOutput: NativeFloatArray, input: NativeFloatArray, gradInput: NativeFloatArray, batch: number, channels: number,
    spatial: number, mean: Float64Array, invstd: Float64Array, weight: NativeFloatArray | null, sumDy: Float64Array,
    dotp: Float64Array, total: number, channelBytes: number, control: Int32Array, exchange: Float64Array, rank: number,
    size: number, slotLength: number, progressWord: number, timeoutMs: number,
  ): number;

  /** forward() on the portable scalar oracle instead of the dispatched kernels (tests only). */
  forwardReference: NativeBinding['forward'];

  /** backward() on the portable scalar oracle instead of the dispatched kernels (tests only). */
  backwardReference: NativeBinding['backward'];

  /**
   * Threads this environment's calls use, including the calling thread: an integer from 1 to 256,
   * capped by the process's budget (getNumThreads returns the capped count). Never waits for a running
   * call; an async call keeps the count it started with. One pool serves the whole process: a call that
   * finds it busy with another environment's call runs on its own thread.
   */
  setNumThreads(threads: number): void;
  getNumThreads(): number;

  /**
   * Sets the process's thread budget (1 to 256) if no environment has yet, and returns the budget in
   * force: the first environment to load the addon fixes it for the process.
   */
  setThreadBudget(threads: number): number;

  /** A 64-bit hash of the array's bytes (native/kernel/fingerprint.h): equal contents, equal hashes. */
  fingerprint(array: NativeFloatArray): bigint;
  /**
   * For an output just allocated: on Linux, asks for transparent huge pages behind its fresh memory
   * (native/binding/fresh_pages.h); whether the advice was given.
   */
  adviseHugePages(array: NativeFloatArray): boolean;

  /** memcpy of `source` into `destination` (same dtype and length, disjoint): the benchmark's baseline. */
  copy(destination: NativeFloatArray, source: NativeFloatArray): void;

  /** Name of the kernel path chosen at load: "default", "avx2" or "avx512" (x86-64), "neon" (arm64). */
  cpuCapability(): string;

  /**
   * The planner's answer for a call of `phase` (0 training forward, 1 eval forward, 2 backward) on a
   * (batch, channels, spatial) geometry, without running it (native/kernel/dispatch.h, WalkPlan).
   */
  kernelPlan(
    float64: boolean,
    batch: number,
    channels: number,
    spatial: number,
    phase: 0 | 1 | 2,
    useReference: boolean,
    threads: number,
  ): NativeWalkPlan;

  /** The caches the planner sizes its blocks and streaming by, found at load. */
  cacheSizes(): NativeCacheSizes;
  /** Values per channel and batch item from which SyncBatchNorm's steps by blocks cut a tensor's channels. */
  readonly blockMinSpatial: number;
}

/** native/kernel/cache_sizes.h CacheSizes. */
export interface NativeCacheSizes {
  l2Bytes: number;
  lastLevelBytes: number;
  source: 'sysfs' | 'sysctl' | 'cpuid' | 'fallback';
}

/** native/kernel/dispatch.h WalkPlan; "" where a field does not apply. */
export interface NativeWalkPlan {
  traversal: string;
  reduction: string;
  elementwise: string;
  reductionLast: string;
  elementwiseLast: string;
  arithmetic: string;
  blockChannels: number;
  blockRows: number;
  streamed: boolean;
  threads: number;
  ranges: number;
}
