// What the kernels would do for a tensor: the planner's answer (native/kernel/cpu/parts/planner.h),
// for tests that name the walks they cover and for `npm run bench`.
import type { NativeCacheSizes, NativeWalkPlan } from '../binding';
import { invalidType } from './errors';
import { getNumThreads } from './functional';
import { native } from './native';
import { checkBoolean, checkOptions } from './validate';
import { type Tensor, checkTensor, dtypeName } from './tensor';

/** A walk of the kernels, named as in native/kernel/cpu/parts/planner.h. */
export type KernelWalk =
  | 'planar-rows'
  | 'flat-joined'
  | 'column-groups'
  | 'accumulator-rows'
  | 'streamed-rows'
  | 'row-groups'
  | 'single-rows';

/** How one phase of a call traverses the tensor. */
export interface PhasePlan {
  /** `'planar'` (a channel at a time), `'interleaved'` (blocks of channels across rows) or `'reference'`. */
  traversal: 'planar' | 'interleaved' | 'reference';
  /** The walk of the statistics (training forward) or of the backward sums; null in eval forward. */
  reduction: KernelWalk | null;
  /** The walk of the normalization or of grad_input. */
  elementwise: KernelWalk | null;
  /** The walks of the last channel block, where it is narrower and walks differently; else null. */
  lastBlock: { reduction: KernelWalk | null; elementwise: KernelWalk | null } | null;
  /**
   * Arithmetic of the elementwise pass: `'float'` (float32 on the FMA paths) or `'double'`. A channel
   * whose coefficients leave float range takes the double walk instead (data-dependent, not shown).
   */
  arithmetic: 'float' | 'double';
  /** Channels and rows per block of an interleaved traversal; null when planar. */
  block: { channels: number; rows: number } | null;
  /** Whether the output is written with non-temporal stores (on {@link KernelPlan.threads} threads). */
  streamed: boolean;
  /** How many contiguous parallel ranges the elementwise pass is split into (at most the threads). */
  ranges: number;
}

/** The kernels' plan for each phase of a call on `input`. */
export interface KernelPlan {
  capability: string;
  /**
   * The caches the plan is sized by: from Linux sysfs, macOS sysctl, CPUID's cache leaves, or the
   * fallback (1 MB L2, 32 MB last level per core complex). Blocks aim at a quarter of the L2. On one
   * thread, outputs of a quarter of the last level and more are streamed; on more, only those whose
   * pass's tensors (input and output; grad_input: input, gradOutput and gradInput) together take more
   * than seven eighths of it (training forward, backward), or more than it and every thread's L2 (eval).
   */
  caches: NativeCacheSizes;
  /**
   * The threads the plan is for: `options.threads`, else this thread's {@link getNumThreads}, capped by
   * the process's thread budget. Walks never depend on it (results are the same bits on any count);
   * `streamed` and `ranges` do.
   */
  threads: number;
  trainingForward: PhasePlan;
  evalForward: PhasePlan;
  backward: PhasePlan;
}

function walkOrNull(name: string): KernelWalk | null {
  return name === '' ? null : (name as KernelWalk);
}

function phasePlan(raw: NativeWalkPlan): PhasePlan {
  const differs = raw.reductionLast !== '' || raw.elementwiseLast !== '';
  return {
    traversal: (raw.traversal === '' ? 'planar' : raw.traversal) as PhasePlan['traversal'],
    reduction: walkOrNull(raw.reduction),
    elementwise: walkOrNull(raw.elementwise),
    lastBlock: differs
      ? {
          reduction: walkOrNull(raw.reductionLast) ?? walkOrNull(raw.reduction),
          elementwise: walkOrNull(raw.elementwiseLast) ?? walkOrNull(raw.elementwise),
        }
      : null,
    arithmetic: raw.arithmetic as PhasePlan['arithmetic'],
    block: raw.blockChannels > 0 ? { channels: raw.blockChannels, rows: raw.blockRows } : null,
    streamed: raw.streamed,
    ranges: raw.ranges,
  };
}

/**
 * The walks the kernels take for a call on `input` (the same tensor a call would get: its dtype,
 * shape and memory format decide), for each phase, without running anything. `reference: true` asks
 * about the scalar oracle the tests compare against; `threads` (1 to 256) about a call on that many
 * threads instead of this thread's count. For tests and benchmarks; the answer may change between
 * versions and kernel paths.
 */
export function kernelPlan(input: Tensor, options: { reference?: boolean; threads?: number } = {}): KernelPlan {
  const x = checkTensor(input, 'input');
  const opts = checkOptions(options, 'options', ['reference', 'threads']);
  const reference = checkBoolean(opts.reference, 'options.reference', false);
  const requested = opts.threads ?? getNumThreads();
  if (typeof requested !== 'number') throw invalidType('options.threads', 'an integer from 1 to 256', requested);
  if (!Number.isInteger(requested) || requested < 1 || requested > 256) {
    throw new RangeError(`Expected an integer from 1 to 256 for options.threads but received ${requested}`);
  }
  const float64 = dtypeName(x.data) === 'float64';
  const plan = (phase: 0 | 1 | 2) =>
    native().kernelPlan(float64, x.kernelBatch, x.channels, x.kernelSpatial, phase, reference, requested);
  const training = plan(0);
  return {
    capability: reference ? 'reference' : native().cpuCapability(),
    caches: native().cacheSizes(),
    threads: training.threads,
    trainingForward: phasePlan(training),
    evalForward: phasePlan(plan(1)),
    backward: phasePlan(plan(2)),
  };
}
