// What a training script meets in its first hour (issue 24): no silent wrong gradients from an input
// overwritten between forward and backward, tensors read as the caller meant or refused with a way
// out, PyTorch's module conveniences (repr, named parameters and buffers, frozen parameters) and
// error messages that offer only what exists.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';

import ndarray from 'ndarray';
// eslint-disable-next-line @typescript-eslint/no-require-imports
import stdlibNdarray = require('@stdlib/ndarray-ctor');
import { describe, expect, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  BatchNormStateError,
  InstanceNorm1d,
  InstanceNorm2d,
  InstanceNorm3d,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  asyncMemoryGuard,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  loadSafetensors,
  saveSafetensors,
  setAsyncMemoryGuard,
} from '../lib/index';
import { bytes, ramp } from './helpers/arrays';
import { loadModuleFixtures } from './helpers/fixtures';

const CLASSES = { BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LazyBatchNorm1d, LazyBatchNorm2d };

function input(shape: number[], seed = 1) {
  return { data: ramp(shape.reduce((a, b) => a * b), seed), shape };
}

describe('an input overwritten between forward and backward', () => {
  it('a training forward in place is refused by the modules, changing nothing', () => {
    const m = new BatchNorm2d(3);
    const x = input([4, 3, 2, 2]);
    const before = { data: x.data.slice(), state: m.stateDict() };
    expect(() => m.forward(x, { out: x.data })).toThrow(RangeError);
    expect(() => m.forward(x, { out: x.data.subarray(0) })).toThrow("options.out must not overlap input.data in training");
    // No running statistic, counter or input changed; the failed forward left nothing to backward.
    expect(x.data).toEqual(before.data);
    expect(m.stateDict()).toEqual(before.state);
    expect(() => m.backward(input([4, 3, 2, 2], 2))).toThrow(BatchNormStateError);
    // Without tracking, evaluation uses batch statistics, so it is refused in place too.
    const untracked = new BatchNorm1d(3, { trackRunningStats: false }).eval();
    const y = input([4, 3]);
    expect(() => untracked.forward(y, { out: y.data })).toThrow('options.out must not overlap input.data in training');
  });

  it('an evaluation in place runs; a backward that needs the overwritten input is a BatchNormStateError', () => {
    const m = new BatchNorm2d(3).eval();
    const x = input([4, 3, 2, 2]);
    const expected = new BatchNorm2d(3).eval().forward(input([4, 3, 2, 2])).data;
    expect(m.forward(x, { out: x.data }).data).toBe(x.data);
    expect(bytes(x.data)).toBe(bytes(expected));
    expect(() => m.backward(input([4, 3, 2, 2], 2))).toThrow(
      "BatchNorm2d.backward() needs the forward's input, which that forward overwrote with its output",
    );
    expect(m.weight!.grad).toBeNull();
    // Without affine, the evaluation gradient is dy * invstd alone: it runs, as it does not read the input.
    const plain = new BatchNorm2d(3, { affine: false }).eval();
    const z = input([4, 3, 2, 2]);
    plain.forward(z, { out: z.data });
    const dy = input([4, 3, 2, 2], 2);
    const reference = new BatchNorm2d(3, { affine: false }).eval();
    reference.forward(input([4, 3, 2, 2]));
    expect(bytes(plain.backward(dy).data)).toBe(bytes(reference.backward(dy).data));
  });

  it('checkInputUnchanged: backward throws before writing anything when the input changed', () => {
    for (const training of [true, false]) {
      const m = new BatchNorm2d(3, { checkInputUnchanged: true }).train(training);
      const x = input([4, 3, 2, 2]);
      m.forward(x);
      const original = x.data[7]!;
      x.data[7] = original + 1;
      const gradInput = new Float32Array(x.data.length).fill(-5);
      expect(() => m.backward(input([4, 3, 2, 2], 2), { out: { gradInput } })).toThrow(
        'BatchNorm2d.backward(): input.data changed after forward() read it',
      );
      expect(gradInput.every((v) => v === -5)).toBe(true);
      expect(m.weight!.grad).toBeNull();
      // Put back, the same forward's backward runs, equal to an unchecked module's.
      x.data[7] = original;
      const plain = new BatchNorm2d(3).train(training);
      plain.forward(input([4, 3, 2, 2]));
      expect(bytes(m.backward(input([4, 3, 2, 2], 2)).data)).toBe(bytes(plain.backward(input([4, 3, 2, 2], 2)).data));
    }
  });

  it('checkInputUnchanged sees a value moved to another index (the hash is positional)', () => {
    const m = new BatchNorm1d(2, { checkInputUnchanged: true });
    const x = { data: Float32Array.of(1, 2, 3, 4, 5, 6), shape: [3, 2] };
    m.forward(x);
    [x.data[0], x.data[2]] = [x.data[2]!, x.data[0]!];
    expect(() => m.backward({ data: new Float32Array(6).fill(1), shape: [3, 2] })).toThrow(BatchNormStateError);
    expect(() => new BatchNorm1d(2, { checkInputUnchanged: 1 as never })).toThrow(
      'Expected a boolean for options.checkInputUnchanged but received 1 of type number',
    );
  });
});

