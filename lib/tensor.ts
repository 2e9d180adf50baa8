import { Buffer } from 'node:buffer';

import { describeValue, formatShape, invalidType, invalidValue } from './errors';
import { bufferOf, byteLengthOf, byteOffsetOf, elementCount, hasOwn, ownValue, subarrayOf, typedArrayKind } from './intrinsics';
import { native } from './native';
import { checkStrides, gatherContiguous } from './strides';

/** The element types batch norm works on: float32 and float64. */
export type FloatArray = Float32Array | Float64Array;

/** A dtype name, as PyTorch spells `torch.float32` / `torch.float64`. */
export type DType = 'float32' | 'float64';

/** The typed array of a dtype: `Float32Array` for `'float32'`, `Float64Array` for `'float64'`. */
export type ArrayOf<D extends DType> = D extends 'float32' ? Float32Array : Float64Array;

/** The dtype of a typed array type. */
export type DTypeOf<A extends FloatArray> = A extends Float32Array ? 'float32' : 'float64';

/** How a tensor's elements are laid out in `data`. */
export type MemoryFormat = 'contiguous' | 'channelsLast';

/**
 * A tensor: a typed array and its logical shape `(N, C, *spatial)`, rank 2 to 5.
 * `data` is used in place (zero-copy), including `subarray()` views at a byte offset.
 */
export interface Tensor<A extends FloatArray = FloatArray> {
  data: A;
  shape: readonly number[];
  /**
   * `'contiguous'` (NCHW, row-major over the logical shape; the default) or `'channelsLast'` (rank 4/5
   * stored as N, *spatial, C: NHWC / NDHWC, as PyTorch's `torch.channels_last`). The shape stays logical.
   */
  memoryFormat?: MemoryFormat;
  /**
   * Element strides per dimension (the `ndarray` convention), for data that is a view into a larger
   * array. Strides of the contiguous or channels-last layout run in place; any others (transposed,
   * sliced, broadcast, reversed) are copied into a new contiguous array first.
   */
  stride?: readonly number[];
  /** Index in `data` of the element at index 0 (with `stride`). Default 0. */
  offset?: number;
}

/** A validated tensor with the sizes the native kernels work with. */
export interface CheckedTensor {
  data: FloatArray;
  shape: number[];
  memoryFormat: MemoryFormat;
  /** N, the first dimension. */
  batch: number;
  /** C, the second dimension. */
  channels: number;
  /** Product of the spatial dimensions (1 for a rank-2 tensor). */
  spatial: number;
  /** Elements in all: the length of `data`. */
  elements: number;
  /** Whether `data` is a copy gathered from a strided view (not the caller's memory). */
  gathered: boolean;
  /** A module input given without its batch dimension (InstanceNorm); `shape` has it added. */
  unbatched?: boolean;
  /**
   * The (batch, channels, spatial) the kernels traverse: the logical sizes for a contiguous tensor; for a
   * channels-last one (N * spatial, C, 1), since its memory is exactly a contiguous (N * spatial, C) matrix.
   */
  kernelBatch: number;
  kernelSpatial: number;
}

/** A Float32Array or Float64Array, from this realm or another (checked by kind, not by constructor). */
export function isFloatArray(value: unknown): value is FloatArray {
  const kind = typedArrayKind(value);
  return kind === 'Float32Array' || kind === 'Float64Array';
}

export function isFloat32Array(value: unknown): value is Float32Array {
  return typedArrayKind(value) === 'Float32Array';
}

export function dtypeName(array: FloatArray): 'float32' | 'float64' {
  return isFloat32Array(array) ? 'float32' : 'float64';
}

/** A new zero-filled array of `like`'s element type. */
export function newLike(like: FloatArray, length: number): FloatArray {
  return isFloat32Array(like) ? new Float32Array(length) : new Float64Array(length);
}

