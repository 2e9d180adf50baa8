// The module path of a training loop (issue 14): outputs written into caller buffers, tensors as other
// libraries hand them over (strides and offsets), gradients in either memory format, whole-model
// checkpoints by prefix, and the errors a misused module gives.
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNormStateError,
  InstanceNorm1d,
  InstanceNorm2d,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  type StateDict,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  fromSafetensors,
  loadSafetensors,
  toChannelsLast,
  toSafetensors,
} from '../lib/index';
import { bytes, ramp } from './helpers/arrays';
import { expectClose, toleranceFor } from './helpers/compare';
import { decode, decodeState, fixturesDir, loadModuleFixtures } from './helpers/fixtures';



describe('module outputs into caller buffers', () => {
  const shape = [4, 3, 5, 5];
  const n = 300;
  const x = { data: ramp(n), shape };
  const dy = { data: ramp(n, 2), shape };

  it('forward and backward write into out, with the bits of the allocating calls', () => {
    const allocating = new BatchNorm2d(3);
    const reusing = new BatchNorm2d(3);
    const out = new Float32Array(n);
    const gradInput = new Float32Array(n);
    for (let step = 0; step < 3; step++) {
      const y = reusing.forward(x, { out });
      expect(y.data).toBe(out);
      expect(bytes(out)).toBe(bytes(allocating.forward(x).data));
      const g = reusing.backward(dy, { out: { gradInput } });
      expect(g.data).toBe(gradInput);
      expect(bytes(gradInput)).toBe(bytes(allocating.backward(dy).data));
    }
    expect(bytes(reusing.runningVar!)).toBe(bytes(allocating.runningVar!));
    expect(bytes(reusing.weight!.grad!)).toBe(bytes(allocating.weight!.grad!));
  });

  it('allocates each output as an array that owns its whole buffer, so it can be transferred or viewed', () => {
    const m = new BatchNorm2d(3);
    for (const shape of [[4, 3, 5, 5], [1, 3, 1, 2], [2, 3, 64, 64]]) {
      const length = shape.reduce((a, b) => a * b, 1);
      const input = { data: ramp(length), shape };
      const y = m.forward(input).data;
      const g = m.backward({ data: ramp(length, 2), shape }).data;
      for (const array of [y, g]) {
        expect(array.length).toBe(length);
        expect(array.byteOffset).toBe(0);
        expect(array.buffer.byteLength).toBe(array.byteLength);
      }
      expect(y.buffer).not.toBe(g.buffer);
      const out = new Float32Array(length);
      expect(bytes(m.forward(input, { out }).data)).toBe(bytes(batchNorm(input, { training: true }).output.data));
    }
  });

  it('a forward that fails leaves the last good forward for backward, its saved statistics included', () => {
    const x2 = { data: ramp(n, 3), shape };
    const reference = new BatchNorm2d(3);
    reference.forward(x);
    const expected = bytes(reference.backward(dy).data);
    const m = new BatchNorm2d(3);
    m.forward(x2);
    m.forward(x);
    // Fails after the plan took the next set of copies: the saved forward (of x) must be untouched.
    expect(() => m.forward(x2, { out: new Float32Array(n + 1) })).toThrow(RangeError);
    expect(bytes(m.backward(dy).data)).toBe(expected);
    // And with the saved forward in the other set of copies (one forward flips them).
    m.forward(x);
    expect(() => m.forward(x2, { out: new Float32Array(n + 1) })).toThrow(RangeError);
    expect(bytes(m.backward(dy).data)).toBe(expected);
  });

  it('works the same through forwardAsync and backwardAsync', async () => {
    const sync = new BatchNorm2d(3);
    const queued = new BatchNorm2d(3);
    const out = new Float32Array(n);
    const gradInput = new Float32Array(n);
    const y = await queued.forwardAsync(x, { out });
    expect(y.data).toBe(out);
    expect(bytes(out)).toBe(bytes(sync.forward(x).data));
    const g = await queued.backwardAsync(dy, { out: { gradInput } });
    expect(g.data).toBe(gradInput);
    expect(bytes(gradInput)).toBe(bytes(sync.backward(dy).data));
  });

  it('checks out like the functional call, changing nothing on error', () => {
    const m = new BatchNorm2d(3);
    expect(() => m.forward(x, { out: new Float32Array(n - 1) })).toThrow('options.out should contain 300 elements not 299');
    expect(() => m.forward(x, { out: new Float64Array(n) as never })).toThrow(TypeError);
    expect(() => m.forward(x, { output: new Float32Array(n) } as never)).toThrow("Unknown option 'output' in options");
    expect(m.numBatchesTracked).toBe(0);
    m.forward(x);
    expect(() => m.backward(dy, { out: { gradInput: new Float32Array(3) } })).toThrow(
      'options.out.gradInput should contain 300 elements not 3',
    );
    expect(() => m.backward(dy, { out: { gradWeight: new Float32Array(3) } } as never)).toThrow(
      "Unknown option 'gradWeight' in options.out",
    );
  });
});