describe('tensor objects', () => {
  it('a scijs ndarray (own data, shape, stride, offset) is read as its strides say', () => {
    const base = ramp(24);
    const contiguous = ndarray(base, [4, 3, 2]);
    const direct = batchNorm(contiguous as never, { training: true });
    expect(bytes(direct.output.data)).toBe(bytes(batchNorm({ data: base, shape: [4, 3, 2] }, { training: true }).output.data));
    // A transposed view: (2, 3, 4) seen as the transpose of a (4, 3, 2) array.
    const transposed = contiguous.transpose(2, 1, 0);
    const gathered = new Float32Array(24);
    let i = 0;
    for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) gathered[i++] = transposed.get(a, b, c);
    const result = batchNorm(transposed as never, { training: true });
    expect(bytes(result.output.data)).toBe(bytes(batchNorm({ data: gathered, shape: [2, 3, 4] }, { training: true }).output.data));
  });

  it('a @stdlib/ndarray ndarray is refused with the object to pass instead, which works', () => {
    const base = ramp(30);
    // Column-major (2, 3, 5) with an offset of 0: strides [1, 2, 6].
    const x = new stdlibNdarray('float32', base, [2, 3, 5], [1, 2, 6], 0, 'column-major');
    expect(() => batchNorm(x as never, { training: true })).toThrow(
      'received a @stdlib/ndarray ndarray, whose fields are accessors on its prototype: pass { data: x.data, shape: x.shape, stride: x.strides, offset: x.offset }',
    );
    const passed = batchNorm(
      { data: x.data as Float32Array, shape: x.shape as number[], stride: x.strides as number[], offset: x.offset },
      { training: true },
    );
    const gathered = new Float32Array(30);
    let i = 0;
    for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 5; c++) gathered[i++] = x.get(a, b, c);
    expect(bytes(passed.output.data)).toBe(bytes(batchNorm({ data: gathered, shape: [2, 3, 5] }, { training: true }).output.data));
  });

  it('unknown keys are refused by the modules too', () => {
    const m = new BatchNorm1d(3);
    expect(() => m.forward({ ...input([4, 3]), strides: [3, 1] } as never)).toThrow("Unknown key 'strides' in input (did you mean 'stride'?)");
    expect(m.numBatchesTracked).toBe(0);
  });
});

describe('construction', () => {
  it.each(['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d', 'InstanceNorm1d', 'InstanceNorm2d', 'InstanceNorm3d'] as const)(
    'new %s(null) is a TypeError: only the Lazy classes infer numFeatures',
    (name) => {
      const Class = CLASSES[name] as unknown as new (n: unknown) => unknown;
      for (const value of [null, undefined]) {
        expect(() => new Class(value)).toThrow(
          `Expected a positive integer for numFeatures but received ${String(value)} (only the Lazy classes, such as LazyBatchNorm2d, infer it from the input)`,
        );
      }
    },
  );
});