// Captured at load, as the intrinsics are: a script that replaces Buffer.allocUnsafeSlow later cannot
// hand the kernels a buffer of its choosing.
const allocateUninitialized = Buffer.allocUnsafeSlow.bind(Buffer);
/**
 * Outputs from this size up skip the zero fill. Below it the fill is cheap (glibc serves such sizes from
 * fresh mappings whose pages the kernel zeroes anyway) and the Buffer costs an object more: (128, 1024)
 * calls, 512 KB outputs, were 1.1x slower uninitialized (docs/PERFORMANCE.md, "The allocating path").
 */
const UNINITIALIZED_MIN_BYTES = 1 << 20;
/**
 * Outputs from this size up (two 2 MB pages, so that at least one whole aligned one lies inside) get
 * transparent huge pages on Linux when their memory is fresh. With glibc's default settings a large
 * output mostly is: the garbage collector frees earlier outputs in batches, and glibc returns the memory
 * to the system in between, so the kernel's first write faulted in 4 KB pages, 1,400 to 3,300 faults a
 * call that cost more than the call ((8, 32, 128, 128) module eval without `out`, 2 threads: 3.2 to 5.7
 * ms a call against 1.7 to 3.2 ms advised; docs/PERFORMANCE.md, "Huge pages for fresh outputs").
 */
const HUGE_PAGE_ADVICE_MIN_BYTES = 4 << 20;
const ADVISES_HUGE_PAGES = process.platform === 'linux';

/**
 * A new array of `like`'s element type for an output the kernel writes whole before anyone can read it
 * (a forward's result, a gradInput; test/functional.test.ts proves every kernel overwrites all of a
 * NaN-filled output). A large one comes from uninitialized memory: zero-filled, it costs a pass of its
 * own before the kernel's ((32, 64, 56, 56) calls 1.2x-1.3x, (256, 256, 7, 7) eval 1.9x faster without
 * it on the main thread, 1.5x-1.8x in a worker). The kernel writes every byte either way, so the
 * resident set is the same (docs/PERFORMANCE.md, "The allocating path").
 */
export function newOutputLike(like: FloatArray, length: number): FloatArray {
  const float32 = isFloat32Array(like);
  const bytes = length * (float32 ? 4 : 8);
  if (bytes < UNINITIALIZED_MIN_BYTES) return newLike(like, length);
  // A Buffer of this size owns its ArrayBuffer alone (Node pools only small ones), from offset 0.
  const buffer = bufferOf(allocateUninitialized(bytes));
  const output = float32 ? new Float32Array(buffer, 0, length) : new Float64Array(buffer, 0, length);
  if (ADVISES_HUGE_PAGES && bytes >= HUGE_PAGE_ADVICE_MIN_BYTES) native().adviseHugePages(output);
  return output;
}

const MIN_RANK = 2;
const MAX_RANK = 5;

const TENSOR_KEYS = ['data', 'shape', 'memoryFormat', 'stride', 'offset'];
/** The spellings other libraries use for a tensor key (numpy, TF.js, @stdlib/ndarray, PyTorch). */
const TENSOR_KEY_ALIASES: Record<string, string> = {
  strides: 'stride',
  memory_format: 'memoryFormat',
  format: 'memoryFormat',
  layout: 'memoryFormat',
  buffer: 'data',
  values: 'data',
  dims: 'shape',
  size: 'shape',
};

/**
 * A tensor object has only the known keys, as an options object: an unknown one (`strides` for
 * `stride`) would otherwise be ignored and the data read in the wrong layout. (A for-in loop that
 * compares names: 6 ns a tensor, where Object.keys and a list lookup took 18 ns.)
 */
function checkTensorKeys(value: object, name: string): void {
  for (const key in value) {
    if (key === 'data' || key === 'shape' || key === 'memoryFormat' || key === 'stride' || key === 'offset') continue;
    // Inherited enumerable keys (a polluted prototype) are never read, so they are no error either.
    if (hasOwn(value, key)) throw unknownTensorKey(value, key, name);
  }
}