describe('tensors with stride and offset (ndarray)', () => {
  it('a transposed view gives the numbers of its contiguous copy', () => {
    // ndarray's transpose of a (2, 4) array: shape [4, 2], stride [1, 4].
    const storage = ramp(8);
    const copy = new Float32Array(8);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) copy[i * 2 + j] = storage[j * 4 + i]!;
    const expected = batchNorm({ data: copy, shape: [4, 2] }, { training: true });
    const result = batchNorm({ data: storage, shape: [4, 2], stride: [1, 4], offset: 0 }, { training: true });
    expect(result.output.memoryFormat).toBe('contiguous');
    expect(bytes(result.output.data)).toBe(bytes(expected.output.data));
  });

  it('sliced, reversed and broadcast views give the numbers of their copies', () => {
    const storage = ramp(40);
    const gather = (shape: number[], stride: number[], offset: number) => {
      const out: number[] = [];
      for (let i = 0; i < shape[0]!; i++) for (let j = 0; j < shape[1]!; j++) out.push(storage[offset + i * stride[0]! + j * stride[1]!]!);
      return Float32Array.from(out);
    };
    for (const [shape, stride, offset] of [
      [[3, 4], [8, 2], 1], // every other column of a sliced block
      [[5, 3], [-6, 1], 30], // rows reversed
      [[4, 3], [0, 1], 5], // one row broadcast over the batch
    ] as const) {
      const result = batchNorm({ data: storage, shape, stride, offset }, { training: true, eps: 1e-3 });
      const expected = batchNorm({ data: gather([...shape], [...stride], offset), shape }, { training: true, eps: 1e-3 });
      expect(bytes(result.output.data), JSON.stringify({ shape, stride, offset })).toBe(bytes(expected.output.data));
    }
  });

  it('contiguous and channels-last strides run in place, at the offset', () => {
    const storage = ramp(2 * 3 * 4 * 5 + 7);
    const plain = storage.slice(7);
    const contiguous = batchNorm({ data: storage, shape: [2, 3, 4, 5], stride: [60, 20, 5, 1], offset: 7 }, { training: true });
    expect(bytes(contiguous.output.data)).toBe(bytes(batchNorm({ data: plain, shape: [2, 3, 4, 5] }, { training: true }).output.data));
    // Channels-last strides of (N, C, H, W) = (2, 3, 4, 5): [60, 1, 15, 3]. In place: out may be the view.
    const nhwc = toChannelsLast({ data: plain, shape: [2, 3, 4, 5] });
    const shifted = new Float32Array(7 + 120);
    shifted.set(nhwc.data, 7);
    const view = shifted.subarray(7);
    // In place is an evaluation's (a training output over its input is refused).
    const stats = { runningMean: Float32Array.of(0.5, -1, 2), runningVar: Float32Array.of(1, 4, 0.25) };
    const expected = batchNorm(nhwc, stats).output;
    const result = batchNorm({ data: shifted, shape: [2, 3, 4, 5], stride: [60, 1, 15, 3], offset: 7 }, { ...stats, out: view });
    expect(result.output.memoryFormat).toBe('channelsLast');
    expect(result.output.data).toBe(view);
    expect(bytes(view)).toBe(bytes(expected.data));
  });

  it('refuses strides that reach outside data, or that contradict memoryFormat', () => {
    expect(() => batchNorm({ data: ramp(8), shape: [4, 2], stride: [2, 1], offset: 1 }, { training: true })).toThrow(
      'input.stride [2, 1] and offset 1 of shape [4, 2] reach elements 1 to 8, outside input.data (8 elements)',
    );
    expect(() => batchNorm({ data: ramp(8), shape: [4, 2], stride: [1, 4], memoryFormat: 'contiguous' }, { training: true })).toThrow(
      RangeError,
    );
    expect(() => batchNorm({ data: ramp(8), shape: [4, 2], stride: [1] }, { training: true })).toThrow(
      'Expected an array of 2 integers (one per dimension) for input.stride',
    );
    expect(() => batchNorm({ data: ramp(8), shape: [4, 2], offset: -1 }, { training: true })).toThrow(RangeError);
  });

  it('a strided gradient works in backward and in a module', () => {
    const x = { data: ramp(8), shape: [4, 2] };
    const storage = ramp(8, 3);
    const copy = new Float32Array(8);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) copy[i * 2 + j] = storage[j * 4 + i]!;
    const forward = batchNorm(x, { training: true });
    const options = { training: true, saveMean: forward.saveMean, saveInvstd: forward.saveInvstd };
    const expected = batchNormBackward({ data: copy, shape: [4, 2] }, x, options);
    const result = batchNormBackward({ data: storage, shape: [4, 2], stride: [1, 4] }, x, options);
    expect(bytes(result.gradInput!.data)).toBe(bytes(expected.gradInput!.data));
    // A module: a strided input and gradient against their contiguous copies.
    const strided = new BatchNorm1d(2);
    const plain = new BatchNorm1d(2);
    const view = { data: storage, shape: [4, 2], stride: [1, 4] };
    expect(bytes(strided.forward(view).data)).toBe(bytes(plain.forward({ data: copy, shape: [4, 2] }).data));
    expect(bytes(strided.backward(view).data)).toBe(bytes(plain.backward({ data: copy, shape: [4, 2] }).data));
  });
});

