// Behaviour of the functional API beyond the fixtures: memory semantics, defaults, edge shapes, and a
// finite-difference check of the backward pass.
import { describe, expect, it } from 'vitest';

import { batchNorm, batchNormBackward, type FloatArray } from '../lib/index';

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

function randomArray<T extends FloatArray>(ctor: new (n: number) => T, length: number, random: () => number, scale = 4): T {
  const array = new ctor(length);
  for (let i = 0; i < length; i++) array[i] = random() * scale;
  return array;
}

describe('memory semantics', () => {
  it('writes into options.out and returns that very array', () => {
    const random = seeded(1);
    const input = { data: randomArray(Float64Array, 24, random), shape: [4, 3, 2] };
    const out = new Float64Array(24);
    const result = batchNorm(input, { training: true, out });
    expect(result.output.data).toBe(out);
    expect(out).toEqual(batchNorm(input, { training: true }).output.data);
  });

  it('normalizes in place in evaluation when out is the input itself', () => {
    const random = seeded(2);
    const data = randomArray(Float32Array, 30, random);
    const stats = { runningMean: Float32Array.of(0.5, -1, 2), runningVar: Float32Array.of(1, 4, 0.25) };
    const expected = batchNorm({ data, shape: [5, 3, 2] }, stats).output.data;
    const result = batchNorm({ data, shape: [5, 3, 2] }, { ...stats, out: data });
    expect(result.output.data).toBe(data);
    expect(data).toEqual(expected);
  });

  it('refuses a training output over its input (backward would read the output), changing nothing', () => {
    const random = seeded(2);
    const data = randomArray(Float32Array, 30, random);
    const before = data.slice();
    const runningMean = new Float32Array(3), runningVar = new Float32Array(3).fill(1);
    const arena = new Float32Array(40);
    arena.set(data, 5);
    const input = arena.subarray(5, 35);
    // The input itself, an equal view of it, and an output shifted over part of it.
    for (const [x, out] of [[data, data], [data, data.subarray(0)], [input, arena.subarray(0, 30)]] as const) {
      expect(() => batchNorm({ data: x, shape: [5, 3, 2] }, { training: true, runningMean, runningVar, out })).toThrow(
        "options.out must not overlap input.data in training: backward needs the forward's input",
      );
    }
    expect(data).toEqual(before);
    expect(runningMean).toEqual(new Float32Array(3));
    expect(runningVar).toEqual(new Float32Array(3).fill(1));
  });

  it('reads and writes subarray views at a byte offset without touching their neighbours', () => {
    const random = seeded(3);
    const plain = {
      input: randomArray(Float64Array, 24, random),
      weight: randomArray(Float64Array, 3, random),
      bias: randomArray(Float64Array, 3, random),
      runningMean: randomArray(Float64Array, 3, random),
      runningVar: Float64Array.from([1, 2, 3]),
    };
    // Everything packed into one buffer between sentinels.
    const arena = new Float64Array(80).fill(-777);
    let offset = 1;
    const view = <K extends keyof typeof plain>(key: K) => {
      const v = arena.subarray(offset, offset + plain[key].length);
      v.set(plain[key]);
      offset += plain[key].length + 1;
      return v;
    };
    const input = view('input');
    const weight = view('weight');
    const bias = view('bias');
    const runningMean = view('runningMean');
    const runningVar = view('runningVar');
    const out = arena.subarray(offset, offset + 24);
    const fromViews = batchNorm({ data: input, shape: [4, 3, 2] }, { weight, bias, runningMean, runningVar, training: true, out });
    const { input: plainInput, ...plainOptions } = plain;
    const fromCopies = batchNorm({ data: plainInput, shape: [4, 3, 2] }, { ...plainOptions, training: true });
    expect(fromViews.output.data).toEqual(fromCopies.output.data);
    expect(runningMean).toEqual(plain.runningMean);
    expect(runningVar).toEqual(plain.runningVar);
    const sentinels = [0, 25, 29, 33, 37, 41].map((i) => arena[i]);
    expect(sentinels).toEqual(Array(6).fill(-777));
    expect(arena.subarray(offset + 24)).toEqual(new Float64Array(80 - offset - 24).fill(-777));
  });

  it('works on SharedArrayBuffer-backed arrays, in and out', () => {
    const values = [1, 2, 3, 4, 5, 7, 11, 13];
    const shared = new Float64Array(new SharedArrayBuffer(8 * 8));
    shared.set(values);
    const out = new Float64Array(new SharedArrayBuffer(8 * 8));
    batchNorm({ data: shared, shape: [4, 2] }, { training: true, out });
    expect(Array.from(out)).toEqual(Array.from(batchNorm({ data: Float64Array.from(values), shape: [4, 2] }, { training: true }).output.data));
  });

  it('returns ordinary JS-owned arrays for new outputs', () => {
    const result = batchNorm({ data: new Float32Array([1, 2, 3, 5]), shape: [2, 2] }, { training: true });
    expect(result.output.data).toBeInstanceOf(Float32Array);
    expect(result.output.data.byteOffset).toBe(0);
    expect(result.output.data.buffer.byteLength).toBe(16);
    expect(result.output.shape).toEqual([2, 2]);
    expect(result.output.memoryFormat).toBe('contiguous');
  });
});