function unknownTensorKey(value: object, key: string, name: string): TypeError {
  if (hasOwn(value, '_buffer') && hasOwn(value, '_strides') && value.constructor?.name === 'ndarray') {
    // @stdlib/ndarray keeps its fields private and reads them through accessors on its prototype,
    // which a tensor object never reads (a polluted prototype could supply them).
    return new TypeError(
      `Expected a tensor object { data, shape, stride?, offset? } for ${name} but received a @stdlib/ndarray ndarray, ` +
        'whose fields are accessors on its prototype: pass { data: x.data, shape: x.shape, stride: x.strides, offset: x.offset }',
    );
  }
  const alias = ownValue(TENSOR_KEY_ALIASES, key) as string | undefined;
  const hint = alias === undefined ? '' : ` (did you mean '${alias}'?)`;
  return new TypeError(`Unknown key '${key}' in ${name}${hint}; a tensor object has only: ${TENSOR_KEYS.join(', ')}`);
}

/** Checks a tensor argument and returns a detached, plain copy of its description (not of its data). */
export function checkTensor(value: unknown, name: string): CheckedTensor {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) {
    throw invalidType(name, 'a tensor object { data, shape }', value);
  }
  checkTensorKeys(value, name);
  // Own properties only: a polluted Object.prototype must not supply a memoryFormat.
  const data = ownValue(value, 'data');
  const shape = ownValue(value, 'shape');
  const memoryFormat = ownValue(value, 'memoryFormat');
  if (!isFloatArray(data)) throw invalidType(`${name}.data`, 'a Float32Array or Float64Array', data);
  if (!Array.isArray(shape)) throw invalidType(`${name}.shape`, 'an array of dimension sizes', shape);
  if (shape.length < MIN_RANK || shape.length > MAX_RANK) {
    throw new RangeError(
      `Expected ${name}.shape of rank ${MIN_RANK} to ${MAX_RANK} (N, C, *spatial) but received ${shape.length}D shape`,
    );
  }
  const sizes: number[] = [];
  let elements = 1;
  for (let i = 0; i < shape.length; i++) {
    const size: unknown = ownValue(shape, i);
    if (typeof size !== 'number') throw invalidType(`${name}.shape[${i}]`, 'a non-negative integer', size);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw invalidValue(`${name}.shape[${i}]`, 'a non-negative integer', size);
    }
    elements *= size;
    if (elements > Number.MAX_SAFE_INTEGER) {
      throw new RangeError(`${name}.shape ${formatShape(shape as number[])} has too many elements`);
    }
    sizes.push(size);
  }
  if (memoryFormat !== undefined && memoryFormat !== 'contiguous' && memoryFormat !== 'channelsLast') {
    throw invalidType(`${name}.memoryFormat`, "'contiguous' or 'channelsLast'", memoryFormat);
  }
  const strided = checkStrides(value, name, sizes, data);
  let elementsData: FloatArray = data;
  let format = memoryFormat as MemoryFormat | undefined;
  let gathered = false;
  if (strided === null) {
    const length = elementCount(data);
    if (elements !== length) {
      const detached = length === 0 && byteLengthOf(data) === 0 ? ' (is its ArrayBuffer detached?)' : '';
      throw new RangeError(
        `${name}.shape ${formatShape(sizes)} describes ${elements} elements but ${name}.data has ${length}${detached}`,
      );
    }
  } else if (strided.layouts.length === 0) {
    if (format !== undefined) {
      throw new RangeError(`${name}.stride [${strided.strides.join(', ')}] is neither layout, so ${name}.memoryFormat cannot be '${format}'`);
    }
    elementsData = gatherContiguous(data, sizes, strided);
    gathered = true;
  } else {
    if (format !== undefined && !strided.layouts.includes(format)) {
      throw new RangeError(`${name}.stride [${strided.strides.join(', ')}] describes the ${strided.layouts[0]} layout, not ${name}.memoryFormat '${format}'`);
    }
    format ??= strided.layouts[0];
    elementsData = subarrayOf(data, strided.offset, strided.offset + elements);
  }
  if (format === 'channelsLast' && sizes.length !== 4 && sizes.length !== 5) {
    throw new RangeError(
      `${name}.memoryFormat 'channelsLast' needs a rank-4 or rank-5 shape (N, C, H, W) or (N, C, D, H, W) but ` +
        `${name}.shape is ${formatShape(sizes)}`,
    );
  }
  let spatial = 1;
  for (let i = 2; i < sizes.length; i++) spatial *= sizes[i]!;
  const channelsLast = format === 'channelsLast';
  return {
    data: elementsData,
    shape: sizes,
    memoryFormat: format ?? 'contiguous',
    batch: sizes[0]!,
    channels: sizes[1]!,
    spatial,
    elements,
    gathered,
    kernelBatch: channelsLast ? sizes[0]! * spatial : sizes[0]!,
    kernelSpatial: channelsLast ? 1 : spatial,
  };
}

