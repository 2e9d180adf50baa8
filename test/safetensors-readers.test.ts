// The plain-header reader (lib/safetensors-plain.ts) is only a faster way to the JSON.parse reader's
// answer: on every input, fromSafetensors must return or throw exactly what the JSON.parse reader does.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { toSafetensors } from '../lib/index';
import { readSafetensors } from '../lib/safetensors';
import { readPlainHeader } from '../lib/safetensors-plain';
import { fixturesDir } from './helpers/fixtures';

type Outcome = { entries: [string, string, string][] } | { error: string };

/** What a reader makes of `bytes`: its entries in order (kind and values as text), or its error. */
function outcome(bytes: Uint8Array, plainReader: boolean): Outcome {
  try {
    const result = readSafetensors(bytes, plainReader);
    const entries = Object.keys(result).map((name): [string, string, string] => {
      const array = result[name] as Float32Array | Float64Array | BigInt64Array;
      return [name, array.constructor.name, Array.from(array as ArrayLike<unknown>, String).join(',')];
    });
    return { entries };
  } catch (error) {
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

function headerOf(bytes: Uint8Array): Uint8Array {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return bytes.subarray(8, 8 + length);
}

function isPlain(bytes: Uint8Array): boolean {
  return readPlainHeader(headerOf(bytes), () => true);
}

function file(headerText: string, data: Uint8Array): Uint8Array {
  const header = Buffer.from(headerText, 'utf8');
  const bytes = new Uint8Array(8 + header.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  bytes.set(data, 8 + header.length);
  return bytes;
}

/** A small deterministic generator (mulberry32), so a failure names a reproducible case. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const data = Uint8Array.from({ length: 48 }, (_, i) => (i * 37) & 0xff);
const headers = {
  written: JSON.stringify({
    __metadata__: { format: 'pt' },
    w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F64', shape: [2, 1], data_offsets: [8, 24] },
    n: { dtype: 'I64', shape: [], data_offsets: [24, 32] },
    z: { dtype: 'F32', shape: [0, 3], data_offsets: [32, 32] },
    u: { dtype: 'F32', shape: [4], data_offsets: [32, 48] },
  }),
  spaced: JSON.stringify(
    {
      b: { data_offsets: [0, 16], shape: [2], dtype: 'F64' },
      w: { shape: [1, 2, 2], dtype: 'F32', data_offsets: [16, 32] },
      __metadata__: {},
      __proto__x: { dtype: 'I64', data_offsets: [32, 48], shape: [2] },
    },
    null,
    2,
  ),
  unordered: '{ "x" : {"dtype":"F32","shape":[3],"data_offsets":[36,48]},\t"y":{"dtype":"F32","shape":[9],"data_offsets":[0,36]}}\n',
};

describe('the plain-header reader', () => {
  it('reads the files PyTorch writes and the files toSafetensors writes', () => {
    for (const name of ['bn1d_float64.safetensors', 'bn2d_float32.safetensors', 'sequential_float32.safetensors']) {
      const bytes = new Uint8Array(readFileSync(path.join(fixturesDir(), name)));
      expect(isPlain(bytes), name).toBe(true);
      expect(outcome(bytes, true)).toEqual(outcome(bytes, false));
    }
    const written = toSafetensors({ 'layer.0.weight': Float32Array.of(1, 2), num_batches_tracked: BigInt64Array.of(3n) }, { a: 'b' });
    expect(isPlain(written)).toBe(true);
  });

  it.each(Object.entries(headers))('reads the %s header as the JSON.parse reader does', (_label, text) => {
    const bytes = file(text, data);
    expect(isPlain(bytes)).toBe(true);
    const plain = outcome(bytes, true);
    expect('entries' in plain && plain.entries.length).toBeGreaterThan(1);
    expect(plain).toEqual(outcome(bytes, false));
  });

  it.each([
    ['an escape in a name', '{"a\\u0062":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'],
    ['a non-ASCII name', '{"é":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'],
    ['an extra field', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":null}}'],
    ['a number with an exponent', '{"a":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}'],
    ['metadata with an escape', '{"__metadata__":{"k":"\\"v\\""},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'],
    ['a 16-digit offset', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,0000000000000008]}}'],
  ])('leaves %s to the JSON.parse reader, with the same answer', (_label, text) => {
    const bytes = file(text, data.subarray(0, 8));
    expect(isPlain(bytes)).toBe(false);
    expect(outcome(bytes, true)).toEqual(outcome(bytes, false));
  });

  it('leaves a repeated name to the JSON.parse reader, which keeps its last entry (so bytes 0-4 are a gap)', () => {
    const entry = (begin: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${begin + 4}]}`;
    const bytes = file(`{"a":${entry(0)},"b":${entry(4)},"a":${entry(8)}}`, data.subarray(0, 12));
    expect(outcome(bytes, true)).toEqual({ error: 'RangeError: Invalid safetensors data: b starts at byte 4, expected 0 (gap or overlap)' });
    expect(outcome(bytes, false)).toEqual(outcome(bytes, true));
  });

  it('agrees with the JSON.parse reader on 4,000 mutated headers', () => {
    const next = random(20261130);
    const alphabet = '{}[],:" \n0123456789-.eE\\/aFI364dtypeshaoffs_';
    const texts = Object.values(headers);
    let plainAccepted = 0;
    let rejected = 0;
    for (let trial = 0; trial < 4000; trial++) {
      let text = texts[trial % texts.length]!;
      for (let edits = 1 + Math.floor(next() * 3); edits > 0; edits--) {
        const at = Math.floor(next() * text.length);
        const char = alphabet[Math.floor(next() * alphabet.length)]!;
        const kind = Math.floor(next() * 3);
        text = text.slice(0, at) + (kind === 2 ? '' : char) + text.slice(kind === 0 ? at : at + 1);
      }
      const bytes = file(text, data.subarray(0, Math.floor(next() * 2) === 0 ? 48 : 40));
      const plain = outcome(bytes, true);
      expect(plain, text).toEqual(outcome(bytes, false));
      if ('error' in plain) rejected++;
      else if (isPlain(bytes)) plainAccepted++;
    }
    // Both kinds of case occur, so the comparison covered the plain reader's answers and its refusals.
    expect(plainAccepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(1000);
  });
});
