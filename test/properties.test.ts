// Property-based tests (fast-check): thousands of random valid calls agree with the scalar oracle, and
// random invalid calls raise a TypeError or RangeError while leaving every array byte-identical.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { BatchNorm1d, BatchNorm2d, BatchNorm3d, type FloatArray, batchNorm, batchNormBackward } from '../lib/index';
import { native } from '../lib/native';
import { backwardArguments, forwardArguments } from '../lib/native-arguments';

interface Call {
  ctor: Float32ArrayConstructor | Float64ArrayConstructor;
  shape: number[];
  channelsLast: boolean;
  training: boolean;
  withWeight: boolean;
  withBias: boolean;
  withRunning: boolean;
  momentum: number;
  eps: number;
  seed: number;
}

const callArbitrary: fc.Arbitrary<Call> = fc
  .record({
    float64: fc.boolean(),
    rank: fc.integer({ min: 2, max: 5 }),
    sizes: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 5, maxLength: 5 }),
    channelsLast: fc.boolean(),
    training: fc.boolean(),
    withWeight: fc.boolean(),
    withBias: fc.boolean(),
    withRunning: fc.boolean(),
    momentum: fc.double({ min: 0, max: 1, noNaN: true }),
    eps: fc.constantFrom(1e-5, 1e-3, 0.1),
    seed: fc.integer(),
  })
  .map((r) => {
    const shape = r.sizes.slice(0, r.rank);
    const perChannel = shape.reduce((a, b) => a * b, 1) / shape[1]!;
    const training = r.training && perChannel > 1;
    return {
      ctor: r.float64 ? Float64Array : Float32Array,
      shape,
      channelsLast: r.channelsLast && r.rank >= 4,
      training,
      withWeight: r.withWeight,
      withBias: r.withBias,
      withRunning: r.withRunning || !training,
      momentum: r.momentum,
      eps: r.eps,
      seed: r.seed,
    };
  });

function filled(ctor: Call['ctor'], length: number, seed: number, offset = 0): FloatArray {
  const array = new ctor(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state ^ (state >>> 13), 0x5bd1e995) + 0x6b43a9b5) >>> 0;
    array[i] = offset + (state / 2 ** 32 - 0.5) * 4;
  }
  return array;
}

function build(call: Call) {
  const n = call.shape.reduce((a, b) => a * b, 1);
  const c = call.shape[1]!;
  return {
    input: { data: filled(call.ctor, n, call.seed, 1), shape: call.shape, memoryFormat: call.channelsLast ? ('channelsLast' as const) : ('contiguous' as const) },
    gradOutput: { data: filled(call.ctor, n, call.seed + 1), shape: call.shape, memoryFormat: call.channelsLast ? ('channelsLast' as const) : ('contiguous' as const) },
    weight: call.withWeight ? filled(call.ctor, c, call.seed + 2, 1.5) : null,
    bias: call.withBias ? filled(call.ctor, c, call.seed + 3) : null,
    runningMean: call.withRunning ? filled(call.ctor, c, call.seed + 4) : null,
    runningVar: call.withRunning ? filled(call.ctor, c, call.seed + 5).map((v) => Math.abs(v) + 0.5) : null,
  };
}

function closeEnough(actual: FloatArray, expected: FloatArray, float64: boolean): boolean {
  let scale = 0;
  for (const v of expected) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const tolerance = (float64 ? 1e-12 : 1e-6) * Math.max(scale, 1);
  return actual.length === expected.length && actual.every((v, i) => Math.abs(v - expected[i]!) <= tolerance);
}