describe('whole-model checkpoints by prefix', () => {
  const { sequential } = loadModuleFixtures();
  const rtol = toleranceFor('float32');
  const relu = (data: Float32Array) => data.map((v) => Math.max(v, 0));

  function layersFrom(state: StateDict) {
    const layers = sequential.momenta.map((momentum) => new BatchNorm2d(3, { momentum }));
    layers.forEach((layer, i) => layer.loadStateDict(state, { prefix: sequential.prefixes[i]! }));
    return layers;
  }

  function run(layers: BatchNorm2d[], input: Float32Array) {
    const hidden = layers[0]!.forward({ data: input, shape: sequential.shape }).data;
    return layers[1]!.forward({ data: relu(hidden), shape: sequential.shape }).data;
  }

  it("loads PyTorch's nn.Sequential layer by layer and reproduces its next steps", () => {
    const layers = layersFrom(loadSafetensors(path.join(fixturesDir(), sequential.file)));
    expect(layers.map((l) => l.numBatchesTracked)).toEqual([3, 3]);
    expectClose(run(layers, decode(sequential.trainInput) as Float32Array), decode(sequential.trainOutput), rtol, 'train output');
    const state: StateDict = { ...layers[0]!.stateDict({ prefix: '0.' }), ...layers[1]!.stateDict({ prefix: '2.' }) };
    const expected = decodeState(sequential.stateAfterTrain);
    expect(Object.keys(state)).toEqual(Object.keys(expected));
    for (const [key, value] of Object.entries(expected)) {
      if (typeof value === 'number') expect(state[key]).toEqual(BigInt64Array.of(BigInt(value)));
      else expectClose(state[key] as Float32Array, value, rtol, key);
    }
    layers.forEach((layer) => layer.eval());
    expectClose(run(layers, decode(sequential.evalInput) as Float32Array), decode(sequential.evalOutput), rtol, 'eval output');
  });

  it('round-trips through safetensors with the prefixed keys', () => {
    const layers = layersFrom(loadSafetensors(path.join(fixturesDir(), sequential.file)));
    const state: StateDict = { ...layers[0]!.stateDict({ prefix: '0.' }), ...layers[1]!.stateDict({ prefix: '2.' }) };
    const again = layersFrom(fromSafetensors(toSafetensors(state)));
    expect(again.map((l) => bytes(l.runningVar!))).toEqual(layers.map((l) => bytes(l.runningVar!)));
    expect(again.map((l) => l.numBatchesTracked)).toEqual([3, 3]);
  });

  it('reports missing and unexpected keys with their prefix; other layers are not unexpected', () => {
    const state = loadSafetensors(path.join(fixturesDir(), sequential.file));
    const m = new BatchNorm2d(3);
    expect(() => m.loadStateDict(state, { prefix: '1.' })).toThrow('Missing key(s) in state_dict: "1.weight", "1.bias"');
    const { running_mean: _mean, ...withoutMean } = new BatchNorm2d(3).stateDict();
    const result = m.loadStateDict({ ...state, ...Object.fromEntries(Object.entries(withoutMean).map(([k, v]) => [`5.${k}`, v])) }, {
      prefix: '5.',
      strict: false,
    });
    expect(result).toEqual({ missingKeys: ['5.running_mean'], unexpectedKeys: [] });
    expect(() => m.loadStateDict(state, { prefix: 0 as never })).toThrow('Expected a string for options.prefix');
  });
});

