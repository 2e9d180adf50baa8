// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header mapping tensor names to { dtype, shape, data_offsets }, then the raw
// little-endian tensor bytes. Only what batch-norm state needs: F32, F64 and I64.
import { closeSync, constants, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';

import { describeValue } from './errors';
import { bufferOf, byteLengthOf, byteOffsetOf, elementCount, typedArrayKind } from './intrinsics';
import { scanHeader } from './safetensors-header';
import { readPlainHeader } from './safetensors-plain';
import type { StateDict } from './state-dict';

type SafetensorsDType = 'F32' | 'F64' | 'I64';

interface HeaderEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data_offsets: [number, number];
}

const ELEMENT_SIZE: Record<SafetensorsDType, number> = { F32: 4, F64: 8, I64: 8 };

/** The header may not exceed 100 MB, as in the reference implementation. */
const MAX_HEADER_BYTES = 100_000_000;

const COUNTER_KEY = 'num_batches_tracked';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('batchnorm safetensors support assumes a little-endian platform');
}

/** The key the format reserves for its string metadata. */
const METADATA_KEY = '__metadata__';

function dtypeOf(name: string, array: unknown): SafetensorsDType {
  const kind = typedArrayKind(array);
  if (kind === 'Float32Array') return 'F32';
  if (kind === 'Float64Array') return 'F64';
  if (kind === 'BigInt64Array') return 'I64';
  throw new TypeError(
    `Expected a Float32Array, Float64Array or BigInt64Array for stateDict.${name} but received ${describeValue(array)}`,
  );
}

/**
 * Serializes a state dict to safetensors bytes. Tensor names are the state-dict keys; per-channel arrays
 * are 1-D, and `num_batches_tracked` (also under a prefix, `bn1.num_batches_tracked`) is written as a
 * 0-d I64 tensor, as PyTorch stores it.
 */
export function toSafetensors(stateDict: StateDict, metadata?: Record<string, string>): Uint8Array {
  if (typeof stateDict !== 'object' || stateDict === null) {
    throw new TypeError(`Expected a state dict object for stateDict but received ${describeValue(stateDict)}`);
  }
  // Null prototypes: an own `__proto__` key is an ordinary name here, as in the file.
  const header = Object.create(null) as Record<string, HeaderEntry | Record<string, string>>;
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null) {
      throw new TypeError(`Expected an object of strings for metadata but received ${describeValue(metadata)}`);
    }
    const copy = Object.create(null) as Record<string, string>;
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new TypeError(`Expected a string for metadata.${key} but received ${describeValue(value)}`);
      copy[key] = value;
    }
    header[METADATA_KEY] = copy;
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, array] of Object.entries(stateDict)) {
    if (name === METADATA_KEY) {
      throw new RangeError(`stateDict cannot hold a tensor named ${METADATA_KEY}: the safetensors format reserves that key`);
    }
    const dtype = dtypeOf(name, array);
    const view = array as ArrayBufferView;
    const length = elementCount(view);
    // A layer's counter in a whole model's dict has a prefix ('bn1.num_batches_tracked'): the last
    // component of the name says what it is.
    const scalar = (name === COUNTER_KEY || name.endsWith(`.${COUNTER_KEY}`)) && length === 1;
    const bytes = new Uint8Array(bufferOf(view), byteOffsetOf(view), byteLengthOf(view));
    header[name] = { dtype, shape: scalar ? [] : [length], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const part of parts) {
    out.set(part, position);
    position += part.length;
  }
  return out;
}

/**
 * A tensor as a view of the copied data section where its offset suits its element size (the usual
 * case: writers align), else as its own copy.
 */
function tensorAt(data: Uint8Array<ArrayBuffer>, begin: number, elements: number, dtype: SafetensorsDType): StateDict[string] {
  const Kind = dtype === 'F32' ? Float32Array : dtype === 'F64' ? Float64Array : BigInt64Array;
  if (begin % Kind.BYTES_PER_ELEMENT === 0) return new Kind(data.buffer, begin, elements);
  return new Kind(data.slice(begin, begin + elements * Kind.BYTES_PER_ELEMENT).buffer);
}

function malformed(reason: string): RangeError {
  return new RangeError(`Invalid safetensors data: ${reason}`);
}

/**
 * Parses safetensors bytes into a state dict of fresh typed arrays (views of one copy of the data
 * section, or their own copy where an offset is not aligned for the element type; `bytes` is not retained).
 * A 0-d or 1-element I64 tensor becomes a BigInt64Array of length 1. Throws a RangeError naming the
 * problem for malformed input, and a TypeError for a dtype batch norm has no use for.
 */
export function fromSafetensors(input: Uint8Array): StateDict {
  return readSafetensors(input, true);
}

/**
 * {@link fromSafetensors}, with the plain-header reader switched off when `plainReader` is false (tests
 * compare the two readers; not part of the package's API).
 */
