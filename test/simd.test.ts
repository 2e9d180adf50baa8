// The dispatched kernel path against the scalar oracle on random shapes whose sizes straddle the vector
// widths (tails, tiny spatial sizes, both traversals), and bitwise determinism across thread counts.
import { describe, expect, it } from 'vitest';

import { type FloatArray, cpuCapability, getNumThreads, setNumThreads } from '../lib/index';
import { native } from '../lib/native';
import { backwardArguments, forwardArguments } from '../lib/native-arguments';
import { expectClose, scaleOf } from './helpers/compare';

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state ^ (state >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    return state / 2 ** 32;
  };
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

interface Case {
  ctor: Ctor;
  batch: number;
  channels: number;
  spatial: number;
  training: boolean;
  x: FloatArray;
  dy: FloatArray;
  weight: FloatArray | null;
  bias: FloatArray | null;
  runningMean: FloatArray;
  runningVar: FloatArray;
  eps?: number;
}

function makeCase(random: () => number, ctor: Ctor, batch: number, channels: number, spatial: number, training: boolean): Case {
  const n = batch * channels * spatial;
  const offset = (random() - 0.5) * 20;
  const fill = (length: number, f: () => number): FloatArray => {
    const array = new ctor(length);
    for (let i = 0; i < length; i++) array[i] = f();
    return array;
  };
  return {
    ctor,
    batch,
    channels,
    spatial,
    training,
    x: fill(n, () => offset + (random() - 0.5) * 4),
    dy: fill(n, () => random() - 0.5),
    weight: random() < 0.7 ? fill(channels, () => 0.5 + random()) : null,
    bias: random() < 0.7 ? fill(channels, () => random() - 0.5) : null,
    runningMean: fill(channels, () => offset + random() - 0.5),
    runningVar: fill(channels, () => 0.5 + random()),
  };
}

/** Runs forward and backward on the dispatched path or the oracle; returns every array written. */
function run(c: Case, reference: boolean): FloatArray[] {
  const binding = native();
  const forward = reference ? binding.forwardReference : binding.forward;
  const backward = reference ? binding.backwardReference : binding.backward;
  const output = new c.ctor(c.x.length);
  const runningMean = c.runningMean.slice();
  const runningVar = c.runningVar.slice();
  const saveMean = new c.ctor(c.training ? c.channels : 0);
  const saveInvstd = new c.ctor(c.training ? c.channels : 0);
  forward(...forwardArguments({
    input: c.x, output, batch: c.batch, channels: c.channels, spatial: c.spatial, weight: c.weight, bias: c.bias,
    runningMean, runningVar, saveMean: c.training ? saveMean : null, saveInvstd: c.training ? saveInvstd : null,
    training: c.training, momentum: 0.1, eps: c.eps ?? 1e-5,
  }));
  const gradInput = new c.ctor(c.x.length);
  const gradWeight = new c.ctor(c.channels);
  const gradBias = new c.ctor(c.channels);
  backward(...backwardArguments({
    gradOutput: c.dy, input: c.x, batch: c.batch, channels: c.channels, spatial: c.spatial, weight: c.weight,
    runningMean: c.runningMean, runningVar: c.runningVar, saveMean: c.training ? saveMean : null,
    saveInvstd: c.training ? saveInvstd : null, gradInput, gradWeight, gradBias, training: c.training,
    eps: c.eps ?? 1e-5,
  }));
  return [output, runningMean, runningVar, saveMean, saveInvstd, gradInput, gradWeight, gradBias];
}

/** Every geometry this file compares with the oracle, for the walk coverage test at the end. */
const compared: { float64: boolean; batch: number; channels: number; spatial: number; training: boolean }[] = [];
function comparing(ctor: Ctor, batch: number, channels: number, spatial: number, training: boolean): void {
  compared.push({ float64: ctor === Float64Array, batch, channels, spatial, training });
}

const LABELS = ['output', 'runningMean', 'runningVar', 'saveMean', 'saveInvstd', 'gradInput', 'gradWeight', 'gradBias'];