describe('errors of a training loop', () => {
  it("keeps PyTorch's text for one value per channel and hints at eval()", () => {
    const m = new BatchNorm2d(3);
    expect(() => m.forward({ data: ramp(3), shape: [1, 3, 1, 1] })).toThrow(
      'Expected more than 1 value per channel when training, got input size [1, 3, 1, 1] (for inference on a single sample, call eval() first)',
    );
    expect(m.eval().forward({ data: ramp(3), shape: [1, 3, 1, 1] }).shape).toEqual([1, 3, 1, 1]);
  });

  it('async calls on a module still take out after a rejected call', async () => {
    const m = new BatchNorm2d(3);
    await expect(m.forwardAsync({ data: ramp(10), shape: [5, 2] } as never)).rejects.toThrow('expected 4D input');
    const out = new Float32Array(300);
    expect((await m.forwardAsync({ data: ramp(300), shape: [4, 3, 5, 5] }, { out })).data).toBe(out);
    const reference = await batchNormAsync({ data: ramp(300), shape: [4, 3, 5, 5] }, { training: true, weight: Float32Array.of(1, 1, 1), bias: new Float32Array(3) });
    expect(bytes(out)).toBe(bytes(reference.output.data));
  });
});

describe("Keras's moving-variance rule (README, Keras section)", () => {
  it("the documented correction turns PyTorch's update into Keras's", () => {
    const shape = [6, 2];
    const x = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.3) * 2 + (i % 2));
    const momentum = 0.01; // Keras momentum 0.99
    const eps = 1e-3;
    const runningMean = new Float64Array(2);
    const runningVar = Float64Array.of(1, 2);
    const { saveInvstd } = batchNorm({ data: x, shape }, { training: true, momentum, eps, runningMean, runningVar });
    const n = 6;
    for (let c = 0; c < 2; c++) runningVar[c]! -= momentum * (n / (n - 1) - 1) * (1 / saveInvstd[c]! ** 2 - eps);
    // Keras: moving_variance = 0.99 * moving_variance + 0.01 * biased batch variance.
    for (let c = 0; c < 2; c++) {
      const values = [0, 1, 2, 3, 4, 5].map((row) => x[row * 2 + c]!);
      const mean = values.reduce((a, b) => a + b, 0) / n;
      const biased = values.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
      const keras = (1 - momentum) * [1, 2][c]! + momentum * biased;
      expect(Math.abs(runningVar[c]! - keras)).toBeLessThan(1e-12);
    }
  });
});

describe('LazyBatchNorm: numFeatures from the first input or a state dict', () => {
  it('keeps its parameter objects (an optimizer may hold them) and initializes on the first forward', () => {
    const m = new LazyBatchNorm2d();
    const [weight, bias] = m.parameters();
    expect(m.numFeatures).toBe(0);
    expect(weight!.data.length).toBe(0);
    expect(m.runningMean).toBe(null);
    expect(() => m.stateDict()).toThrow(BatchNormStateError);
    m.forward({ data: ramp(2 * 3 * 4), shape: [2, 3, 2, 2] });
    expect(m.numFeatures).toBe(3);
    expect(m.parameters()[0]).toBe(weight);
    expect(Array.from(weight!.data)).toEqual([1, 1, 1]);
    expect(Array.from(bias!.data)).toEqual([0, 0, 0]);
    expect(m.numBatchesTracked).toBe(1);
    expect(() => m.forward({ data: ramp(2 * 4 * 4), shape: [2, 4, 2, 2] })).toThrow('Expected input with 3 channels');
  });

  it('a call that fails leaves it uninitialized (PyTorch would initialize first)', () => {
    const m = new LazyBatchNorm2d();
    expect(() => m.forward({ data: ramp(12), shape: [2, 3, 2] })).toThrow('expected 4D input (got 3D input)');
    expect(() => m.forward({ data: ramp(3), shape: [1, 3, 1, 1] })).toThrow('Expected more than 1 value per channel');
    expect(m.numFeatures).toBe(0);
  });

  it('takes numFeatures from a loaded state dict, all or nothing', () => {
    const source = new BatchNorm1d(5);
    source.forward({ data: ramp(20), shape: [4, 5] });
    const m = new LazyBatchNorm1d();
    expect(() => m.loadStateDict({ ...source.stateDict(), running_var: new Float32Array(4) })).toThrow('size mismatch for running_var');
    expect(m.numFeatures).toBe(0);
    m.loadStateDict(source.stateDict());
    expect(m.numFeatures).toBe(5);
    expect(bytes(m.runningMean!)).toBe(bytes(source.runningMean!));
    expect(m.numBatchesTracked).toBe(1);
  });

  it('initializes through forwardAsync as well', async () => {
    const m = new LazyBatchNorm1d({ dtype: 'float64' });
    const y = await m.forwardAsync({ data: Float64Array.from({ length: 12 }, (_, i) => i % 5), shape: [4, 3] });
    expect(m.numFeatures).toBe(3);
    expect(y.data).toBeInstanceOf(Float64Array);
  });
});