describe('outputs the call allocates', () => {
  // On the main thread, outputs of a megabyte and more are taken from uninitialized memory (lib/tensor.ts,
  // newOutputLike): correct only because every kernel writes every element of a forward output and of
  // gradInput. Proven here with outputs full of NaN given as `out`: each call must overwrite all of them
  // and give the bits of the allocating call.
  const cases: [string, number[], 'contiguous' | 'channelsLast'][] = [
    ['planar', [8, 16, 48, 48], 'contiguous'],
    ['interleaved (N, C)', [4096, 72], 'contiguous'],
    ['channels-last', [8, 24, 40, 40], 'channelsLast'],
    ['short rows', [2048, 33, 5], 'contiguous'],
  ];
  for (const dtype of [Float32Array, Float64Array]) {
    // One element type at a time; typed as float64 for the compiler (the calls are the same).
    const ctor = dtype as unknown as new (n: number) => Float64Array;
    it.each(cases)(`%s ${dtype.name}: train, eval and backward write every element of a NaN-filled out`, (_, shape, memoryFormat) => {
      const random = seeded(shape.length * 31 + shape[1]!);
      const elements = shape.reduce((a, b) => a * b, 1);
      expect(elements * dtype.BYTES_PER_ELEMENT).toBeGreaterThanOrEqual(1 << 20);
      const channels = shape[1]!;
      const input = { data: randomArray(ctor, elements, random), shape, memoryFormat };
      const gradOutput = { data: randomArray(ctor, elements, random), shape, memoryFormat };
      const weight = randomArray(ctor, channels, random).map((w) => w + 3);
      const bias = randomArray(ctor, channels, random);
      const nans = () => new ctor(elements).fill(NaN);
      for (const training of [true, false]) {
        const stats = () => ({ runningMean: randomArray(ctor, channels, seeded(7)), runningVar: randomArray(ctor, channels, seeded(8)).map(Math.abs) });
        const fresh = batchNorm(input, { training, weight, bias, ...stats() });
        const out = nans();
        const given = batchNorm(input, { training, weight, bias, ...stats(), out });
        expect(given.output.data).toBe(out);
        expect(Buffer.from(out.buffer).equals(Buffer.from(fresh.output.data.buffer))).toBe(true);
        expect(out.some(Number.isNaN)).toBe(false);
        // The allocated output owns its whole buffer.
        expect(fresh.output.data.byteOffset).toBe(0);
        expect(fresh.output.data.buffer.byteLength).toBe(elements * dtype.BYTES_PER_ELEMENT);

        const saved = training ? { saveMean: fresh.saveMean!, saveInvstd: fresh.saveInvstd! } : stats();
        const backwardOptions = { training, weight, ...saved };
        const gradients = batchNormBackward(gradOutput, input, backwardOptions);
        const gradInput = nans();
        batchNormBackward(gradOutput, input, { ...backwardOptions, out: { gradInput } });
        expect(Buffer.from(gradInput.buffer).equals(Buffer.from(gradients.gradInput!.data.buffer))).toBe(true);
        expect(gradInput.some(Number.isNaN)).toBe(false);
      }
    });
  }
});

