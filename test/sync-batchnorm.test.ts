// SyncBatchNorm (issue 23) over an in-process group of 1 to 4 ranks, against BatchNorm*d on the
// concatenated batch and against PyTorch's whole-batch fixtures: outputs, gradInput slices, summed
// gradWeight/gradBias, running statistics (bit-identical on every rank), mismatches, failures.
import { describe, expect, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  type BatchNormBase,
  BatchNormStateError,
  type FloatArray,
  SyncBatchNorm,
  type Tensor,
} from '../lib/index';
import { bytes } from './helpers/arrays';
import { expectClose, toleranceFor } from './helpers/compare';
import { decode, decodeState, loadModuleFixtures } from './helpers/fixtures';
import { localGroups } from './helpers/local-group';

type DType = 'float32' | 'float64';
type Format = 'contiguous' | 'channelsLast';

function randomArray(dtype: DType, length: number, seed: number): FloatArray {
  let state = seed >>> 0;
  const array = dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    array[i] = (state / 2 ** 32) * 4 - 1.5 + (i % 7) * 0.1;
  }
  return array;
}

/** Splits a batch (N first in both layouts) into shards of the given batch sizes. */
function shards(data: FloatArray, shape: number[], sizes: number[]): FloatArray[] {
  const perItem = shape.slice(1).reduce((a, b) => a * b, 1);
  let begin = 0;
  return sizes.map((n) => {
    const shard = data.slice(begin * perItem, (begin + n) * perItem);
    begin += n;
    return shard;
  });
}

const CLASSES = { 2: BatchNorm1d, 3: BatchNorm1d, 4: BatchNorm2d, 5: BatchNorm3d } as const;

interface Case {
  ranks: number[];
  shape: number[];
  dtype: DType;
  format: Format;
  momentum: number | null;
  affine: boolean;
  track: boolean;
}

const CASES: Case[] = [
  { ranks: [6], shape: [6, 3], dtype: 'float32', format: 'contiguous', momentum: 0.1, affine: true, track: true },
  { ranks: [3, 5], shape: [8, 4], dtype: 'float32', format: 'contiguous', momentum: 0.1, affine: true, track: true },
  { ranks: [2, 0, 3], shape: [5, 3, 7], dtype: 'float64', format: 'contiguous', momentum: null, affine: true, track: true },
  { ranks: [1, 2, 1, 4], shape: [8, 5, 3, 4], dtype: 'float32', format: 'channelsLast', momentum: 0.3, affine: false, track: true },
  { ranks: [2, 2, 2, 2], shape: [8, 3, 4, 4], dtype: 'float64', format: 'contiguous', momentum: 0.1, affine: true, track: false },
  { ranks: [1, 3], shape: [4, 2, 2, 3, 3], dtype: 'float32', format: 'channelsLast', momentum: 0.1, affine: true, track: true },
  { ranks: [3, 1, 0], shape: [4, 6, 2, 2, 2], dtype: 'float64', format: 'contiguous', momentum: null, affine: false, track: true },
  { ranks: [40, 0, 24, 36], shape: [100, 64, 33], dtype: 'float32', format: 'contiguous', momentum: 0.1, affine: true, track: true },
];

function name(c: Case): string {
  return `${c.ranks.length} rank(s) ${JSON.stringify(c.ranks)} of (${c.shape}) ${c.dtype} ${c.format} momentum ${c.momentum}` +
    `${c.affine ? '' : ' no affine'}${c.track ? '' : ' no tracking'}`;
}