describe('random valid calls agree with the scalar oracle', () => {
  it('forward and backward', () => {
    fc.assert(
      fc.property(callArbitrary, (call) => {
        const ours = build(call);
        const reference = build(call);
        const result = batchNorm(ours.input, {
          weight: ours.weight, bias: ours.bias, runningMean: ours.runningMean, runningVar: ours.runningVar,
          training: call.training, momentum: call.momentum, eps: call.eps,
        });
        // The oracle through the raw binding, on the kernel geometry lib/ would use.
        const n = call.shape.reduce((a, b) => a * b, 1);
        const c = call.shape[1]!;
        const spatial = n / (call.shape[0]! * c);
        const [batch, kernelSpatial] = call.channelsLast ? [call.shape[0]! * spatial, 1] : [call.shape[0]!, spatial];
        const output = new call.ctor(n);
        const saveMean = new call.ctor(call.training ? c : 0);
        const saveInvstd = new call.ctor(call.training ? c : 0);
        native().forwardReference(...forwardArguments({
          input: reference.input.data, output, batch, channels: c, spatial: kernelSpatial, weight: reference.weight,
          bias: reference.bias, runningMean: reference.runningMean, runningVar: reference.runningVar,
          saveMean: call.training ? saveMean : null, saveInvstd: call.training ? saveInvstd : null,
          training: call.training, momentum: call.momentum, eps: call.eps,
        }));
        const float64 = call.ctor === Float64Array;
        expect(closeEnough(result.output.data, output, float64)).toBe(true);
        if (ours.runningMean) expect(closeEnough(ours.runningMean, reference.runningMean!, float64)).toBe(true);
        if (ours.runningVar) expect(closeEnough(ours.runningVar, reference.runningVar!, float64)).toBe(true);

        const grads = batchNormBackward(ours.gradOutput, ours.input, {
          weight: ours.weight, training: call.training, eps: call.eps,
          runningMean: reference.runningMean, runningVar: reference.runningVar,
          saveMean: result.saveMean, saveInvstd: result.saveInvstd,
        });
        const gradInput = new call.ctor(n);
        const gradWeight = new call.ctor(c);
        const gradBias = new call.ctor(c);
        native().backwardReference(...backwardArguments({
          gradOutput: ours.gradOutput.data, input: ours.input.data, batch, channels: c, spatial: kernelSpatial,
          weight: ours.weight, runningMean: call.training ? null : reference.runningMean,
          runningVar: call.training ? null : reference.runningVar, saveMean: call.training ? result.saveMean : null,
          saveInvstd: call.training ? result.saveInvstd : null, gradInput, gradWeight, gradBias,
          training: call.training, eps: call.eps,
        }));
        // grad_input can be a cancellation of larger terms: compare on the scale of dy * invstd * w.
        expect(closeEnough(grads.gradBias!, gradBias, float64)).toBe(true);
        expect(closeEnough(grads.gradWeight!, gradWeight, float64)).toBe(true);
        let termScale = 1;
        for (const v of ours.gradOutput.data) termScale = Math.max(termScale, Math.abs(v) * 1e3);
        const tolerance = (float64 ? 1e-12 : 1e-6) * termScale;
        expect(grads.gradInput!.data.every((v, i) => Math.abs(v - gradInput[i]!) <= tolerance)).toBe(true);
      }),
      { numRuns: 1500, seed: 20261129 },
    );
  });
});

type Corruption = (call: ReturnType<typeof build>, options: Record<string, unknown>) => void;

