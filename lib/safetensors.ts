// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header mapping tensor names to { dtype, shape, data_offsets }, then the raw
// little-endian tensor bytes. Only what batch-norm state needs: F32, F64 and I64.
import { readFileSync, writeFileSync } from 'node:fs';

import { describeValue } from './errors';
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

function dtypeOf(name: string, array: unknown): SafetensorsDType {
  if (array instanceof Float32Array) return 'F32';
  if (array instanceof Float64Array) return 'F64';
  if (array instanceof BigInt64Array) return 'I64';
  throw new TypeError(
    `Expected a Float32Array, Float64Array or BigInt64Array for stateDict.${name} but received ${describeValue(array)}`,
  );
}

/**
 * Serializes a state dict to safetensors bytes. Tensor names are the state-dict keys; per-channel arrays
 * are 1-D, and `num_batches_tracked` is written as a 0-d I64 tensor, as PyTorch stores it.
 */
export function toSafetensors(stateDict: StateDict, metadata?: Record<string, string>): Uint8Array {
  if (typeof stateDict !== 'object' || stateDict === null) {
    throw new TypeError(`Expected a state dict object for stateDict but received ${describeValue(stateDict)}`);
  }
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new TypeError(`Expected a string for metadata.${key} but received ${describeValue(value)}`);
    }
    header.__metadata__ = { ...metadata };
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, array] of Object.entries(stateDict)) {
    const dtype = dtypeOf(name, array);
    const scalar = name === COUNTER_KEY && array.length === 1;
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    header[name] = { dtype, shape: scalar ? [] : [array.length], data_offsets: [offset, offset + bytes.length] };
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

function malformed(reason: string): RangeError {
  return new RangeError(`Invalid safetensors data: ${reason}`);
}

/**
 * Parses safetensors bytes into a state dict (fresh, aligned typed arrays; the bytes are not retained).
 * A 0-d or 1-element I64 tensor becomes a BigInt64Array of length 1. Throws a RangeError naming the
 * problem for malformed input, and a TypeError for a dtype batch norm has no use for.
 */
export function fromSafetensors(bytes: Uint8Array): StateDict {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`Expected a Uint8Array for bytes but received ${describeValue(bytes)}`);
  if (bytes.length < 8) throw malformed(`${bytes.length} bytes is too short for the header length`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.length) {
    throw malformed(`header length ${headerLength} exceeds the ${bytes.length - 8} bytes that follow it`);
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8'));
  } catch (cause) {
    throw malformed(`header is not valid JSON (${(cause as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw malformed('header is not a JSON object');

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const spans: [number, number, string][] = [];
  const result: StateDict = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    if (typeof entry !== 'object' || entry === null) throw malformed(`entry ${name} is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Partial<HeaderEntry>;
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
    const elements = shape.reduce((a: number, b: number) => a * b, 1);
    const size = ELEMENT_SIZE[dtype];
    if (elements * size !== offsets[1] - offsets[0]) {
      throw malformed(`${name} has shape [${shape.join(', ')}] of ${dtype} but ${offsets[1] - offsets[0]} bytes`);
    }
    spans.push([offsets[0], offsets[1], name]);
    // Copy into a fresh buffer: the source offset need not be aligned for the element size.
    const copy = new Uint8Array(offsets[1] - offsets[0]);
    copy.set(bytes.subarray(dataStart + offsets[0], dataStart + offsets[1]));
    const buffer = copy.buffer;
    result[name] = dtype === 'F32' ? new Float32Array(buffer) : dtype === 'F64' ? new Float64Array(buffer) : new BigInt64Array(buffer);
  }
  // Tensors must tile the data section exactly: no gaps, no overlaps, nothing after the last one.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let expectedStart = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== expectedStart) throw malformed(`${name} starts at byte ${begin}, expected ${expectedStart} (gap or overlap)`);
    expectedStart = end;
  }
  if (expectedStart !== dataLength) throw malformed(`${dataLength - expectedStart} trailing bytes after the last tensor`);
  return result;
}

/** Writes a state dict to a `.safetensors` file that `safetensors.torch.load_file` reads. */
export function saveSafetensors(path: string, stateDict: StateDict, metadata?: Record<string, string>): void {
  writeFileSync(path, toSafetensors(stateDict, metadata));
}

/** Reads a `.safetensors` file into a state dict (see {@link fromSafetensors}). */
export function loadSafetensors(path: string): StateDict {
  return fromSafetensors(readFileSync(path));
}