describe('SyncBatchNorm against BatchNorm*d on the concatenated batch', () => {
  it.each(CASES.map((c) => [name(c), c] as const))('%s', async (_name, c) => {
    const C = c.shape[1]!;
    const options = { momentum: c.momentum, affine: c.affine, trackRunningStats: c.track, dtype: c.dtype };
    const whole = new CLASSES[c.shape.length as 2 | 3 | 4 | 5](C, options) as unknown as BatchNormBase;
    const groups = localGroups(c.ranks.length, { shuffleSeed: 7 });
    const modules = groups.map((processGroup) => new SyncBatchNorm(C, { ...options, processGroup }) as unknown as BatchNormBase);
    // Non-trivial parameters and buffers, the same everywhere.
    for (const m of [whole, ...modules]) {
      m.weight?.data.set(randomArray(c.dtype, C, 11).map((v) => v + 2));
      m.bias?.data.set(randomArray(c.dtype, C, 12));
      m.runningMean?.set(randomArray(c.dtype, C, 13));
    }
    const rtol = toleranceFor(c.dtype);
    for (let step = 0; step < 2; step++) {
      const total = c.shape[0]!;
      const elements = c.shape.reduce((a, b) => a * b, 1);
      const x = randomArray(c.dtype, elements, 100 + step);
      const dy = randomArray(c.dtype, elements, 200 + step);
      const tensor = (data: FloatArray, n: number): Tensor => ({ data, shape: [n, ...c.shape.slice(1)], memoryFormat: c.format });
      const expected = whole.forward(tensor(x, total));
      const expectedGrad = whole.backward(tensor(dy, total));
      const xs = shards(x, c.shape, c.ranks);
      const dys = shards(dy, c.shape, c.ranks);
      const outputs = await Promise.all(modules.map((m, r) => m.forwardAsync(tensor(xs[r]!, c.ranks[r]!))));
      const grads = await Promise.all(modules.map((m, r) => m.backwardAsync(tensor(dys[r]!, c.ranks[r]!))));
      const expectedOutputs = shards(expected.data, c.shape, c.ranks);
      const expectedGrads = shards(expectedGrad.data, c.shape, c.ranks);
      for (let r = 0; r < c.ranks.length; r++) {
        expect(outputs[r]!.memoryFormat).toBe(c.format);
        expectClose(outputs[r]!.data, expectedOutputs[r]!, rtol, `step ${step} rank ${r} output`, 1);
        expectClose(grads[r]!.data, expectedGrads[r]!, rtol, `step ${step} rank ${r} gradInput`, 1);
      }
      // Running statistics: bit-identical on every rank, and the whole batch's.
      for (const m of modules) {
        expect(m.numBatchesTracked).toBe(whole.numBatchesTracked);
        if (!c.track) continue;
        expect(bytes(m.runningMean!)).toBe(bytes(modules[0]!.runningMean!));
        expect(bytes(m.runningVar!)).toBe(bytes(modules[0]!.runningVar!));
      }
      if (c.track) {
        expectClose(modules[0]!.runningMean, whole.runningMean, rtol, `step ${step} runningMean`, 1);
        expectClose(modules[0]!.runningVar, whole.runningVar, rtol, `step ${step} runningVar`, 1);
      }
      // The ranks' weight and bias gradients sum to the whole batch's.
      if (c.affine) {
        for (const key of ['weight', 'bias'] as const) {
          const summed = new Float64Array(C);
          for (const m of modules) m[key]!.grad?.forEach((v, i) => (summed[i]! += v));
          expectClose(whole[key]!.grad!, summed, c.dtype === 'float64' ? 1e-10 : 1e-4, `step ${step} ${key} gradient`, 1);
        }
      }
    }
  });

  it('evaluation is BatchNorm*d exactly, and sync calls refuse a synchronized step', async () => {
    const [g0, g1] = localGroups(2);
    const a = new SyncBatchNorm(3, { processGroup: g0! });
    const b = new SyncBatchNorm(3, { processGroup: g1! });
    const x = { data: randomArray('float32', 12, 1) as Float32Array, shape: [4, 3] };
    await Promise.all([a.forwardAsync(x), b.forwardAsync(x)]);
    const reference = new BatchNorm1d(3);
    reference.loadStateDict(a.stateDict());
    a.eval();
    reference.eval();
    expect(bytes(a.forward(x).data)).toBe(bytes(reference.forward(x).data));
    expect(bytes(a.backward(x).data)).toBe(bytes(reference.backward(x).data));
    a.train();
    expect(() => a.forward(x)).toThrow('SyncBatchNorm.forward() in training waits for the other ranks of its process group: call forwardAsync()');
    expect(String(a)).toBe('SyncBatchNorm(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)');
    expect(Object.keys(a.stateDict())).toEqual(Object.keys(new BatchNorm2d(3).stateDict()));
  });

  it('fromModule keeps a BatchNorm2d\'s options, parameters and buffers', async () => {
    const bn = new BatchNorm2d(4, { momentum: null, eps: 1e-3 });
    bn.forward({ data: randomArray('float32', 64, 3) as Float32Array, shape: [4, 4, 2, 2] });
    bn.weight!.data.fill(2);
    bn.bias!.requiresGrad = false;
    const [g] = localGroups(1);
    const sync = SyncBatchNorm.fromModule(bn, g!);
    expect(sync.stateDict()).toEqual(bn.stateDict());
    expect([sync.eps, sync.momentum, sync.bias!.requiresGrad]).toEqual([1e-3, null, false]);
    expect(() => SyncBatchNorm.fromModule({} as never, g!)).toThrow(TypeError);
  });
});

