// What the kernels would do for a tensor: the planner's answer (native/kernel/cpu/parts/planner.h),
// for tests that name the walks they cover and for `npm run bench`.
import type { NativeCacheSizes, NativeWalkPlan } from '../binding';
import { native } from './native';
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
  /** Whether outputs are written with non-temporal stores. */
  streamed: boolean;
}

/** The kernels' plan for each phase of a call on `input`. */
export interface KernelPlan {
  capability: string;
  /**
   * The caches the plan is sized by: from Linux sysfs, macOS sysctl, CPUID's cache leaves, or the
   * fallback (1 MB L2, 32 MB last level per core complex). Blocks aim at a quarter of the L2; outputs of
   * a quarter of the last level and more are streamed.
   */
  caches: NativeCacheSizes;
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
  };
}

/**
 * The walks the kernels take for a call on `input` (the same tensor a call would get: its dtype,
 * shape and memory format decide), for each phase, without running anything. `reference: true` asks
 * about the scalar oracle the tests compare against. For tests and benchmarks; the answer may change
 * between versions and kernel paths.
 */
export function kernelPlan(input: Tensor, options: { reference?: boolean } = {}): KernelPlan {
  const x = checkTensor(input, 'input');
  const reference = options.reference === true;
  const float64 = dtypeName(x.data) === 'float64';
  const plan = (phase: 0 | 1 | 2) =>
    phasePlan(native().kernelPlan(float64, x.kernelBatch, x.channels, x.kernelSpatial, phase, reference));
  return {
    capability: reference ? 'reference' : native().cpuCapability(),
    caches: native().cacheSizes(),
    trainingForward: plan(0),
    evalForward: plan(1),
    backward: plan(2),
  };
}
