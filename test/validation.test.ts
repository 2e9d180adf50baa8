// Every validation rule: the error's type and message, and that the failed call modified nothing.
import { describe, expect, it } from 'vitest';

import * as lib from '../lib/index';
import type { BatchNormBackwardOptions, BatchNormBackwardResult, BatchNormOptions, BatchNormResult, Tensor } from '../lib/index';

// These tests pass what the types forbid, to check the runtime checks: the calls are typed loosely here.
const batchNorm = lib.batchNorm as (input: Tensor, options?: BatchNormOptions) => BatchNormResult;
const batchNormBackward = lib.batchNormBackward as (
  gradOutput: Tensor,
  input: Tensor,
  options: BatchNormBackwardOptions,
) => BatchNormBackwardResult;

/** A small valid float32 setup (N=2, C=3, L=2) with every piece of state a call could touch. */
function setup() {
  const data = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1) * 3);
  return {
    input: { data, shape: [2, 3, 2] },
    weight: new Float32Array([1.5, 0.5, 2]),
    bias: new Float32Array([0.1, -0.2, 0.3]),
    runningMean: new Float32Array([0.01, 0.02, 0.03]),
    runningVar: new Float32Array([1.1, 1.2, 1.3]),
    out: new Float32Array(12),
  };
}

type State = ReturnType<typeof setup>;

function snapshot(state: State): number[][] {
  return [state.input.data, state.weight, state.bias, state.runningMean, state.runningVar, state.out].map((a) =>
    Array.from(a),
  );
}

function expectForwardError(
  makeCall: (state: State) => () => unknown,
  errorType: typeof TypeError | typeof RangeError,
  message: string | RegExp,
): void {
  const state = setup();
  const before = snapshot(state);
  const call = makeCall(state);
  expect(call).toThrow(errorType);
  expect(call).toThrow(message);
  expect(snapshot(state)).toEqual(before);
}

function training(state: State, extra: Partial<BatchNormOptions> = {}): BatchNormOptions {
  const { weight, bias, runningMean, runningVar } = state;
  return { weight, bias, runningMean, runningVar, training: true, ...extra };
}

