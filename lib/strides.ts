// Tensors handed over by other libraries with `stride` and `offset` (in elements, the ndarray /
// @stdlib/ndarray convention). Strides of the contiguous or channels-last layout run in place (a
// subarray at the offset); any other strides (transposed, sliced, broadcast with stride 0, reversed)
// are gathered into a new contiguous array, the documented copy.
import { formatShape, invalidType, invalidValue } from './errors';
import { elementCount, ownValue, typedArrayKind } from './intrinsics';
import type { FloatArray, MemoryFormat } from './tensor';

export interface StridedLayout {
  /** The layouts the strides describe (both when size-1 dimensions make them coincide); empty: a copy is needed. */
  layouts: MemoryFormat[];
  offset: number;
  strides: number[];
}

/** Row-major strides of `sizes` with the dimensions visited in `order` (outermost first). */
function denseStrides(sizes: readonly number[], order: readonly number[]): number[] {
  const strides = new Array<number>(sizes.length).fill(0);
  let step = 1;
  for (let i = order.length - 1; i >= 0; i--) {
    strides[order[i]!] = step;
    step *= sizes[order[i]!]!;
  }
  return strides;
}

/** Whether `strides` match `expected` (a dimension of size 1 may have any stride, as in PyTorch). */
function matches(sizes: readonly number[], strides: readonly number[], expected: readonly number[]): boolean {
  return sizes.every((size, i) => size === 1 || strides[i] === expected[i]);
}

/** The dimension order of the channels-last layout: N, *spatial, C. */
export function channelsLastOrder(rank: number): number[] {
  return [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2), 1];
}

/**
 * Reads and checks `stride` / `offset` of a tensor object; null when it has neither. Every element
 * the strides reach must lie inside `data`.
 */
export function checkStrides(value: object, name: string, sizes: readonly number[], data: FloatArray): StridedLayout | null {
  const rawStride = ownValue(value, 'stride');
  const rawOffset = ownValue(value, 'offset');
  if (rawStride === undefined && rawOffset === undefined) return null;
  const offset = rawOffset ?? 0;
  if (typeof offset !== 'number') throw invalidType(`${name}.offset`, 'a non-negative integer', offset);
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalidValue(`${name}.offset`, 'a non-negative integer', offset);
  let strides: number[];
  if (rawStride === undefined) {
    strides = denseStrides(sizes, sizes.map((_, i) => i));
  } else {
    if (!Array.isArray(rawStride) || rawStride.length !== sizes.length) {
      throw invalidType(`${name}.stride`, `an array of ${sizes.length} integers (one per dimension)`, rawStride);
    }
    strides = sizes.map((_, i) => {
      const stride = ownValue(rawStride, i);
      if (typeof stride !== 'number' || !Number.isSafeInteger(stride)) {
        throw invalidType(`${name}.stride[${i}]`, 'an integer', stride);
      }
      return stride;
    });
  }
  const empty = sizes.some((size) => size === 0);
  if (!empty) {
    let lowest = offset;
    let highest = offset;
    sizes.forEach((size, i) => {
      const reach = (size - 1) * strides[i]!;
      if (reach < 0) lowest += reach;
      else highest += reach;
    });
    const length = elementCount(data);
    if (lowest < 0 || highest >= length) {
      throw new RangeError(
        `${name}.stride [${strides.join(', ')}] and offset ${offset} of shape ${formatShape(sizes)} reach elements ` +
          `${lowest} to ${highest}, outside ${name}.data (${length} elements)`,
      );
    }
  }
  const layouts: MemoryFormat[] = [];
  if (empty || matches(sizes, strides, denseStrides(sizes, sizes.map((_, i) => i)))) layouts.push('contiguous');
  if ((sizes.length === 4 || sizes.length === 5) && (empty || matches(sizes, strides, denseStrides(sizes, channelsLastOrder(sizes.length))))) {
    layouts.push('channelsLast');
  }
  return { layouts, offset, strides };
}

/** The elements `strides` and `offset` reach, gathered into a new contiguous (row-major) array. */
export function gatherContiguous(data: FloatArray, sizes: readonly number[], { offset, strides }: StridedLayout): FloatArray {
  const total = sizes.reduce((a, b) => a * b, 1);
  const out = typedArrayKind(data) === 'Float64Array' ? new Float64Array(total) : new Float32Array(total);
  if (total === 0) return out;
  // An odometer over the logical index, innermost dimension in the loop.
  const rank = sizes.length;
  const inner = sizes[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const index = new Array<number>(rank - 1).fill(0);
  let base = offset;
  for (let written = 0; written < total; ) {
    for (let k = 0, source = base; k < inner; k++, source += innerStride) out[written++] = data[source]!;
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      base += strides[d]!;
      if (index[d]! < sizes[d]!) break;
      base -= strides[d]! * sizes[d]!;
      index[d] = 0;
    }
  }
  return out;
}