describe('InstanceNorm: options, ranks and messages as in PyTorch', () => {
  it('defaults to no affine parameters and no running stats, and never counts batches', () => {
    const m = new InstanceNorm2d(3);
    expect([m.affine, m.trackRunningStats, m.weight, m.runningMean]).toEqual([false, false, null, null]);
    const tracked = new InstanceNorm2d(3, { trackRunningStats: true });
    tracked.forward({ data: ramp(2 * 3 * 4), shape: [2, 3, 2, 2] });
    expect(tracked.numBatchesTracked).toBe(0);
    expect(tracked.stateDict().num_batches_tracked).toEqual(BigInt64Array.of(0n));
  });

  it('refuses momentum null, wrong ranks, too few spatial elements and a channel count it uses', () => {
    expect(() => new InstanceNorm1d(3, { momentum: null, trackRunningStats: true })).toThrow(TypeError);
    expect(() => new InstanceNorm2d(3).forward({ data: ramp(6), shape: [3, 2] })).toThrow('expected 3D or 4D input (got 2D input)');
    expect(() => new InstanceNorm2d(3).forward({ data: ramp(6), shape: [2, 3, 1, 1] })).toThrow(
      'Expected more than 1 spatial element when training, got input size [2, 3, 1, 1]',
    );
    expect(() => new InstanceNorm1d(3, { affine: true }).forward({ data: ramp(8), shape: [2, 4] })).toThrow(
      "expected input's size at dim=0 to match num_features (3), but got: 2",
    );
    // Without affine parameters or running stats numFeatures is unused: any C is accepted, as in PyTorch.
    expect(new InstanceNorm1d(3).forward({ data: ramp(8), shape: [4, 2] }).shape).toEqual([4, 2]);
  });

  it('normalizes each sample and channel over its spatial positions', () => {
    const data = Float64Array.from({ length: 2 * 2 * 3 }, (_, i) => (i * 7) % 5);
    const y = new InstanceNorm1d(2, { dtype: 'float64', eps: 0 }).forward({ data, shape: [2, 2, 3] }).data;
    for (let row = 0; row < 4; row++) {
      const values = Array.from(y.subarray(row * 3, row * 3 + 3));
      const mean = values.reduce((a, b) => a + b, 0) / 3;
      const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / 3;
      expect(Math.abs(mean)).toBeLessThan(1e-12);
      expect(Math.abs(variance - 1)).toBeLessThan(1e-9);
    }
  });
});

describe('InstanceNorm through the async and out paths', () => {
  it('gives the sync bits async, and writes a channels-last gradient into out in the input layout', async () => {
    const x = toChannelsLast({ data: ramp(2 * 3 * 4 * 5), shape: [2, 3, 4, 5] });
    const dy = toChannelsLast({ data: ramp(2 * 3 * 4 * 5, 2), shape: [2, 3, 4, 5] });
    const sync = new InstanceNorm2d(3, { affine: true, trackRunningStats: true });
    const queued = new InstanceNorm2d(3, { affine: true, trackRunningStats: true });
    const y = sync.forward(x);
    const yAsync = await queued.forwardAsync(x);
    expect(y.memoryFormat).toBe('contiguous');
    expect(bytes(yAsync.data)).toBe(bytes(y.data));
    expect(bytes(queued.runningVar!)).toBe(bytes(sync.runningVar!));
    const gradInput = new Float32Array(120);
    const g = sync.backward(dy);
    const gAsync = await queued.backwardAsync(dy, { out: { gradInput } });
    expect(g.memoryFormat).toBe('channelsLast');
    expect(gAsync.data).toBe(gradInput);
    expect(gAsync.memoryFormat).toBe('channelsLast');
    expect(bytes(gradInput)).toBe(bytes(g.data));
    expect(bytes(queued.weight!.grad!)).toBe(bytes(sync.weight!.grad!));
  });
});