describe('batchNorm argument validation', () => {
  const cases: [string, (s: State) => () => unknown, typeof TypeError | typeof RangeError, string | RegExp][] = [
    ['input not an object', (s) => () => batchNorm(null as never, training(s)), TypeError,
      'Expected a tensor object { data, shape } for input but received null'],
    ['input is a bare typed array', (s) => () => batchNorm(s.input.data as never, training(s)), TypeError,
      'for input but received Float32Array'],
    ['integer data', (s) => () => batchNorm({ data: new Int32Array(12) as never, shape: [2, 3, 2] }, training(s)),
      TypeError, 'Expected a Float32Array or Float64Array for input.data but received Int32Array'],
    ['plain array data', (s) => () => batchNorm({ data: [1, 2] as never, shape: [1, 2] }, training(s)), TypeError,
      'for input.data but received an Array'],
    ['shape not an array', (s) => () => batchNorm({ data: s.input.data, shape: '2,3,2' as never }, training(s)),
      TypeError, "for input.shape but received '2,3,2' of type string"],
    ['rank 1', (s) => () => batchNorm({ data: s.input.data, shape: [12] }, training(s)), RangeError,
      'Expected input.shape of rank 2 to 5 (N, C, *spatial) but received 1D shape'],
    ['rank 6', (s) => () => batchNorm({ data: s.input.data, shape: [2, 3, 2, 1, 1, 1] }, training(s)), RangeError,
      'received 6D shape'],
    ['negative size', (s) => () => batchNorm({ data: s.input.data, shape: [-2, 3, -2] }, training(s)), RangeError,
      'Expected a non-negative integer for input.shape[0] but received -2 of type number'],
    ['fractional size', (s) => () => batchNorm({ data: s.input.data, shape: [2, 3, 2.5] }, training(s)), RangeError,
      'input.shape[2] but received 2.5'],
    ['NaN size', (s) => () => batchNorm({ data: s.input.data, shape: [2, NaN, 2] }, training(s)), RangeError,
      'input.shape[1] but received NaN'],
    ['string size', (s) => () => batchNorm({ data: s.input.data, shape: [2, '3', 2] as never }, training(s)),
      TypeError, "input.shape[1] but received '3' of type string"],
    ['huge sizes', (s) => () => batchNorm({ data: s.input.data, shape: [2 ** 40, 2 ** 20, 2 ** 10] }, training(s)),
      RangeError, 'has too many elements'],
    ['shape/data mismatch', (s) => () => batchNorm({ data: s.input.data, shape: [2, 3, 3] }, training(s)),
      RangeError, 'input.shape [2, 3, 3] describes 18 elements but input.data has 12'],
    ['detached buffer', (s) => () => {
      const data = new Float32Array(12);
      structuredClone(data.buffer, { transfer: [data.buffer] });
      return batchNorm({ data, shape: [2, 3, 2] }, training(s));
    }, RangeError, 'describes 12 elements but input.data has 0 (is its ArrayBuffer detached?)'],
    ['channelsLast on a rank-3 tensor', (s) => () =>
      batchNorm({ ...s.input, memoryFormat: 'channelsLast' }, training(s)),
      RangeError, "input.memoryFormat 'channelsLast' needs a rank-4 or rank-5 shape (N, C, H, W) or (N, C, D, H, W) but input.shape is [2, 3, 2]"],
    ['unknown memory format', (s) => () =>
      batchNorm({ ...s.input, memoryFormat: 'nhwc' as never }, training(s)), TypeError,
      "Expected 'contiguous' or 'channelsLast' for input.memoryFormat"],
    ['options not an object', (s) => () => batchNorm(s.input, true as never), TypeError,
      'Expected an options object for options but received true of type boolean'],
    ['unknown option (PyTorch spelling)', (s) => () =>
      batchNorm(s.input, { training: true, running_mean: s.runningMean } as never), TypeError,
      "Unknown option 'running_mean' in options; expected one of: weight, bias, runningMean"],
    ['weight length', (s) => () => batchNorm(s.input, training(s, { weight: new Float32Array(4) })), RangeError,
      'weight should contain 3 elements not 4'],
    ['bias length', (s) => () => batchNorm(s.input, training(s, { bias: new Float32Array(2) })), RangeError,
      'bias should contain 3 elements not 2'],
    ['runningMean length', (s) => () => batchNorm(s.input, training(s, { runningMean: new Float32Array(4) })),
      RangeError, 'runningMean should contain 3 elements not 4'],
    ['runningVar length', (s) => () =>
      batchNorm(s.input, { runningMean: s.runningMean, runningVar: new Float32Array(1) }), RangeError,
      'runningVar should contain 3 elements not 1'],
    ['weight dtype', (s) => () => batchNorm(s.input, training(s, { weight: new Float64Array(3) })), TypeError,
      "Expected a Float32Array for weight (the input's dtype is float32) but received Float64Array"],
    ['runningVar integer array', (s) => () => batchNorm(s.input, training(s, { runningVar: new Int8Array(3) as never })),
      TypeError, 'Expected a Float32Array or Float64Array for runningVar but received Int8Array'],
    ['eval without runningMean', (s) => () => batchNorm(s.input, { runningVar: s.runningVar }), TypeError,
      'runningMean must be defined in evaluation mode'],
    ['eval without runningVar', (s) => () => batchNorm(s.input, { runningMean: s.runningMean, training: false }),
      TypeError, 'runningVar must be defined in evaluation mode'],
    ['training not boolean', (s) => () => batchNorm(s.input, training(s, { training: 1 as never })), TypeError,
      'Expected a boolean for options.training but received 1 of type number'],
    ['momentum NaN', (s) => () => batchNorm(s.input, training(s, { momentum: NaN })), RangeError,
      'Expected a finite number for options.momentum but received NaN'],
    ['momentum Infinity', (s) => () => batchNorm(s.input, training(s, { momentum: Infinity })), RangeError,
      'options.momentum but received Infinity'],
    ['momentum string', (s) => () => batchNorm(s.input, training(s, { momentum: '0.1' as never })), TypeError,
      "options.momentum but received '0.1' of type string"],
    ['eps negative', (s) => () => batchNorm(s.input, training(s, { eps: -1e-5 })), RangeError,
      'Expected a finite number >= 0 for options.eps but received -0.00001'],
    ['eps NaN', (s) => () => batchNorm(s.input, training(s, { eps: NaN })), RangeError,
      'Expected a finite number for options.eps but received NaN'],
    ['out dtype', (s) => () => batchNorm(s.input, training(s, { out: new Float64Array(12) })), TypeError,
      "Expected a Float32Array for options.out (the input's dtype is float32)"],
    ['out length', (s) => () => batchNorm(s.input, training(s, { out: new Float32Array(11) })), RangeError,
      'options.out should contain 12 elements not 11'],
    ['out partially overlaps input (evaluation)', (s) => () => {
      const buffer = new Float32Array(20);
      buffer.set(s.input.data);
      return batchNorm({ data: buffer.subarray(0, 12), shape: [2, 3, 2] }, { runningMean: s.runningMean, runningVar: s.runningVar, out: buffer.subarray(4, 16) });
    }, RangeError, 'input.data and options.out must not overlap in memory (it may be exactly the same view'],
    ['out overlaps input when training', (s) => () => {
      const buffer = new Float32Array(20);
      buffer.set(s.input.data);
      return batchNorm({ data: buffer.subarray(0, 12), shape: [2, 3, 2] }, training(s, { out: buffer.subarray(4, 16) }));
    }, RangeError, "options.out must not overlap input.data in training: backward needs the forward's input"],
    ['out is the input when training', (s) => () => batchNorm(s.input, training(s, { out: s.input.data })), RangeError,
      'options.out must not overlap input.data in training'],
    ['out is an equal subarray view of the input when training', (s) => () =>
      batchNorm(s.input, training(s, { out: s.input.data.subarray(0) })), RangeError,
      'options.out must not overlap input.data in training'],
    ['tensor key spelled as numpy spells it', (s) => () =>
      batchNorm({ ...s.input, strides: [3, 1], offset: 0 } as never, training(s)), TypeError,
      "Unknown key 'strides' in input (did you mean 'stride'?); a tensor object has only: data, shape, memoryFormat, stride, offset"],
    ['unknown tensor key', (s) => () => batchNorm({ ...s.input, dtype: 'float32' } as never, training(s)), TypeError,
      "Unknown key 'dtype' in input; a tensor object has only"],
    ['out overlaps runningMean', (s) => () => {
      const shared = new Float32Array(14);
      return batchNorm(s.input, training(s, { out: shared.subarray(0, 12), runningMean: shared.subarray(11, 14) }));
    }, RangeError, 'options.out and runningMean must not overlap'],
    ['runningMean aliases weight when training', (s) => () =>
      batchNorm(s.input, training(s, { runningMean: s.weight })), RangeError,
      'weight and runningMean must not overlap in memory'],
    ['one value per channel when training', (s) => () =>
      batchNorm({ data: new Float32Array(3), shape: [1, 3] }, training(s)), RangeError,
      'Expected more than 1 value per channel when training, got input size [1, 3]'],
    ['one value per channel when training (rank 4)', (s) => () =>
      batchNorm({ data: new Float32Array(3), shape: [1, 3, 1, 1] }, training(s)), RangeError,
      'got input size [1, 3, 1, 1]'],
  ];

  it.each(cases)('%s', (_label, makeCall, errorType, message) => {
    expectForwardError(makeCall, errorType, message);
  });

  it('allows one value per channel in evaluation', () => {
    const s = setup();
    const { output } = batchNorm({ data: new Float32Array([1, 2, 3]), shape: [1, 3] }, { ...training(s), training: false });
    expect(output.data).toHaveLength(3);
  });
});

