import { describeValue, formatShape, invalidType, invalidValue } from './errors';

/** The element types batch norm works on: float32 and float64. */
export type FloatArray = Float32Array | Float64Array;

/** How a tensor's elements are laid out in `data`. */
export type MemoryFormat = 'contiguous' | 'channelsLast';

/**
 * A tensor: a typed array and its logical shape `(N, C, *spatial)`, rank 2 to 5.
 * `data` is used in place (zero-copy), including `subarray()` views at a byte offset.
 */
export interface Tensor {
  data: FloatArray;
  shape: readonly number[];
  /**
   * `'contiguous'` (NCHW, row-major over the logical shape; the default) or `'channelsLast'` (rank 4/5
   * stored as N, *spatial, C: NHWC / NDHWC, as PyTorch's `torch.channels_last`). The shape stays logical.
   */
  memoryFormat?: MemoryFormat;
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
  /**
   * The (batch, channels, spatial) the kernels traverse: the logical sizes for a contiguous tensor; for a
   * channels-last one (N * spatial, C, 1), since its memory is exactly a contiguous (N * spatial, C) matrix.
   */
  kernelBatch: number;
  kernelSpatial: number;
}

export function isFloatArray(value: unknown): value is FloatArray {
  return value instanceof Float32Array || value instanceof Float64Array;
}

export function dtypeName(array: FloatArray): 'float32' | 'float64' {
  return array instanceof Float32Array ? 'float32' : 'float64';
}

const MIN_RANK = 2;
const MAX_RANK = 5;

/** Checks a tensor argument and returns a detached, plain copy of its description (not of its data). */
export function checkTensor(value: unknown, name: string): CheckedTensor {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) {
    throw invalidType(name, 'a tensor object { data, shape }', value);
  }
  const { data, shape, memoryFormat } = value as Partial<Tensor>;
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
    const size: unknown = shape[i];
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
  if (elements !== data.length) {
    const detached = data.length === 0 && data.buffer.byteLength === 0 ? ' (is its ArrayBuffer detached?)' : '';
    throw new RangeError(
      `${name}.shape ${formatShape(sizes)} describes ${elements} elements but ${name}.data has ${data.length}${detached}`,
    );
  }
  if (memoryFormat !== undefined && memoryFormat !== 'contiguous' && memoryFormat !== 'channelsLast') {
    throw invalidType(`${name}.memoryFormat`, "'contiguous' or 'channelsLast'", memoryFormat);
  }
  if (memoryFormat === 'channelsLast' && sizes.length !== 4 && sizes.length !== 5) {
    throw new RangeError(
      `${name}.memoryFormat 'channelsLast' needs a rank-4 or rank-5 shape (N, C, H, W) or (N, C, D, H, W) but ` +
        `${name}.shape is ${formatShape(sizes)}`,
    );
  }
  let spatial = 1;
  for (let i = 2; i < sizes.length; i++) spatial *= sizes[i]!;
  const channelsLast = memoryFormat === 'channelsLast';
  return {
    data,
    shape: sizes,
    memoryFormat: memoryFormat ?? 'contiguous',
    batch: sizes[0]!,
    channels: sizes[1]!,
    spatial,
    kernelBatch: channelsLast ? sizes[0]! * spatial : sizes[0]!,
    kernelSpatial: channelsLast ? 1 : spatial,
  };
}

/** Checks an optional per-channel array (weight, bias, running stats): dtype of the input, length C. */
export function checkChannelArray(value: unknown, name: string, input: CheckedTensor): FloatArray | null {
  if (value === undefined || value === null) return null;
  checkSameDtype(value, name, input.data);
  if (value.length !== input.channels) {
    throw new RangeError(`${name} should contain ${input.channels} elements not ${value.length}`);
  }
  return value;
}

/** Checks that `value` is a typed array of the same element type as `like` (the input's data). */
export function checkSameDtype(value: unknown, name: string, like: FloatArray): asserts value is FloatArray {
  if (!isFloatArray(value)) throw invalidType(name, 'a Float32Array or Float64Array', value);
  if (value.constructor !== like.constructor) {
    throw new TypeError(
      `Expected a ${like.constructor.name} for ${name} (the input's dtype is ${dtypeName(like)}) but received ${describeValue(value)}`,
    );
  }
}

/** Whether two typed arrays share at least one byte. */
export function overlaps(a: FloatArray, b: FloatArray): boolean {
  if (a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** Whether two typed arrays view exactly the same bytes. */
export function sameView(a: FloatArray, b: FloatArray): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.byteLength === b.byteLength;
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
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i]!;
    if (a.array === null) continue;
    for (let j = i + 1; j < arrays.length; j++) {
      const b = arrays[j]!;
      if ((!a.written && !b.written) || b.array === null) continue;
      if (!overlaps(a.array, b.array)) continue;
      const allowed = inPlace !== undefined && inPlace.includes(a.name) && inPlace.includes(b.name);
      if (allowed && sameView(a.array, b.array)) continue;
      const hint = allowed ? ' (it may be exactly the same view, for an in-place call)' : '';
      throw new RangeError(`${a.name} and ${b.name} must not overlap in memory${hint}`);
    }
  }
}