describe(`kernel path ${cpuCapability()} against the scalar oracle`, () => {
  const random = seeded(20261129);
  // Spatial sizes around every vector width (1..17, 31..33, 63..65) and a few larger ones.
  const spatialSizes = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 49, 63, 64, 65, 100, 129];
  const cases: [string, Case][] = [];
  for (const ctor of [Float32Array, Float64Array]) {
    for (const spatial of spatialSizes) {
      for (const training of [true, false]) {
        const batch = 1 + Math.floor(random() * 5) + (spatial === 1 ? 1 : 0);
        const channels = 1 + Math.floor(random() * 40);
        cases.push([`${ctor.name} N=${batch} C=${channels} S=${spatial} ${training ? 'train' : 'eval'}`,
          makeCase(random, ctor, batch, channels, spatial, training)]);
      }
    }
  }
  // BatchNorm1d-like (N, C) shapes across the vector widths of channels.
  for (const channels of [1, 7, 8, 9, 16, 17, 33, 100, 1030]) {
    cases.push([`Float32Array (N=37, C=${channels}) train`, makeCase(random, Float32Array, 37, channels, 1, true)]);
  }
  // Rows of one to four whole chunks, whose coefficients the float path holds in registers.
  for (const channels of [8, 16, 24, 32, 48, 64]) {
    for (const training of [true, false]) {
      cases.push([`Float32Array (N=41, C=${channels}) ${training ? 'train' : 'eval'}`,
        makeCase(random, Float32Array, 41, channels, 1, training)]);
    }
  }
  // Long (N, C) tensors, cut into row blocks whose partial sums are combined in order.
  for (const ctor of [Float32Array, Float64Array]) {
    for (const training of [true, false]) {
      cases.push([`${ctor.name} (N=20011, C=5) ${training ? 'train' : 'eval'}`, makeCase(random, ctor, 20011, 5, 1, training)]);
      cases.push([`${ctor.name} (N=3001, C=3, S=3) ${training ? 'train' : 'eval'}`, makeCase(random, ctor, 3001, 3, 3, training)]);
    }
  }

  for (const [, c] of cases) comparing(c.ctor, c.batch, c.channels, c.spatial, c.training);
  it.each(cases)('%s', (_label, c) => {
    const ours = run(c, false);
    const oracle = run(c, true);
    const rtol = c.ctor === Float32Array ? 1e-6 : 1e-12;
    ours.forEach((array, i) => {
      // grad_input is a difference of terms of size |dy| * invstd * |w|: scale its tolerance by them.
      const floor = i === 5 ? scaleOf(c.dy) * scaleOf(oracle[4]!.length ? oracle[4]! : [1]) * 3 : 0;
      expectClose(array, oracle[i]!, rtol, LABELS[i]!, floor);
    });
  });
});

describe('special values in float arithmetic', () => {
  // float32 eval outputs are computed as fma(d, s_hi, fma(d, s_lo, t)) on the FMA paths: an infinite x
  // must still give an infinite y (not Inf - Inf = NaN), also where s is exactly a float (s_lo = 0).
  it.each([1, 5, 17, 49])('eval maps +-Inf and NaN as the oracle does, S=%i', (spatial) => {
    const random = seeded(spatial);
    const channels = 3;
    const c = makeCase(random, Float32Array, 4, channels, spatial, false);
    c.runningVar.set([1, 4, 0.25]);  // with eps 0: scales of exactly 1, 0.5 and 2 (s_lo = 0)
    c.eps = 0;
    c.weight = new Float32Array([1, -1, 0.5]);
    for (let i = 0; i < c.x.length; i += 7) c.x[i] = [Infinity, -Infinity, NaN][(i / 7) % 3]!;
    const ours = run(c, false)[0]!;
    const oracle = run(c, true)[0]!;
    expect(ours.some((v) => Math.abs(v) === Infinity)).toBe(true);
    expectClose(ours, oracle, 1e-6, 'output');
  });
});