describe('SyncBatchNorm against PyTorch fixtures of the whole batch', () => {
  const { sequences } = loadModuleFixtures();
  const picked = sequences.filter((s) => s.steps[0]!.training && s.shape[0]! >= 2);
  it.each(picked.map((s) => [s.name, s] as const))('%s split over two ranks reproduces its training steps', async (_name, sequence) => {
    const N = sequence.shape[0]!;
    const split = [Math.floor(N / 2), N - Math.floor(N / 2)];
    const groups = localGroups(2);
    const modules = groups.map(
      (processGroup) =>
        new SyncBatchNorm(sequence.shape[1]!, {
          processGroup, dtype: sequence.dtype, eps: sequence.options.eps, momentum: sequence.options.momentum,
          affine: sequence.options.affine, trackRunningStats: sequence.options.trackRunningStats,
        }),
    );
    for (const m of modules) m.loadStateDict(decodeState(sequence.initialState) as never);
    const rtol = toleranceFor(sequence.dtype);
    for (const [index, step] of sequence.steps.entries()) {
      if (!step.training) break;
      if (step.zeroGradBefore) for (const m of modules) m.zeroGrad();
      const tensor = (data: FloatArray, n: number): Tensor<never> =>
        ({ data, shape: [n, ...sequence.shape.slice(1)], memoryFormat: sequence.memoryFormat }) as never;
      const xs = shards(decode(step.input)!, sequence.shape, split);
      const dys = shards(decode(step.gradOutput)!, sequence.shape, split);
      const outputs = await Promise.all(modules.map((m, r) => m.forwardAsync(tensor(xs[r]!, split[r]!))));
      const grads = await Promise.all(modules.map((m, r) => m.backwardAsync(tensor(dys[r]!, split[r]!))));
      const expectedOutputs = shards(decode(step.output)!, sequence.shape, split);
      const expectedGrads = shards(decode(step.gradInput)!, sequence.shape, split);
      for (let r = 0; r < 2; r++) {
        expectClose(outputs[r]!.data, expectedOutputs[r]!, rtol, `step ${index} rank ${r} output`, 1);
        expectClose(grads[r]!.data, expectedGrads[r]!, rtol, `step ${index} rank ${r} gradInput`, 1);
      }
      const state = decodeState(step.state);
      for (const key of ['running_mean', 'running_var'] as const) {
        if (!(key in state)) continue;
        expectClose(modules[0]!.stateDict()[key] as FloatArray, state[key] as FloatArray, rtol, `step ${index} ${key}`, 1);
      }
      if ('num_batches_tracked' in state) expect(modules[1]!.numBatchesTracked).toBe(state.num_batches_tracked);
    }
  });
});

