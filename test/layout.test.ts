// Channels-last tensors: the conversion helpers, and that every operation commutes with the layout.
import { describe, expect, it } from 'vitest';

import {
  BatchNorm2d,
  batchNorm,
  batchNormBackward,
  type FloatArray,
  type Tensor,
  toChannelsLast,
  toContiguous,
} from '../lib/index';

function ramp(length: number, scale = 1): Float64Array {
  return Float64Array.from({ length }, (_, i) => Math.sin(i * 0.77 + 0.1) * scale + 0.3);
}

function expectNear(actual: FloatArray, expected: FloatArray): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThan(1e-12);
}

describe('toChannelsLast / toContiguous', () => {
  it('stores N, H, W, C and keeps the logical shape', () => {
    // (1, 2, 1, 3): contiguous [c0: 0 1 2, c1: 3 4 5] -> NHWC [0 3 1 4 2 5].
    const x: Tensor = { data: Float32Array.of(0, 1, 2, 3, 4, 5), shape: [1, 2, 1, 3] };
    const last = toChannelsLast(x);
    expect(Array.from(last.data)).toEqual([0, 3, 1, 4, 2, 5]);
    expect(last.shape).toEqual([1, 2, 1, 3]);
    expect(last.memoryFormat).toBe('channelsLast');
    expect(last.data).toBeInstanceOf(Float32Array);
    const back = toContiguous(last);
    expect(Array.from(back.data)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(back.memoryFormat).toBe('contiguous');
  });

  it('round-trips rank 5 and always copies', () => {
    const x: Tensor = { data: ramp(2 * 3 * 2 * 2 * 4), shape: [2, 3, 2, 2, 4] };
    const last = toChannelsLast(x);
    expect(last.data).not.toBe(x.data);
    expect(toContiguous(last).data).toEqual(x.data);
    expect(toChannelsLast(last).data).not.toBe(last.data);
    expect(toChannelsLast(last).data).toEqual(last.data);
  });

  it('rejects ranks without a channels-last format', () => {
    expect(() => toChannelsLast({ data: ramp(6), shape: [2, 3] })).toThrow(
      'Expected input of rank 4 or 5 (channels-last exists for images and volumes) but received 2D shape',
    );
  });
});

describe('operations commute with the memory format', () => {
  const shape = [3, 5, 2, 3];
  const x: Tensor<Float64Array> = { data: ramp(90, 2), shape };
  const dy: Tensor<Float64Array> = { data: ramp(90, 0.5).map((v) => v - 0.3), shape };
  const weight = Float64Array.of(1, 2, 0.5, -1, 1.5);
  const bias = Float64Array.of(0.1, 0, -0.2, 0.3, 1);

  it.each([true, false])('batchNorm and batchNormBackward, training=%s', (training) => {
    const runningMean = Float64Array.of(0.1, 0.2, 0.3, 0.4, 0.5);
    const runningVar = Float64Array.of(1, 2, 3, 4, 5);
    const options = { weight, bias, training, runningMean: runningMean.slice(), runningVar: runningVar.slice() };
    const plain = batchNorm(x, options);
    const optionsLast = { weight, bias, training, runningMean: runningMean.slice(), runningVar: runningVar.slice() };
    const last = batchNorm(toChannelsLast(x), optionsLast);
    expect(last.output.memoryFormat).toBe('channelsLast');
    expectNear(toContiguous(last.output).data, plain.output.data);
    expectNear(optionsLast.runningVar, options.runningVar);
    const backward = { weight, training, runningMean, runningVar, saveMean: plain.saveMean, saveInvstd: plain.saveInvstd };
    const gradPlain = batchNormBackward(dy, x, backward);
    const gradLast = batchNormBackward(toChannelsLast(dy), toChannelsLast(x), backward);
    expect(gradLast.gradInput!.memoryFormat).toBe('channelsLast');
    expectNear(toContiguous(gradLast.gradInput!).data, gradPlain.gradInput!.data);
    expectNear(gradLast.gradWeight!, gradPlain.gradWeight!);
    expectNear(gradLast.gradBias!, gradPlain.gradBias!);
  });

  it('BatchNorm2d forward and backward', () => {
    const plain = new BatchNorm2d(5, { dtype: 'float64' });
    const last = new BatchNorm2d(5, { dtype: 'float64' });
    const y = plain.forward(x);
    const yLast = last.forward(toChannelsLast(x));
    expect(yLast.memoryFormat).toBe('channelsLast');
    expectNear(toContiguous(yLast).data, y.data);
    expectNear(toContiguous(last.backward(toChannelsLast(dy))).data, plain.backward(dy).data);
    expectNear(last.weight!.grad!, plain.weight!.grad!);
    // A gradient in the other layout is accepted (as PyTorch does); the result takes the input's layout.
    last.forward(toChannelsLast(x));
    const mixed = last.backward(dy);
    expect(mixed.memoryFormat).toBe('channelsLast');
    plain.forward(x);
    expectNear(toContiguous(mixed).data, plain.backward(dy).data);
  });
});
