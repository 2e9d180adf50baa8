// The module lifecycle: construction, modes, errors that leave state untouched, state dicts, toAffine.
import { describe, expect, it } from 'vitest';

import { BatchNorm1d, BatchNorm2d, BatchNorm3d, type BatchNormBase, BatchNormStateError, batchNorm } from '../lib/index';

function snapshot(module: BatchNormBase): unknown {
  return {
    state: module.stateDict(),
    weightGrad: module.weight?.grad?.slice() ?? null,
    biasGrad: module.bias?.grad?.slice() ?? null,
    training: module.training,
  };
}

function ramp(length: number, scale = 1): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 1.7 + 0.3) * scale);
}

describe('construction', () => {
  it('has PyTorch defaults', () => {
    const m = new BatchNorm2d(3);
    expect([m.numFeatures, m.eps, m.momentum, m.affine, m.trackRunningStats, m.dtype, m.training]).toEqual([
      3, 1e-5, 0.1, true, true, 'float32', true,
    ]);
    expect(Array.from(m.weight!.data)).toEqual([1, 1, 1]);
    expect(Array.from(m.bias!.data)).toEqual([0, 0, 0]);
    expect(m.weight!.grad).toBeNull();
    expect(Array.from(m.runningMean!)).toEqual([0, 0, 0]);
    expect(Array.from(m.runningVar!)).toEqual([1, 1, 1]);
    expect(m.numBatchesTracked).toBe(0);
    expect(m.parameters()).toEqual([m.weight, m.bias]);
  });

  it('has no parameters without affine and no buffers without tracking', () => {
    const m = new BatchNorm1d(4, { affine: false, trackRunningStats: false, dtype: 'float64' });
    expect(m.weight).toBeNull();
    expect(m.runningMean).toBeNull();
    expect(m.parameters()).toEqual([]);
    expect(m.stateDict()).toEqual({});
  });

  it.each<[string, () => unknown, typeof TypeError | typeof RangeError, string]>([
    ['numFeatures 0', () => new BatchNorm2d(0), RangeError, 'Expected a positive integer for numFeatures but received 0'],
    ['numFeatures 2.5', () => new BatchNorm2d(2.5), RangeError, 'numFeatures but received 2.5'],
    ['numFeatures string', () => new BatchNorm2d('3' as never), TypeError, "numFeatures but received '3' of type string"],
    ['eps negative', () => new BatchNorm2d(3, { eps: -1 }), RangeError, 'options.eps'],
    ['momentum NaN', () => new BatchNorm2d(3, { momentum: NaN }), RangeError, 'options.momentum'],
    ['affine string', () => new BatchNorm2d(3, { affine: 'yes' as never }), TypeError, 'options.affine'],
    ['dtype int32', () => new BatchNorm2d(3, { dtype: 'int32' as never }), TypeError,
      "Expected 'float32' or 'float64' for options.dtype"],
    ['unknown option', () => new BatchNorm2d(3, { track_running_stats: false } as never), TypeError,
      "Unknown option 'track_running_stats'"],
  ])('rejects %s', (_label, make, errorType, message) => {
    expect(make).toThrow(errorType);
    expect(make).toThrow(message);
  });
});

describe('forward and backward errors change nothing', () => {
  function trainedModule() {
    const m = new BatchNorm2d(2);
    m.forward({ data: ramp(16), shape: [2, 2, 2, 2] });
    m.backward({ data: ramp(16, 0.5), shape: [2, 2, 2, 2] });
    return m;
  }

  it.each<[string, (m: BatchNormBase) => unknown, new (message?: string) => Error, string]>([
    ['3D input to BatchNorm2d', (m) => m.forward({ data: ramp(8), shape: [2, 2, 2] }), RangeError,
      'expected 4D input (got 3D input)'],
    ['6D input to BatchNorm2d', (m) => m.forward({ data: ramp(2), shape: [1, 2, 1, 1, 1, 1] }), RangeError,
      'expected 4D input (got 6D input)'],
    ['wrong channel count', (m) => m.forward({ data: ramp(24), shape: [2, 3, 2, 2] }), RangeError,
      'Expected input with 2 channels (numFeatures) but got 3 (input.shape [2, 3, 2, 2])'],
    ['wrong dtype', (m) => m.forward({ data: new Float64Array(16), shape: [2, 2, 2, 2] }), TypeError,
      "Expected a Float32Array for input.data (the module's dtype is float32) but received Float64Array"],
    ['one value per channel', (m) => m.forward({ data: ramp(2), shape: [1, 2, 1, 1] }), RangeError,
      'Expected more than 1 value per channel when training, got input size [1, 2, 1, 1]'],
    ['second backward', (m) => m.backward({ data: ramp(16), shape: [2, 2, 2, 2] }), BatchNormStateError,
      'BatchNorm2d.backward() was already called for the last forward()'],
  ])('%s', (_label, call, errorType, message) => {
    const m = trainedModule();
    const before = snapshot(m);
    expect(() => call(m)).toThrow(errorType);
    expect(() => call(m)).toThrow(message);
    expect(snapshot(m)).toEqual(before);
  });

  it('rejects a gradient of another shape or dtype, then still accepts the right one', () => {
    const m = new BatchNorm2d(2);
    m.forward({ data: ramp(16), shape: [2, 2, 2, 2] });
    const before = snapshot(m);
    expect(() => m.backward({ data: ramp(16), shape: [4, 2, 2, 1] })).toThrow(
      "gradOutput.shape [4, 2, 2, 1] must equal the forward input's shape [2, 2, 2, 2]",
    );
    expect(() => m.backward({ data: new Float64Array(16), shape: [2, 2, 2, 2] } as never)).toThrow(TypeError);
    expect(snapshot(m)).toEqual(before);
    expect(m.backward({ data: ramp(16), shape: [2, 2, 2, 2] }).shape).toEqual([2, 2, 2, 2]);
    expect(() => m.backward({ data: ramp(16), shape: [2, 2, 2, 2] })).toThrow('each forward allows one backward');
  });

  it('BatchNorm1d takes 2D and 3D input only; BatchNorm3d 5D only', () => {
    expect(() => new BatchNorm1d(2).forward({ data: ramp(8), shape: [2, 2, 2, 1] })).toThrow(
      'expected 2D or 3D input (got 4D input)',
    );
    expect(() => new BatchNorm3d(2).forward({ data: ramp(8), shape: [2, 2, 2, 1] })).toThrow(
      'expected 5D input (got 4D input)',
    );
  });
});