describe("PyTorch's conveniences", () => {
  it.each(loadModuleFixtures().reprs.map((c) => [c.repr, c] as const))('prints %s', (_repr, c) => {
    const Class = CLASSES[c.className as keyof typeof CLASSES] as unknown as new (...args: unknown[]) => BatchNorm1d;
    const module = c.numFeatures === null ? new Class(c.options) : new Class(c.numFeatures, c.options);
    expect(String(module)).toBe(c.repr);
    expect(inspect(module)).toBe(c.repr);
    if (c.reprAfterForward !== undefined) {
      module.forward(input(c.className.endsWith('2d') ? [2, 3, 2, 2] : [2, 3]));
      expect(inspect(module)).toBe(c.reprAfterForward);
    }
  });

  it('namedParameters, parameters, namedBuffers and buffers, with prefix', () => {
    const m = new BatchNorm2d(3);
    expect(m.namedParameters()).toEqual([['weight', m.weight], ['bias', m.bias]]);
    expect(m.namedParameters()[0]![1]).toBe(m.weight);
    expect(m.namedParameters({ prefix: 'bn1.' }).map(([name]) => name)).toEqual(['bn1.weight', 'bn1.bias']);
    expect(m.namedBuffers({ prefix: 'layer.0.' }).map(([name]) => name)).toEqual([
      'layer.0.running_mean', 'layer.0.running_var', 'layer.0.num_batches_tracked',
    ]);
    const [mean, variance, counter] = m.buffers();
    expect(mean).toBe(m.runningMean);
    expect(variance).toBe(m.runningVar);
    // The buffers are live: a training step updates them, the counter included.
    m.forward(input([4, 3, 2, 2]));
    expect(counter).toEqual(BigInt64Array.of(1n));
    expect(m.numBatchesTracked).toBe(1);
    (counter as BigInt64Array)[0] = 41n;
    expect(m.numBatchesTracked).toBe(41);
    (counter as BigInt64Array)[0] = -3n;
    expect(() => m.forward(input([4, 3, 2, 2]))).toThrow("BatchNorm2d's num_batches_tracked buffer holds -3");
    expect(new BatchNorm1d(3, { affine: false, trackRunningStats: false }).namedBuffers()).toEqual([]);
    expect(new LazyBatchNorm1d().buffers()).toEqual([]);
    expect(() => m.namedParameters({ prefix: 1 } as never)).toThrow('Expected a string for options.prefix but received 1 of type number');
    expect(() => m.namedBuffers({ prefx: 'a' } as never)).toThrow("Unknown option 'prefx' in options");
  });

  it.each([
    [false, true],
    [true, false],
    [false, false],
  ])('requiresGrad weight %s, bias %s: a frozen parameter gets no gradient, the others the full one', (weightGrad, biasGrad) => {
    const frozen = new BatchNorm2d(3);
    const full = new BatchNorm2d(3);
    frozen.weight!.requiresGrad = weightGrad;
    frozen.bias!.requiresGrad = biasGrad;
    const x = input([4, 3, 2, 2]);
    const dy = input([4, 3, 2, 2], 3);
    frozen.forward(x);
    full.forward(x);
    expect(bytes(frozen.backward(dy).data)).toBe(bytes(full.backward(dy).data));
    expect(frozen.weight!.grad === null ? null : bytes(frozen.weight!.grad)).toBe(weightGrad ? bytes(full.weight!.grad!) : null);
    expect(frozen.bias!.grad === null ? null : bytes(frozen.bias!.grad)).toBe(biasGrad ? bytes(full.bias!.grad!) : null);
    // The functional call with the same mask gives the same gradients.
    const functional = batchNormBackward(dy, x, {
      training: true,
      weight: full.weight!.data,
      saveMean: batchNorm(x, { training: true }).saveMean,
      saveInvstd: batchNorm(x, { training: true }).saveInvstd,
      outputMask: [true, weightGrad, biasGrad],
    });
    expect(functional.gradWeight === null).toBe(!weightGrad);
    expect(functional.gradBias === null).toBe(!biasGrad);
  });

  it('a requiresGrad that is not a boolean is a TypeError naming it, before the backward is used up', () => {
    const m = new BatchNorm1d(3);
    m.forward(input([4, 3]));
    m.weight!.requiresGrad = 'no' as never;
    expect(() => m.backward(input([4, 3], 2))).toThrow("Expected a boolean for weight.requiresGrad but received 'no' of type string");
    m.weight!.requiresGrad = true;
    expect(m.backward(input([4, 3], 2)).data.length).toBe(12);
  });

  it('the pending-async error offers what exists: whenIdle() and, for forward/backward, the async variant', async () => {
    const m = new BatchNorm1d(3);
    const pending = m.forwardAsync(input([4, 3]));
    expect(() => m.zeroGrad()).toThrow(
      'BatchNorm1d.zeroGrad() was called while 1 async call(s) on this module are pending; await them first (await module.whenIdle() waits for all)',
    );
    expect(() => m.forward(input([4, 3]))).toThrow('or call forwardAsync(), which queues behind them');
    const failing = m.backwardAsync({ data: new Float32Array(1), shape: [1, 3] }).catch((error: unknown) => error);
    await m.whenIdle();
    expect(m.pendingAsyncCalls).toBe(0);
    expect(await failing).toBeInstanceOf(RangeError);
    expect((await pending).data.length).toBe(12);
    m.zeroGrad();
  });

  it('the functional N = 1 training error gives the training: false hint', () => {
    expect(() => batchNorm(input([1, 3]), { training: true })).toThrow(
      'Expected more than 1 value per channel when training, got input size [1, 3] (for inference on a single sample, pass training: false)',
    );
  });
});

