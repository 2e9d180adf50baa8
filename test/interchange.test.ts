// safetensors bytes (well-formed and malformed) and the Keras mapping.
import { describe, expect, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  fromKerasWeights,
  fromSafetensors,
  toKerasWeights,
  toSafetensors,
} from '../lib/index';

function withHeader(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  return bytes;
}

describe('safetensors', () => {
  it('round-trips a state dict, with num_batches_tracked as a 0-d I64 tensor', () => {
    const m = new BatchNorm2d(3, { dtype: 'float64' });
    m.forward({ data: Float64Array.from({ length: 24 }, (_, i) => i % 7), shape: [2, 3, 2, 2] });
    const bytes = toSafetensors(m.stateDict(), { format: 'pt' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString()) as Record<string, unknown>;
    expect(header.num_batches_tracked).toEqual({ dtype: 'I64', shape: [], data_offsets: [96, 104] });
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(fromSafetensors(bytes)).toEqual(m.stateDict());
  });

  it('reads from a buffer at an unaligned offset', () => {
    const bytes = toSafetensors(new BatchNorm1d(5).stateDict());
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(fromSafetensors(shifted.subarray(3))).toEqual(new BatchNorm1d(5).stateDict());
  });

  it.each<[string, Uint8Array, typeof TypeError | typeof RangeError, string]>([
    ['too short', new Uint8Array(4), RangeError, 'Invalid safetensors data: 4 bytes is too short'],
    ['header past the end', (() => {
      const b = new Uint8Array(16);
      new DataView(b.buffer).setBigUint64(0, 100n, true);
      return b;
    })(), RangeError, 'header length 100 exceeds the 8 bytes'],
    ['bad JSON', (() => {
      const b = withHeader({});
      b.set(Buffer.from('{{'), 8);
      return b;
    })(), RangeError, 'header is not valid JSON'],
    ['unsupported dtype', withHeader({ w: { dtype: 'BF16', shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)),
      TypeError, 'Unsupported safetensors dtype BF16 for w'],
    ['offsets outside the data', withHeader({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
      RangeError, 'data_offsets of w are not a [begin, end] range'],
    ['size mismatch', withHeader({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      RangeError, 'w has shape [3] of F32 but 8 bytes'],
    ['gap', withHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      RangeError, 'w starts at byte 4, expected 0'],
    ['trailing bytes', withHeader({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)),
      RangeError, '4 trailing bytes after the last tensor'],
    ['bad shape', withHeader({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      RangeError, 'shape of w is not a list of non-negative integers'],
  ])('rejects %s', (_label, bytes, errorType, message) => {
    expect(() => fromSafetensors(bytes)).toThrow(errorType);
    expect(() => fromSafetensors(bytes)).toThrow(message);
  });

  it('rejects values it cannot store', () => {
    expect(() => toSafetensors({ w: new Int32Array(2) as never })).toThrow(
      'Expected a Float32Array, Float64Array or BigInt64Array for stateDict.w but received Int32Array',
    );
  });
});

describe('Keras interchange', () => {
  const weights = {
    gamma: Float32Array.of(1.5, 2),
    beta: Float32Array.of(0.1, -0.1),
    movingMean: Float32Array.of(3, 4),
    movingVariance: Float32Array.of(0.5, 0.25),
  };

  it('maps Keras momentum m to PyTorch 1 - m and epsilon to eps (default 1e-3)', () => {
    const m = fromKerasWeights(BatchNorm2d, weights, { momentum: 0.9 });
    expect(m).toBeInstanceOf(BatchNorm2d);
    expect(m.momentum).toBeCloseTo(0.1, 15);
    expect(m.eps).toBe(1e-3);
    expect(m.dtype).toBe('float32');
    expect(Array.from(m.weight!.data)).toEqual(Array.from(weights.gamma));
    expect(Array.from(m.runningVar!)).toEqual(Array.from(weights.movingVariance));
    expect(fromKerasWeights(BatchNorm1d, weights).momentum).toBeCloseTo(0.01, 15);
  });

  it('round-trips through toKerasWeights', () => {
    const m = fromKerasWeights(BatchNorm1d, weights, { momentum: 0.95, epsilon: 1e-4 });
    const { weights: exported, config } = toKerasWeights(m);
    expect(exported).toEqual(weights);
    expect(config.momentum).toBeCloseTo(0.95, 15);
    expect(config.epsilon).toBe(1e-4);
  });

  it('fills absent gamma/beta (scale/center false) with 1 and 0', () => {
    const m = fromKerasWeights(BatchNorm1d, { movingMean: weights.movingMean, movingVariance: weights.movingVariance });
    expect(Array.from(m.weight!.data)).toEqual([1, 1]);
    expect(Array.from(m.bias!.data)).toEqual([0, 0]);
  });

  it('rejects mismatched arrays and modules Keras cannot express', () => {
    expect(() => fromKerasWeights(BatchNorm1d, { ...weights, beta: Float32Array.of(1) })).toThrow(
      'weights.beta should contain 2 elements (like weights.movingMean) not 1',
    );
    expect(() => fromKerasWeights(BatchNorm1d, { ...weights, gamma: Float64Array.of(1, 2) })).toThrow(TypeError);
    expect(() => toKerasWeights(new BatchNorm1d(2, { momentum: null }))).toThrow('no cumulative moving average');
    expect(() => toKerasWeights(new BatchNorm1d(2, { trackRunningStats: false }))).toThrow('trackRunningStats: false');
  });
});