describe('large outputs, written with non-temporal stores', () => {
  // From 8 MB on, outputs are streamed once the row reaches vector alignment; a view one element into
  // its buffer makes every row start misaligned.
  it.each([true, false])('match the oracle with misaligned destinations, training=%s', (training) => {
    const random = seeded(77);
    const [batch, channels, spatial] = [4, 8, 131073];
    comparing(Float32Array, batch, channels, spatial, training);
    const c = makeCase(random, Float32Array, batch, channels, spatial, training);
    const n = c.x.length;
    const binding = native();
    const outputs = [false, true].map((reference) => {
      const output = new Float32Array(n + 1).subarray(1);
      const gradInput = new Float32Array(n + 3).subarray(3);
      const save = [new Float32Array(training ? channels : 0), new Float32Array(training ? channels : 0)];
      const forward = reference ? binding.forwardReference : binding.forward;
      const backward = reference ? binding.backwardReference : binding.backward;
      forward(...forwardArguments({
        input: c.x, output, batch, channels, spatial, weight: c.weight, bias: c.bias,
        runningMean: c.runningMean.slice(), runningVar: c.runningVar.slice(), saveMean: training ? save[0]! : null,
        saveInvstd: training ? save[1]! : null, training, momentum: 0.1, eps: 1e-5,
      }));
      backward(...backwardArguments({
        gradOutput: c.dy, input: c.x, batch, channels, spatial, weight: c.weight, runningMean: c.runningMean,
        runningVar: c.runningVar, saveMean: training ? save[0]! : null, saveInvstd: training ? save[1]! : null,
        gradInput, gradWeight: null, gradBias: null, training, eps: 1e-5,
      }));
      return [output, gradInput] as const;
    });
    expectClose(outputs[0]![0], outputs[1]![0], 1e-6, 'output');
    expectClose(outputs[0]![1], outputs[1]![1], 1e-6, 'gradInput', scaleOf(c.dy) * 10);
  });
});

describe('interleaved tensors larger than the cache', () => {
  for (const training of [true, false]) comparing(Float32Array, 42000, 100, 1, training);
  // From 16 MB on, the float normalization of rows that are not whole chunks walks one row at a time.
  it.each([true, false])('match the oracle: (42000, 100) float32, training=%s', (training) => {
    const c = makeCase(seeded(5), Float32Array, 42000, 100, 1, training);
    const ours = run(c, false);
    const oracle = run(c, true);
    ours.forEach((array, i) => {
      const floor = i === 5 ? scaleOf(c.dy) * scaleOf(oracle[4]!.length ? oracle[4]! : [1]) * 3 : 0;
      expectClose(array, oracle[i]!, 1e-6, LABELS[i]!, floor);
    });
  });
});

describe('channels-last sized tensors larger than the cache', () => {
  // From 8 MB on, rows longer than the coefficients held in registers are normalized and differentiated
  // in one flat walk with non-temporal stores from the first aligned chunk; the offset moves that chunk.
  const cases = [256, 80].flatMap((channels) => [0, 1, 13].flatMap((offset) =>
    [true, false].map((training) => [channels, offset, training] as const)));
  const rowsFor = (channels: number) => Math.ceil((8.2 * 2 ** 20) / 4 / channels);
  for (const [channels, , training] of cases) comparing(Float32Array, rowsFor(channels), channels, 1, training);
  it.each(cases)('match the oracle: C = %i, output offset %i, training=%s', (channels, offset, training) => {
    const rows = rowsFor(channels);
    const c = makeCase(seeded(channels + offset), Float32Array, rows, channels, 1, training);
    const binding = native();
    const outputs = [false, true].map((reference) => {
      const output = new Float32Array(c.x.length + offset).subarray(offset);
      const gradInput = new Float32Array(c.x.length + offset).subarray(offset);
      const save = [new Float32Array(training ? channels : 0), new Float32Array(training ? channels : 0)];
      const forward = reference ? binding.forwardReference : binding.forward;
      const backward = reference ? binding.backwardReference : binding.backward;
      forward(...forwardArguments({
        input: c.x, output, batch: rows, channels, spatial: 1, weight: c.weight, bias: c.bias,
        runningMean: c.runningMean.slice(), runningVar: c.runningVar.slice(), saveMean: training ? save[0]! : null,
        saveInvstd: training ? save[1]! : null, training, momentum: 0.1, eps: 1e-5,
      }));
      backward(...backwardArguments({
        gradOutput: c.dy, input: c.x, batch: rows, channels, spatial: 1, weight: c.weight, runningMean: c.runningMean,
        runningVar: c.runningVar, saveMean: training ? save[0]! : null, saveInvstd: training ? save[1]! : null,
        gradInput, gradWeight: null, gradBias: null, training, eps: 1e-5,
      }));
      return [output, gradInput] as const;
    });
    expectClose(outputs[0]![0], outputs[1]![0], 1e-6, 'output');
    expectClose(outputs[0]![1], outputs[1]![1], 1e-6, 'gradInput', scaleOf(c.dy) * 10);
  });
});