describe('state files', () => {
  it('a prefixed num_batches_tracked is written 0-d, as PyTorch writes it, and loads back', () => {
    const scratch = mkdtempSync(path.join(tmpdir(), 'batchnorm-prefix-'));
    try {
      const m = new BatchNorm2d(3);
      m.forward(input([4, 3, 2, 2]));
      const file = path.join(scratch, 'model.safetensors');
      saveSafetensors(file, { ...m.stateDict({ prefix: 'bn1.' }), ...new BatchNorm1d(2).stateDict({ prefix: 'head.1.' }) });
      const reader = path.join(__dirname, 'fixtures', 'safetensors_io.py');
      const dumped = JSON.parse(execFileSync('python3', [reader, 'dump', file], { encoding: 'utf8' })) as Record<string, { shape: number[] }>;
      expect(dumped['bn1.num_batches_tracked']!.shape).toEqual([]);
      expect(dumped['head.1.num_batches_tracked']!.shape).toEqual([]);
      expect(dumped['bn1.running_mean']!.shape).toEqual([3]);
      const copy = new BatchNorm2d(3);
      copy.loadStateDict(loadSafetensors(file), { prefix: 'bn1.' });
      expect(copy.stateDict()).toEqual(m.stateDict());
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('async calls that leave the caller free to transfer its buffers', () => {
  it("setAsyncMemoryGuard('staged'): after an async call the caller's buffers still transfer", async () => {
    setAsyncMemoryGuard('staged');
    try {
      expect(asyncMemoryGuard()).toBe('staged');
      const x = input([4, 3]);
      const out = new Float32Array(12);
      const expected = batchNorm(input([4, 3]), { training: true }).output.data;
      await batchNormAsync(x, { training: true, out });
      expect(bytes(out)).toBe(bytes(expected));
      const m = new BatchNorm1d(3);
      const y = input([4, 3]);
      await m.forwardAsync(y);
      for (const buffer of [x.data.buffer, out.buffer, y.data.buffer]) {
        const moved = structuredClone(buffer, { transfer: [buffer] });
        expect(buffer.byteLength).toBe(0);
        expect(moved.byteLength).toBe(48);
      }
    } finally {
      setAsyncMemoryGuard('auto');
    }
    expect(() => setAsyncMemoryGuard('always' as never)).toThrow("Expected 'staged' or 'auto' for mode but received 'always' of type string");
  });
});