/** Checks an optional per-channel array (weight, bias, running stats): dtype of the input, length C. */
export function checkChannelArray(value: unknown, name: string, input: CheckedTensor): FloatArray | null {
  if (value === undefined || value === null) return null;
  checkSameDtype(value, name, input.data);
  const length = elementCount(value);
  if (length !== input.channels) {
    throw new RangeError(`${name} should contain ${input.channels} elements not ${length}`);
  }
  return value;
}

/** Checks that `value` is a typed array of the same element type as `like` (the input's data). */
export function checkSameDtype(value: unknown, name: string, like: FloatArray): asserts value is FloatArray {
  if (!isFloatArray(value)) throw invalidType(name, 'a Float32Array or Float64Array', value);
  if (typedArrayKind(value) !== typedArrayKind(like)) {
    throw new TypeError(
      `Expected a ${typedArrayKind(like)} for ${name} (the input's dtype is ${dtypeName(like)}) but received ${describeValue(value)}`,
    );
  }
}

/** Whether two arrays share any byte of memory. */
export function overlaps(a: FloatArray, b: FloatArray): boolean {
  if (bufferOf(a) !== bufferOf(b)) return false;
  const aBegin = byteOffsetOf(a), aEnd = aBegin + byteLengthOf(a);
  const bBegin = byteOffsetOf(b), bEnd = bBegin + byteLengthOf(b);
  return aBegin < bEnd && bBegin < aEnd && aEnd > aBegin && bEnd > bBegin;
}

export interface NamedArray {
  name: string;
  array: FloatArray | null;
  written: boolean;
}

/**
 * Arrays a call writes must not share memory with any other argument, or the result would depend on
 * the order of the kernel's loops. `inPlace` names one pair that may be exactly the same view.
 */
export function checkNoOverlap(arrays: NamedArray[], inPlace?: [string, string]): void {
  // Arrays that are only read cannot conflict: without a written one there is nothing to check (and
  // reading a small typed array's buffer costs a materialization of it).
  let anyWritten = false;
  for (let i = 0; i < arrays.length; i++) anyWritten ||= arrays[i]!.written && arrays[i]!.array !== null;
  if (!anyWritten) return;
  // Buffers once per array; offsets only for the rare pair that shares a buffer.
  const buffers = arrays.map(({ array }) => (array === null ? null : bufferOf(array)));
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i]!;
    if (a.array === null) continue;
    for (let j = i + 1; j < arrays.length; j++) {
      const b = arrays[j]!;
      if ((!a.written && !b.written) || b.array === null || buffers[i] !== buffers[j]) continue;
      const aBegin = byteOffsetOf(a.array), aEnd = aBegin + byteLengthOf(a.array);
      const bBegin = byteOffsetOf(b.array), bEnd = bBegin + byteLengthOf(b.array);
      if (aBegin >= bEnd || bBegin >= aEnd) continue;
      const allowed = inPlace !== undefined && inPlace.includes(a.name) && inPlace.includes(b.name);
      if (allowed && aBegin === bBegin && aEnd === bEnd) continue;
      const hint = allowed ? ' (it may be exactly the same view, for an in-place call)' : '';
      throw new RangeError(`${a.name} and ${b.name} must not overlap in memory${hint}`);
    }
  }
}