describe('modes', () => {
  it('eval uses running stats; without tracking it uses batch stats even in eval', () => {
    const x = { data: ramp(12, 3), shape: [4, 3] };
    const tracked = new BatchNorm1d(3);
    tracked.runningMean!.set([0.5, -0.5, 1]);
    tracked.runningVar!.set([2, 3, 4]);
    const expected = batchNorm(x, { runningMean: tracked.runningMean, runningVar: tracked.runningVar, weight: tracked.weight!.data, bias: tracked.bias!.data });
    expect(tracked.eval().forward(x).data).toEqual(expected.output.data);
    expect(tracked.numBatchesTracked).toBe(0);

    const untracked = new BatchNorm1d(3, { trackRunningStats: false }).eval();
    expect(untracked.forward(x).data).toEqual(batchNorm(x, { training: true }).output.data);
  });

  it('counts an empty training batch without touching the running stats', () => {
    const m = new BatchNorm2d(3);
    const out = m.forward({ data: new Float32Array(0), shape: [0, 3, 2, 2] });
    expect(out.data).toHaveLength(0);
    expect(m.numBatchesTracked).toBe(1);
    expect(Array.from(m.runningMean!)).toEqual([0, 0, 0]);
    expect(Array.from(m.runningVar!)).toEqual([1, 1, 1]);
  });

  it('momentum null is the cumulative average over the batches seen', () => {
    const m = new BatchNorm1d(1, { momentum: null, dtype: 'float64' });
    const means = [1, 4, -2];
    for (const mean of means) m.forward({ data: Float64Array.from([mean - 1, mean + 1]), shape: [2, 1] });
    expect(m.runningMean![0]).toBeCloseTo(means.reduce((a, b) => a + b) / 3, 14);
    expect(m.runningVar![0]).toBeCloseTo(2, 14);
    expect(m.numBatchesTracked).toBe(3);
  });

  it('accumulates weight and bias gradients until zeroGrad', () => {
    const m = new BatchNorm1d(2, { dtype: 'float64' });
    const x = { data: Float64Array.from([1, 2, 3, 5, 4, 0]), shape: [3, 2] };
    const dy = { data: Float64Array.from([1, -1, 2, 0.5, 0, 3]), shape: [3, 2] };
    m.forward(x);
    m.backward(dy);
    const first = [m.weight!.grad!.slice(), m.bias!.grad!.slice()];
    m.forward(x);
    m.backward(dy);
    expect(Array.from(m.bias!.grad!)).toEqual(Array.from(first[1]!, (v) => 2 * v));
    expect(m.weight!.grad![0]).toBeCloseTo(2 * first[0]![0]!, 14);
    m.zeroGrad();
    expect(m.weight!.grad).toBeNull();
    expect(m.bias!.grad).toBeNull();
  });

  it('resetRunningStats and resetParameters restore the initial state', () => {
    const m = new BatchNorm1d(2);
    m.forward({ data: ramp(6, 5), shape: [3, 2] });
    m.weight!.data.set([3, 4]);
    m.resetRunningStats();
    expect(m.numBatchesTracked).toBe(0);
    expect(Array.from(m.runningVar!)).toEqual([1, 1]);
    expect(Array.from(m.weight!.data)).toEqual([3, 4]);
    m.resetParameters();
    expect(Array.from(m.weight!.data)).toEqual([1, 1]);
  });
});

