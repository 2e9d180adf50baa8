// The options of the batch-norm family's modules, their types and their validation, done once: the
// constructor keeps the plain values checkModuleOptions returns (norm-base.ts).
import { describeValue, invalidType, invalidValue } from './errors';
import { DEFAULT_EPS, DEFAULT_MOMENTUM } from './functional';
import type { ArrayOf, DType, FloatArray } from './tensor';
import { checkBoolean, checkEps, checkFiniteNumber, checkOptions } from './validate';

/**
 * A trainable per-channel array and its accumulated gradient (null until a backward pass, or after
 * zeroGrad), as a PyTorch `nn.Parameter`.
 */
export interface Parameter<A extends FloatArray = FloatArray> {
  data: A;
  grad: A | null;
  /**
   * Whether backward computes this parameter's gradient (true for a new module). Set it to false to
   * freeze the parameter, as fine-tuning does: backward then neither computes nor accumulates its
   * gradient (PyTorch's `requires_grad_(False)`, which skips that work through the output mask).
   */
  requiresGrad: boolean;
}

/** Options of {@link BatchNormBase.namedParameters} and {@link BatchNormBase.namedBuffers}. */
export interface NamedOptions {
  /** Put before every name, as a layer's names are in a whole model (`'bn1.'` gives `'bn1.weight'`). */
  prefix?: string;
}

/** Options of the batch-norm family; names and defaults follow `torch.nn.BatchNorm2d`. */
export interface BatchNormModuleOptions<D extends DType = DType> {
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Running-stat update factor; `null` uses a cumulative moving average. Default 0.1. */
  momentum?: number | null;
  /** Learnable weight (init 1) and bias (init 0). Default true (false for InstanceNorm). */
  affine?: boolean;
  /** Keep running_mean/running_var/num_batches_tracked and use them in eval mode. Default true (false for InstanceNorm). */
  trackRunningStats?: boolean;
  /** Element type of parameters, buffers and accepted inputs. Default 'float32'. */
  dtype?: D;
  /**
   * Check at each backward that the input's data is what the forward read, and throw a
   * {@link BatchNormStateError} before writing anything if not (PyTorch detects the same misuse with
   * version counters). It costs a pass over the input at forward and another at backward, on the
   * calling thread, so it is off by default: turn it on while developing a training loop. Default false.
   */
  checkInputUnchanged?: boolean;
}

/** Options of a module's forward: where to write the output. */
export interface ModuleForwardOptions<D extends DType = DType> {
  /**
   * Destination for the output (the input's element count and dtype, in the output's layout), reused
   * across steps instead of a new array per call. May be the input's own elements (in place); then
   * backward, which reads the forward's input, must come before the input is overwritten again.
   */
  out?: ArrayOf<D>;
}

/** Options of a module's backward: where to write the input gradient. */
export interface ModuleBackwardOptions<D extends DType = DType> {
  /** `gradInput`: destination for the gradient w.r.t. the input (input-sized, in the input's layout). */
  out?: { gradInput?: ArrayOf<D> };
}

/** Passed by the Lazy classes for numFeatures: the only way to make a module without a size. */
export const LAZY_FEATURES: unique symbol = Symbol('lazy numFeatures');

const MODULE_KEYS = ['eps', 'momentum', 'affine', 'trackRunningStats', 'dtype', 'checkInputUnchanged'] as const;
const NAMED_KEYS = ['prefix'] as const;
export const FORWARD_CALL_KEYS = ['out'] as const;
export const BACKWARD_CALL_KEYS = ['out'] as const;
export const BACKWARD_OUT_KEYS = ['gradInput'] as const;

/** A new zero-filled array of a dtype. */
export function newArray<D extends DType>(dtype: D, length: number): ArrayOf<D> {
  return (dtype === 'float32' ? new Float32Array(length) : new Float64Array(length)) as ArrayOf<D>;
}

function checkDType(value: unknown, name: string): DType {
  if (value !== undefined && value !== 'float32' && value !== 'float64') {
    throw invalidType(name, "'float32' or 'float64'", value);
  }
  return (value as DType | undefined) ?? 'float32';
}

/** PyTorch's message for an input rank a class does not take. */
export function rankError(expected: string, rank: number): RangeError {
  return new RangeError(`expected ${expected} input (got ${rank}D input)`);
}

/** The defaults a class gives `affine` and `trackRunningStats`. */
export interface ModuleDefaults {
  affine: boolean;
  trackRunningStats: boolean;
}

/** A module's options, validated once: what the constructor keeps. */
export interface ValidatedModuleOptions<D extends DType> {
  eps: number;
  momentum: number | null;
  affine: boolean;
  trackRunningStats: boolean;
  dtype: D;
  checkInputUnchanged: boolean;
}

/**
 * Checks numFeatures (a positive integer, or {@link LAZY_FEATURES} from a Lazy class) and the options
 * (unknown keys, types and values, each error naming its argument), and fills in the class's defaults.
 */
export function checkModuleOptions<D extends DType>(
  numFeatures: unknown,
  options: BatchNormModuleOptions<D> | undefined,
  defaults: ModuleDefaults,
): ValidatedModuleOptions<D> {
  if (numFeatures !== LAZY_FEATURES) {
    if (typeof numFeatures !== 'number') {
      const lazy = numFeatures === null || numFeatures === undefined ? ' (only the Lazy classes, such as LazyBatchNorm2d, infer it from the input)' : '';
      throw new TypeError(`Expected a positive integer for numFeatures but received ${describeValue(numFeatures)}${lazy}`);
    }
    if (!Number.isSafeInteger(numFeatures) || numFeatures < 1) {
      throw invalidValue('numFeatures', 'a positive integer', numFeatures);
    }
  }
  const opts = checkOptions(options, 'options', MODULE_KEYS);
  return {
    eps: checkEps(opts.eps, 'options.eps', DEFAULT_EPS),
    momentum: opts.momentum === null ? null : checkFiniteNumber(opts.momentum, 'options.momentum', DEFAULT_MOMENTUM),
    affine: checkBoolean(opts.affine, 'options.affine', defaults.affine),
    trackRunningStats: checkBoolean(opts.trackRunningStats, 'options.trackRunningStats', defaults.trackRunningStats),
    dtype: checkDType(opts.dtype, 'options.dtype') as D,
    checkInputUnchanged: checkBoolean(opts.checkInputUnchanged, 'options.checkInputUnchanged', false),
  };
}

export function checkNamedOptions(options: unknown): { prefix: string } {
  const { prefix } = checkOptions(options, 'options', NAMED_KEYS);
  if (prefix !== undefined && typeof prefix !== 'string') throw invalidType('options.prefix', 'a string', prefix);
  return { prefix: prefix ?? '' };
}