export function readSafetensors(input: Uint8Array, plainReader: boolean): StateDict {
  if (typedArrayKind(input) !== 'Uint8Array') {
    throw new TypeError(`Expected a Uint8Array for bytes but received ${describeValue(input)}`);
  }
  // Sizes from the built-in getters: an own `length` property must not make the data look longer.
  const bytes = new Uint8Array(bufferOf(input), byteOffsetOf(input), byteLengthOf(input));
  if (bytes.length < 8) throw malformed(`${bytes.length} bytes is too short for the header length`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.length) {
    throw malformed(`header length ${headerLength} exceeds the ${bytes.length - 8} bytes that follow it`);
  }
  const header = bytes.subarray(8, 8 + headerLength);
  // One copy of the whole data section: one allocation, not one per tensor (300,000 small buffers
  // spent most of their parse time in the garbage collector).
  const data = new Uint8Array(bytes.length - 8 - headerLength);
  data.set(bytes.subarray(8 + headerLength));
  return (plainReader ? tensorsOfPlainHeader(header, data) : null) ?? tensorsOfHeader(header, data);
}

/** The state dict of a plain header (see safetensors-plain.ts), or null for any other header. */
function tensorsOfPlainHeader(header: Uint8Array, data: Uint8Array<ArrayBuffer>): StateDict | null {
  const result = Object.create(null) as StateDict;
  const begins: number[] = [];
  const ends: number[] = [];
  const plain = readPlainHeader(header, (name, dtype, elements, begin, end) => {
    // Whatever the JSON.parse reader would word as an error is left to it.
    if (begin > end || end > data.length || elements * ELEMENT_SIZE[dtype] !== end - begin) return false;
    result[name] = tensorAt(data, begin, elements, dtype);
    begins.push(begin);
    ends.push(end);
    return true;
  });
  // A repeated name leaves fewer keys than tensors; JSON.parse keeps only its last entry, so that reader
  // decides. (Counting the keys once is cheaper than looking each name up before it is added.)
  if (!plain || Object.keys(result).length !== begins.length) return null;
  return tilingFault(begins, ends, data.length) === null ? result : null;
}

/** The state dict of any header, read with JSON.parse; throws the error that names what is wrong. */
function tensorsOfHeader(header: Uint8Array, data: Uint8Array<ArrayBuffer>): StateDict {
  const text = Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString('utf8');
  const entries = scanHeader(text, malformed);
  const dataLength = data.length;
  // A null prototype: a tensor named `__proto__` is an entry, not the result's prototype.
  const result = Object.create(null) as StateDict;
  const begins: number[] = [];
  const ends: number[] = [];
  for (const { name, dtype, shape, offsets } of entries) {
    if (dtype !== 'F32' && dtype !== 'F64' && dtype !== 'I64') {
      throw new TypeError(`Unsupported safetensors dtype ${String(dtype)} for ${name}: expected F32, F64 or I64`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw malformed(`shape of ${name} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1] ||
      offsets[1] > dataLength
    ) {
      throw malformed(`data_offsets of ${name} are not a [begin, end] range inside the ${dataLength} data bytes`);
    }
    const [begin, end] = offsets as [number, number];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    if (elements * ELEMENT_SIZE[dtype] !== end - begin) {
      throw malformed(`${name} has shape [${shape.join(', ')}] of ${dtype} but ${end - begin} bytes`);
    }
    result[name] = tensorAt(data, begin, elements, dtype);
    begins.push(begin);
    ends.push(end);
  }
  const fault = tilingFault(begins, ends, dataLength);
  if (fault === null) return result;
  if (fault.index === entries.length) throw malformed(`${dataLength - fault.expected} trailing bytes after the last tensor`);
  const entry = entries[fault.index]!;
  throw malformed(`${entry.name} starts at byte ${begins[fault.index]}, expected ${fault.expected} (gap or overlap)`);
}

/**
 * Tensors must tile the data section exactly: no gaps, no overlaps, nothing after the last one. Null
 * when they do; else the first tensor (in offset order) that does not start where the bytes before it
 * end, or `begins.length` for trailing bytes, with the start expected. Writers lay tensors out in
 * header order, so the spans are sorted only when they are not.
 */
function tilingFault(begins: number[], ends: number[], dataLength: number): { index: number; expected: number } | null {
  const before = (a: number, b: number) => begins[a]! - begins[b]! || ends[a]! - ends[b]!;
  let order: number[] | null = null;
  for (let i = 1; i < begins.length; i++) {
    if (before(i - 1, i) > 0) {
      order = begins.map((_, k) => k).sort(before);
      break;
    }
  }
  let expected = 0;
  for (let k = 0; k < begins.length; k++) {
    const i = order === null ? k : order[k]!;
    if (begins[i] !== expected) return { index: i, expected };
    expected = ends[i]!;
  }
  return expected === dataLength ? null : { index: begins.length, expected };
}

/** Writes a state dict to a `.safetensors` file that `safetensors.torch.load_file` reads. */
export function saveSafetensors(path: string, stateDict: StateDict, metadata?: Record<string, string>): void {
  writeFileSync(path, toSafetensors(stateDict, metadata));
}

/**
 * Reads a `.safetensors` file into a state dict (see {@link fromSafetensors}). Anything but a regular
 * file (a FIFO, a device, a directory) is refused with a TypeError instead of being read.
 */
export function loadSafetensors(path: string): StateDict {
  // Opened without blocking (a FIFO with no writer would block open() itself), then checked.
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    if (!fstatSync(fd).isFile()) throw new TypeError(`Expected a regular file for path but ${path} is not one`);
    return fromSafetensors(readFileSync(fd));
  } finally {
    closeSync(fd);
  }
}