describe('state dicts', () => {
  it('uses PyTorch keys and order, as a snapshot', () => {
    const m = new BatchNorm2d(2);
    const sd = m.stateDict();
    expect(Object.keys(sd)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(sd.num_batches_tracked).toEqual(BigInt64Array.of(0n));
    m.forward({ data: ramp(16, 2), shape: [2, 2, 2, 2] });
    expect(Array.from(sd.running_mean as Float32Array)).toEqual([0, 0]);
    expect(Object.keys(new BatchNorm2d(2, { affine: false }).stateDict())).toEqual([
      'running_mean',
      'running_var',
      'num_batches_tracked',
    ]);
    expect(Object.keys(new BatchNorm2d(2, { trackRunningStats: false }).stateDict())).toEqual(['weight', 'bias']);
  });

  it('round-trips between modules', () => {
    const a = new BatchNorm1d(3);
    a.forward({ data: ramp(12, 4), shape: [4, 3] });
    a.weight!.data.set([2, 3, 4]);
    const b = new BatchNorm1d(3);
    expect(b.loadStateDict(a.stateDict())).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.stateDict()).toEqual(a.stateDict());
    expect(b.numBatchesTracked).toBe(1);
  });

  it('accepts num_batches_tracked as a number or bigint and treats a missing one as 0 (as PyTorch does)', () => {
    const m = new BatchNorm1d(2);
    const base = m.stateDict();
    m.loadStateDict({ ...base, num_batches_tracked: 7 });
    expect(m.numBatchesTracked).toBe(7);
    m.loadStateDict({ ...base, num_batches_tracked: 9n });
    expect(m.numBatchesTracked).toBe(9);
    const { num_batches_tracked: _omitted, ...withoutCounter } = base;
    m.loadStateDict(withoutCounter);
    expect(m.numBatchesTracked).toBe(0);
  });

  function failedLoad(message: string, errorType: typeof Error, edit: (sd: Record<string, unknown>) => void, strict = true) {
    const m = new BatchNorm1d(3);
    m.forward({ data: ramp(12, 4), shape: [4, 3] });
    const before = snapshot(m);
    const sd: Record<string, unknown> = { ...new BatchNorm1d(3).stateDict() };
    edit(sd);
    expect(() => m.loadStateDict(sd as never, { strict })).toThrow(errorType);
    expect(() => m.loadStateDict(sd as never, { strict })).toThrow(message);
    expect(snapshot(m)).toEqual(before);
  }

  it('reports missing and unexpected keys when strict, changing nothing', () => {
    failedLoad(
      'Error(s) in loading state_dict for BatchNorm1d: Missing key(s) in state_dict: "running_var". Unexpected key(s) in state_dict: "running_variance".',
      RangeError,
      (sd) => {
        sd.running_variance = sd.running_var;
        delete sd.running_var;
      },
    );
  });

  it('reports a wrong length or dtype, strict or not, changing nothing', () => {
    for (const strict of [true, false]) {
      failedLoad(
        'size mismatch for bias: copying a param with shape [4] from checkpoint, the shape in current model is [3]',
        RangeError,
        (sd) => {
          sd.bias = new Float32Array(4);
        },
        strict,
      );
      failedLoad(
        "Expected a Float32Array for running_mean (the module's dtype is float32) but received Float64Array",
        TypeError,
        (sd) => {
          sd.running_mean = new Float64Array(3);
        },
        strict,
      );
      failedLoad('non-negative safe integer for num_batches_tracked', RangeError, (sd) => {
        sd.num_batches_tracked = -1;
      }, strict);
    }
  });

  it('non-strict loading returns the missing and unexpected keys and loads the rest', () => {
    const m = new BatchNorm1d(2);
    const result = m.loadStateDict({ weight: Float32Array.of(5, 6), extra: Float32Array.of(1) }, { strict: false });
    expect(result).toEqual({ missingKeys: ['bias', 'running_mean', 'running_var'], unexpectedKeys: ['extra'] });
    expect(Array.from(m.weight!.data)).toEqual([5, 6]);
  });
});

describe('toAffine', () => {
  it('is the map eval mode applies', () => {
    const m = new BatchNorm2d(3, { dtype: 'float64' });
    m.weight!.data.set([1.5, -2, 0.5]);
    m.bias!.data.set([0.1, 0.2, -0.3]);
    m.runningMean!.set([1, -1, 4]);
    m.runningVar!.set([0.5, 2, 9]);
    const x = Float64Array.from({ length: 24 }, (_, i) => Math.cos(i) * 3);
    const y = m.eval().forward({ data: x, shape: [2, 3, 2, 2] }).data;
    const { scale, shift } = m.toAffine();
    for (let i = 0; i < 24; i++) {
      const c = Math.floor(i / 4) % 3;
      expect(x[i]! * scale[c]! + shift[c]!).toBeCloseTo(y[i]!, 12);
    }
  });

  it('needs running statistics', () => {
    expect(() => new BatchNorm2d(3, { trackRunningStats: false }).toAffine()).toThrow('trackRunningStats is false');
  });
});