describe('threads', () => {
  /** One hex digest-like string per array, so large results compare quickly and exactly. */
  function bytesOf(arrays: FloatArray[]): string[] {
    return arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64'));
  }

  it.each([
    ['planar (8, 32, 32, 32)', 8, 32, 32 * 32],
    ['interleaved (4096, 256)', 4096, 256, 1],
    ['interleaved (64, 256, 7, 7)', 64, 256, 49],
    ['interleaved in row blocks (100000, 8)', 100000, 8, 1],
    // Large enough that one thread streams its outputs and two store them through the cache.
    ['interleaved, streamed on one thread only (256, 256, 7, 7)', 256, 256, 49],
  ] as const)('give bitwise identical results with 1 and 2 threads: %s', (_label, batch, channels, spatial) => {
    const previous = getNumThreads();
    try {
      for (const ctor of [Float32Array, Float64Array]) {
        const c = makeCase(seeded(batch + channels), ctor, batch, channels, spatial, true);
        setNumThreads(1);
        const single = bytesOf(run(c, false));
        setNumThreads(2);
        const double = bytesOf(run(c, false));
        const again = bytesOf(run(c, false));
        expect(double).toEqual(single);
        expect(again).toEqual(single);
      }
    } finally {
      setNumThreads(previous);
    }
  });

  it('validates setNumThreads', () => {
    expect(() => setNumThreads(0)).toThrow('Expected an integer from 1 to 256 for threads but received 0');
    expect(() => setNumThreads(1.5)).toThrow(RangeError);
    expect(() => setNumThreads('2' as never)).toThrow(TypeError);
    expect(getNumThreads()).toBeGreaterThanOrEqual(1);
  });
});

describe(`walks compared with the oracle on kernel path ${cpuCapability()}`, () => {
  // Every (phase, walk) pair the planner can choose on this path (native/kernel/cpu/parts/planner.h) is
  // taken by at least one geometry this file compares with the oracle. float32 elementwise passes run in
  // float arithmetic on the FMA paths, in double on the default path.
  const inFloats = cpuCapability() !== 'default';
  const floatWalks = ['streamed-rows', 'column-groups', 'row-groups', 'single-rows'];
  const expected = [
    ...['planar-rows', 'column-groups', 'accumulator-rows'].flatMap((w) => [`train reduction ${w}`, `backward reduction ${w}`]),
    ...['planar-rows', ...(inFloats ? floatWalks : ['row-groups'])].flatMap((w) => [`train elementwise ${w}`, `backward elementwise ${w}`]),
    ...(inFloats ? ['flat-joined', ...floatWalks] : ['planar-rows', 'row-groups']).map((w) => `eval elementwise ${w}`),
  ];
  it('covers every walk of every phase', () => {
    const covered = new Set<string>();
    for (const g of compared) {
      const plan = (phase: 0 | 1 | 2) => native().kernelPlan(g.float64, g.batch, g.channels, g.spatial, phase, false, 1);
      const add = (phase: string, p: ReturnType<typeof plan>) => {
        for (const [kind, walk] of [['reduction', p.reduction], ['reduction', p.reductionLast],
          ['elementwise', p.elementwise], ['elementwise', p.elementwiseLast]]) {
          if (walk !== '') covered.add(`${phase} ${kind} ${walk}`);
        }
      };
      // Forward runs the phase of its case; backward always runs (training or eval sums alike).
      add(g.training ? 'train' : 'eval', plan(g.training ? 0 : 1));
      add('backward', plan(2));
    }
    const missing = expected.filter((pair) => !covered.has(pair));
    expect(missing).toEqual([]);
  });
});