describe('batchNormBackward argument validation', () => {
  function backwardSetup() {
    const s = setup();
    const forward = batchNorm(s.input, training(s));
    const gradOutput = { data: Float32Array.from({ length: 12 }, (_, i) => Math.cos(i)), shape: [2, 3, 2] };
    const options: BatchNormBackwardOptions = {
      weight: s.weight,
      saveMean: forward.saveMean,
      saveInvstd: forward.saveInvstd,
      training: true,
    };
    return { s, gradOutput, options };
  }

  const cases: [string, (b: ReturnType<typeof backwardSetup>) => unknown, typeof TypeError | typeof RangeError, string][] =
    [
      ['gradOutput shape', (b) => batchNormBackward({ data: b.gradOutput.data, shape: [2, 6] }, b.s.input, b.options),
        RangeError, 'gradOutput.shape [2, 6] must equal input.shape [2, 3, 2]'],
      ['gradOutput dtype', (b) => batchNormBackward({ data: new Float64Array(12), shape: [2, 3, 2] }, b.s.input,
        b.options), TypeError, "Expected a Float32Array for gradOutput.data (the input's dtype is float32)"],
      ['options missing', (b) => batchNormBackward(b.gradOutput, b.s.input, undefined as never), TypeError,
        'Expected an options object for options but received undefined'],
      ['training missing', (b) => batchNormBackward(b.gradOutput, b.s.input, { ...b.options, training: undefined as never }),
        TypeError, 'Expected a boolean for options.training but received undefined'],
      ['saveMean missing when training', (b) => batchNormBackward(b.gradOutput, b.s.input, { ...b.options, saveMean: null }),
        TypeError, 'saveMean must be defined when training is true'],
      ['saveInvstd length', (b) => batchNormBackward(b.gradOutput, b.s.input,
        { ...b.options, saveInvstd: new Float32Array(2) }), RangeError, 'saveInvstd should contain 3 elements not 2'],
      ['runningVar missing in evaluation', (b) => batchNormBackward(b.gradOutput, b.s.input,
        { training: false, runningMean: b.s.runningMean }), TypeError, 'runningVar must be defined in evaluation mode'],
      ['outputMask of two', (b) => batchNormBackward(b.gradOutput, b.s.input,
        { ...b.options, outputMask: [true, true] as never }), TypeError,
        'Expected an array of three booleans [input, weight, bias] for options.outputMask'],
      ['unknown option', (b) => batchNormBackward(b.gradOutput, b.s.input, { ...b.options, bias: b.s.bias } as never),
        TypeError, "Unknown option 'bias' in options"],
      ['eps negative', (b) => batchNormBackward(b.gradOutput, b.s.input, { ...b.options, eps: -1 }), RangeError,
        'Expected a finite number >= 0 for options.eps but received -1'],
    ];

  it.each(cases)('%s', (_label, call, errorType, message) => {
    const b = backwardSetup();
    expect(() => call(b)).toThrow(errorType);
    expect(() => call(b)).toThrow(message);
  });
});