describe('defaults and edge shapes', () => {
  it('defaults to evaluation, momentum 0.1 and eps 1e-5', () => {
    const random = seeded(4);
    const data = randomArray(Float64Array, 12, random);
    const runningMean = Float64Array.from([0.5, -1, 2]);
    const runningVar = Float64Array.from([1e-5, 4, 0.25]);
    const byDefault = batchNorm({ data, shape: [4, 3] }, { runningMean, runningVar }).output.data;
    for (let i = 0; i < 12; i++) {
      const c = i % 3;
      expect(byDefault[i]).toBeCloseTo((data[i]! - runningMean[c]!) / Math.sqrt(runningVar[c]! + 1e-5), 12);
    }
    const rm = new Float64Array(3);
    const rv = Float64Array.from([1, 1, 1]);
    const trained = batchNorm({ data, shape: [4, 3] }, { runningMean: rm, runningVar: rv, training: true });
    for (let c = 0; c < 3; c++) {
      const values = [0, 1, 2, 3].map((b) => data[b * 3 + c]!);
      const mean = values.reduce((a, v) => a + v, 0) / 4;
      const unbiased = values.reduce((a, v) => a + (v - mean) ** 2, 0) / 3;
      expect(rm[c]).toBeCloseTo(0.1 * mean, 14);
      expect(rv[c]).toBeCloseTo(0.1 * unbiased + 0.9, 14);
      expect(trained.saveMean[c]).toBeCloseTo(mean, 14);
    }
  });

  it('returns empty saved statistics in evaluation', () => {
    const result = batchNorm({ data: new Float32Array(6), shape: [2, 3] }, {
      runningMean: new Float32Array(3),
      runningVar: new Float32Array(3).fill(1),
    });
    expect(result.saveMean).toHaveLength(0);
    expect(result.saveInvstd).toHaveLength(0);
    expect(result.saveMean).toBeInstanceOf(Float32Array);
  });

  it('gives an empty output for an empty batch and leaves running stats alone', () => {
    const runningMean = Float64Array.from([1, 2, 3]);
    const runningVar = Float64Array.from([4, 5, 6]);
    const result = batchNorm({ data: new Float64Array(0), shape: [0, 3, 4] }, { runningMean, runningVar, training: true });
    expect(result.output.data).toHaveLength(0);
    expect(result.output.shape).toEqual([0, 3, 4]);
    expect(Array.from(runningMean)).toEqual([1, 2, 3]);
    expect(Array.from(runningVar)).toEqual([4, 5, 6]);
    const grads = batchNormBackward({ data: new Float64Array(0), shape: [0, 3, 4] }, result.output, {
      training: true,
      saveMean: result.saveMean,
      saveInvstd: result.saveInvstd,
    });
    expect(grads.gradInput!.data).toHaveLength(0);
    expect(Array.from(grads.gradWeight!)).toEqual([0, 0, 0]);
    expect(Array.from(grads.gradBias!)).toEqual([0, 0, 0]);
  });

  it('handles zero channels', () => {
    const result = batchNorm({ data: new Float32Array(0), shape: [4, 0, 3] }, { training: true });
    expect(result.output.data).toHaveLength(0);
    expect(result.saveMean).toHaveLength(0);
  });
});

describe('backward against finite differences (float64)', () => {
  // loss(x, w, b) = sum(batchNorm(x; w, b) * g): its gradient is backward(g).
  const shape = [3, 2, 4];
  const random = seeded(5);
  const x = randomArray(Float64Array, 24, random);
  const weight = randomArray(Float64Array, 2, random).map((v) => v + 2);
  const bias = randomArray(Float64Array, 2, random);
  const g = randomArray(Float64Array, 24, random);
  const runningMean = Float64Array.from([0.3, -0.2]);
  const runningVar = Float64Array.from([0.8, 1.7]);

  function loss(training: boolean, xs: Float64Array, w: Float64Array, b: Float64Array): number {
    const { output } = batchNorm(
      { data: xs, shape },
      { weight: w, bias: b, training, runningMean: runningMean.slice(), runningVar: runningVar.slice() },
    );
    let sum = 0;
    for (let i = 0; i < output.data.length; i++) sum += output.data[i]! * g[i]!;
    return sum;
  }

  function numericGradient(f: (values: Float64Array) => number, values: Float64Array): Float64Array {
    const h = 1e-6;
    return values.map((_, i) => {
      const plus = values.slice();
      const minus = values.slice();
      plus[i]! += h;
      minus[i]! -= h;
      return (f(plus) - f(minus)) / (2 * h);
    });
  }

  it.each([true, false])('training=%s', (training) => {
    const forward = batchNorm({ data: x, shape }, {
      weight, bias, training, runningMean: runningMean.slice(), runningVar: runningVar.slice(),
    });
    const grads = batchNormBackward({ data: g, shape }, { data: x, shape }, {
      weight, training, runningMean, runningVar, saveMean: forward.saveMean, saveInvstd: forward.saveInvstd,
    });
    const dx = numericGradient((xs) => loss(training, xs, weight, bias), x);
    const dw = numericGradient((w) => loss(training, x, w, bias), weight);
    const db = numericGradient((b) => loss(training, x, weight, b), bias);
    for (const [analytic, numeric] of [
      [grads.gradInput!.data, dx],
      [grads.gradWeight!, dw],
      [grads.gradBias!, db],
    ] as const) {
      const scale = Math.max(...Array.from(numeric, Math.abs));
      for (let i = 0; i < numeric.length; i++) expect(Math.abs(analytic[i]! - numeric[i]!)).toBeLessThan(1e-7 * scale);
    }
  });
});