const CORRUPTIONS: Record<string, Corruption> = {
  'integer data': (b) => {
    (b.input as { data: unknown }).data = new Int16Array(b.input.data.length);
  },
  'plain array data': (b) => {
    (b.input as { data: unknown }).data = Array.from(b.input.data);
  },
  'negative size': (b) => {
    b.input.shape = [-1, ...b.input.shape.slice(1)];
  },
  'fractional size': (b) => {
    b.input.shape = [b.input.shape[0]! + 0.5, ...b.input.shape.slice(1)];
  },
  'NaN size': (b) => {
    b.input.shape = [NaN, ...b.input.shape.slice(1)];
  },
  'huge size': (b) => {
    b.input.shape = [2 ** 53, ...b.input.shape.slice(1)];
  },
  'rank 1': (b) => {
    b.input.shape = [b.input.data.length];
  },
  'rank 6': (b) => {
    b.input.shape = [...b.input.shape, 1, 1, 1, 1].slice(0, 6);
  },
  'shape mismatch': (b) => {
    b.input.shape = [b.input.shape[0]! + 1, ...b.input.shape.slice(1)];
  },
  'bad memory format': (b) => {
    (b.input as { memoryFormat: unknown }).memoryFormat = 'nhwc';
  },
  'weight dtype': (_b, o) => {
    o.weight = o.weight instanceof Float32Array ? new Float64Array(o.weight.length) : new Float32Array((o.weight as FloatArray | null)?.length ?? 1);
  },
  'weight length': (_b, o) => {
    const like = o.runningVar as FloatArray;
    o.weight = like instanceof Float32Array ? new Float32Array(like.length + 1) : new Float64Array(like.length + 1);
  },
  'running var length': (_b, o) => {
    o.runningVar = (o.runningVar as FloatArray).subarray(1);
  },
  'momentum NaN': (_b, o) => {
    o.momentum = NaN;
  },
  'momentum infinite': (_b, o) => {
    o.momentum = -Infinity;
  },
  'eps negative': (_b, o) => {
    o.eps = -1e-5;
  },
  'eps NaN': (_b, o) => {
    o.eps = NaN;
  },
  'unknown option': (_b, o) => {
    o.running_mean = o.runningMean;
  },
  'out partially overlapping input': (b, o) => {
    const buffer = new (b.input.data.constructor as Float32ArrayConstructor)(b.input.data.length + 1);
    buffer.set(b.input.data);
    b.input.data = buffer.subarray(0, b.input.data.length);
    o.out = buffer.subarray(1);
  },
  'out overlapping running mean': (_b, o) => {
    o.out = o.runningMean;
  },
  'detached data': (b) => {
    structuredClone(b.input.data.buffer, { transfer: [b.input.data.buffer as ArrayBuffer] });
  },
};

describe('random invalid calls', () => {
  it('raise a TypeError or RangeError and change nothing', () => {
    fc.assert(
      fc.property(callArbitrary, fc.constantFrom(...Object.keys(CORRUPTIONS)), fc.boolean(), (call, corruption, viaModule) => {
        const b = build({ ...call, withRunning: true, training: false });
        const options: Record<string, unknown> = {
          weight: b.weight ?? new call.ctor(call.shape[1]!).fill(1), bias: b.bias, runningMean: b.runningMean,
          runningVar: b.runningVar, training: false, momentum: call.momentum, eps: call.eps,
        };
        const state = [b.input.data, options.weight, b.bias, b.runningMean, b.runningVar].filter(
          (a): a is FloatArray => ArrayBuffer.isView(a),
        );
        CORRUPTIONS[corruption]!(b, options);
        const snapshot = state.map((a) => (a.buffer.byteLength === 0 ? 'detached' : Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')));
        let thrown: unknown = null;
        try {
          if (viaModule) {
            const rank = call.shape.length;
            const Module = rank <= 3 ? BatchNorm1d : rank === 4 ? BatchNorm2d : BatchNorm3d;
            const module = new Module(call.shape[1]!, { dtype: call.ctor === Float64Array ? 'float64' : 'float32' });
            const before = JSON.stringify(Object.entries(module.stateDict()).map(([k, v]) => [k, Array.from(v as ArrayLike<number | bigint>, String)]));
            try {
              module.forward(b.input as never);
            } finally {
              const after = JSON.stringify(Object.entries(module.stateDict()).map(([k, v]) => [k, Array.from(v as ArrayLike<number | bigint>, String)]));
              expect(after).toBe(before);
            }
          } else {
            batchNorm(b.input as never, options as never);
          }
        } catch (error) {
          thrown = error;
        }
        // A module ignores option corruptions (they are not its arguments); the functional call must throw.
        if (!viaModule || !['weight dtype', 'weight length', 'running var length', 'momentum NaN', 'momentum infinite', 'eps negative', 'eps NaN', 'unknown option', 'out partially overlapping input', 'out overlapping running mean'].includes(corruption)) {
          expect(thrown, corruption).not.toBeNull();
          expect(thrown instanceof TypeError || thrown instanceof RangeError, `${corruption}: ${String(thrown)}`).toBe(true);
        }
        const after = state.map((a) => (a.buffer.byteLength === 0 ? 'detached' : Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex')));
        expect(after).toEqual(snapshot);
      }),
      { numRuns: 2500, seed: 20261130 },
    );
  });
});
