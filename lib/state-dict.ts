import { describeValue, formatShape, invalidType } from './errors';
import { elementCount, hasOwn, typedArrayKind } from './intrinsics';
import { type ArrayOf, type DType, type FloatArray, isFloatArray } from './tensor';
import { checkBoolean, checkOptions } from './validate';

/** A state dict: PyTorch's keys mapped to typed arrays (`num_batches_tracked` as int64). */
export type StateDict = Record<string, FloatArray | BigInt64Array>;

/**
 * A batch-norm module's own state dict, typed per key (the keys present depend on `affine` and
 * `trackRunningStats`).
 */
export type BatchNormStateDict<D extends DType = DType> = {
  weight?: ArrayOf<D>;
  bias?: ArrayOf<D>;
  running_mean?: ArrayOf<D>;
  running_var?: ArrayOf<D>;
  num_batches_tracked?: BigInt64Array;
};

export interface StateDictOptions {
  /** Put before every key, e.g. `'bn1.'` or `'features.1.'`. Default ''. */
  prefix?: string;
}

/** What {@link loadIntoModule} accepts for `num_batches_tracked`. */
export type StateDictInput = Record<string, FloatArray | BigInt64Array | number | bigint>;

export interface LoadStateDictOptions {
  /** Require exactly the module's keys (among those with the prefix). Default true. */
  strict?: boolean;
  /** Only keys starting with this belong to the module (and lose it); e.g. `'1.'` in an `nn.Sequential`. Default ''. */
  prefix?: string;
}

/** Keys that were missing from, or unexpected in, a non-strict load (PyTorch's `_IncompatibleKeys`). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** The module surface state-dict loading needs (kept structural to avoid an import cycle). */
interface LoadTarget {
  readonly numFeatures: number;
  readonly dtype: 'float32' | 'float64';
  readonly weight: { data: FloatArray } | null;
  readonly bias: { data: FloatArray } | null;
  readonly runningMean: FloatArray | null;
  readonly runningVar: FloatArray | null;
  numBatchesTracked: number;
  readonly constructor: { name: string };
}

const COUNTER_KEY = 'num_batches_tracked';
const LOAD_KEYS = ['strict', 'prefix'] as const;
const STATE_DICT_KEYS = ['prefix'] as const;

function checkPrefix(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw invalidType('options.prefix', 'a string', value);
  return value;
}

export function checkStateDictOptions(options: unknown): { prefix: string } {
  return { prefix: checkPrefix(checkOptions(options, 'options', STATE_DICT_KEYS).prefix) };
}

function expectedKeys(module: LoadTarget): string[] {
  const keys: string[] = [];
  if (module.weight !== null) keys.push('weight', 'bias');
  if (module.runningMean !== null) keys.push('running_mean', 'running_var', COUNTER_KEY);
  return keys;
}

function targetArray(module: LoadTarget, key: string): FloatArray {
  switch (key) {
    case 'weight':
      return module.weight!.data;
    case 'bias':
      return module.bias!.data;
    case 'running_mean':
      return module.runningMean!;
    default:
      return module.runningVar!;
  }
}

function checkCounter(value: unknown): number {
  let count: bigint | number;
  const kind = typedArrayKind(value);
  if (kind === 'BigInt64Array' || kind === 'BigUint64Array') {
    const length = elementCount(value as BigInt64Array);
    if (length !== 1) {
      throw new RangeError(`size mismatch for ${COUNTER_KEY}: expected 1 element but received ${length}`);
    }
    count = (value as BigInt64Array)[0]!;
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    count = value;
  } else {
    throw new TypeError(
      `Expected a BigInt64Array of length 1 or an integer for ${COUNTER_KEY} but received ${describeValue(value)}`,
    );
  }
  const asNumber = Number(count);
  if (!Number.isSafeInteger(asNumber) || asNumber < 0) {
    throw new RangeError(`Expected a non-negative safe integer for ${COUNTER_KEY} but received ${String(count)}`);
  }
  return asNumber;
}

/** The own entries whose key starts with `prefix`, the prefix removed (a null-prototype object). */
function withoutPrefix(stateDict: object, prefix: string): Record<string, unknown> {
  const entries = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(stateDict)) {
    if (key.startsWith(prefix)) entries[key.slice(prefix.length)] = (stateDict as Record<string, unknown>)[key];
  }
  return entries;
}

/**
 * Loads `stateDict` into `module`. Every entry is checked before anything is copied, so a load that
 * throws leaves the module unchanged. Errors: unknown/missing keys (strict) as RangeError listing them all,
 * wrong dtype as TypeError, wrong length as RangeError (PyTorch's "size mismatch" wording).
 */
export function loadIntoModule(module: LoadTarget, stateDict: unknown, options: unknown): LoadStateDictResult {
  const opts = checkOptions(options, 'options', LOAD_KEYS);
  const strict = checkBoolean(opts.strict, 'options.strict', true);
  const prefix = checkPrefix(opts.prefix);
  if (typeof stateDict !== 'object' || stateDict === null || Array.isArray(stateDict) || ArrayBuffer.isView(stateDict)) {
    throw new TypeError(`Expected a state dict object for stateDict but received ${describeValue(stateDict)}`);
  }
  const entries = withoutPrefix(stateDict, prefix);
  const wanted = expectedKeys(module);
  // Own keys only: a polluted Object.prototype must not supply an entry.
  const missingKeys = wanted.filter((key) => !hasOwn(entries, key) && key !== COUNTER_KEY);
  const unexpectedKeys = Object.keys(entries).filter((key) => !wanted.includes(key));
  const className = module.constructor.name;
  if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
    const parts: string[] = [];
    const quoted = (keys: string[]) => keys.map((k) => `"${prefix}${k}"`).join(', ');
    if (missingKeys.length > 0) parts.push(`Missing key(s) in state_dict: ${quoted(missingKeys)}.`);
    if (unexpectedKeys.length > 0) parts.push(`Unexpected key(s) in state_dict: ${quoted(unexpectedKeys)}.`);
    throw new RangeError(`Error(s) in loading state_dict for ${className}: ${parts.join(' ')}`);
  }

  const arrayName = module.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  const copies: [FloatArray, FloatArray][] = [];
  let counter: number | null = null;
  for (const key of wanted) {
    if (!hasOwn(entries, key)) continue;
    const value = entries[key];
    if (key === COUNTER_KEY) {
      counter = checkCounter(value);
      continue;
    }
    const target = targetArray(module, key);
    if (!isFloatArray(value) || typedArrayKind(value) !== typedArrayKind(target)) {
      throw new TypeError(
        `Expected a ${arrayName} for ${key} (the module's dtype is ${module.dtype}) but received ${describeValue(value)}`,
      );
    }
    if (elementCount(value) !== target.length) {
      throw new RangeError(
        `size mismatch for ${key}: copying a param with shape ${formatShape([elementCount(value)])} from checkpoint, ` +
          `the shape in current model is ${formatShape([target.length])}`,
      );
    }
    copies.push([target, value]);
  }
  if (module.runningMean !== null && !hasOwn(entries, COUNTER_KEY)) counter = 0;

  for (const [target, value] of copies) target.set(value);
  if (counter !== null) module.numBatchesTracked = counter;
  return { missingKeys: missingKeys.map((k) => prefix + k), unexpectedKeys: unexpectedKeys.map((k) => prefix + k) };
}