describe('SyncBatchNorm failures', () => {
  it('ranks that disagree on the options all throw the same RangeError and change nothing', async () => {
    const [g0, g1, g2] = localGroups(3);
    const a = new SyncBatchNorm(3, { processGroup: g0! });
    const b = new SyncBatchNorm(3, { processGroup: g1!, eps: 1e-3 });
    const c = new SyncBatchNorm(3, { processGroup: g2! });
    const x = { data: randomArray('float32', 12, 1) as Float32Array, shape: [4, 3] };
    const results = await Promise.allSettled([a.forwardAsync(x), b.forwardAsync(x), c.forwardAsync(x)]);
    const messages = results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'resolved'));
    expect(messages[0]).toBe('SyncBatchNorm: the ranks of the process group disagree on eps (rank 0: 0.00001, rank 1: 0.001, rank 2: 0.00001); nothing was changed');
    expect(new Set(messages).size).toBe(1);
    for (const m of [a, b, c]) {
      expect(m.numBatchesTracked).toBe(0);
      expect(Array.from(m.runningMean!)).toEqual([0, 0, 0]);
    }
  });

  it('one value per channel over all ranks is PyTorch\'s error on every rank; a bad transport is a RangeError', async () => {
    const [g0, g1] = localGroups(2);
    const a = new SyncBatchNorm(2, { processGroup: g0! });
    const b = new SyncBatchNorm(2, { processGroup: g1! });
    const results = await Promise.allSettled([
      a.forwardAsync({ data: new Float32Array(2), shape: [1, 2] }),
      b.forwardAsync({ data: new Float32Array(0), shape: [0, 2] }),
    ]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as Error).message).toMatch(/^Expected more than 1 value per channel when training, got 1 over the 2 ranks/);
    }
    const broken = new SyncBatchNorm(2, { processGroup: { rank: 0, size: 2, allGather: async () => [new Float64Array(1)] } });
    await expect(broken.forwardAsync({ data: new Float32Array(4), shape: [2, 2] })).rejects.toThrow(
      'processGroup.allGather must resolve with 2 arrays (one per rank) but resolved with an Array of 1',
    );
    expect(broken.numBatchesTracked).toBe(0);
    expect(() => new SyncBatchNorm(2, { processGroup: { rank: 2, size: 2, allGather: async () => [] } })).toThrow(
      'Expected an integer from 0 to 1 (size - 1) for options.processGroup.rank but received 2 of type number',
    );
    expect(() => new SyncBatchNorm(2, {} as never)).toThrow('options.processGroup');
  });

  it('checkInputUnchanged: a synchronized backward whose input changed throws before anything is written', async () => {
    const [g0, g1] = localGroups(2);
    const a = new SyncBatchNorm(2, { processGroup: g0!, checkInputUnchanged: true });
    const b = new SyncBatchNorm(2, { processGroup: g1!, checkInputUnchanged: true });
    const xa = { data: randomArray('float32', 8, 4) as Float32Array, shape: [4, 2] };
    const xb = { data: randomArray('float32', 8, 5) as Float32Array, shape: [4, 2] };
    await Promise.all([a.forwardAsync(xa), b.forwardAsync(xb)]);
    xa.data[3] = xa.data[3]! + 1;
    await expect(a.backwardAsync(xa)).rejects.toThrow('SyncBatchNorm.backward(): input.data changed after forward() read it');
    expect(a.weight!.grad).toBeNull();
  });

  it('a backward without its forward, or a second one, is a BatchNormStateError', async () => {
    const [g0, g1] = localGroups(2);
    const a = new SyncBatchNorm(2, { processGroup: g0! });
    const b = new SyncBatchNorm(2, { processGroup: g1! });
    const x = { data: randomArray('float32', 8, 4) as Float32Array, shape: [4, 2] };
    await Promise.all([a.forwardAsync(x), b.forwardAsync(x)]);
    await Promise.all([a.backwardAsync(x), b.backwardAsync(x)]);
    await expect(a.backwardAsync(x)).rejects.toThrow(BatchNormStateError);
    expect(() => a.backward(x)).toThrow(BatchNormStateError);
  });
});
