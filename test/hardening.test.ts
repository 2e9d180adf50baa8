// State and inputs that must not be trusted (issue 13): module snapshots during async calls, polluted
// prototypes, safetensors edge cases and typed arrays from another realm.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

import { afterEach, describe, expect, it } from 'vitest';

import {
  BatchNorm2d,
  BatchNormStateError,
  type StateDict,
  batchNorm,
  batchNormBackward,
  fromSafetensors,
  loadSafetensors,
  toKerasWeights,
  toSafetensors,
} from '../lib/index';
import { bytes, ramp } from './helpers/arrays';



describe('module state during async calls', () => {
  const shape = [8, 4, 32, 32];
  const x = { data: ramp(8 * 4 * 32 * 32), shape };

  it('refuses snapshots and counter writes while a call is pending, with BatchNormStateError', async () => {
    const m = new BatchNorm2d(4);
    const pending = m.forwardAsync(x);
    for (const read of [() => m.stateDict(), () => m.toAffine(), () => toKerasWeights(m), () => (m.numBatchesTracked = 3)]) {
      expect(read).toThrow(BatchNormStateError);
      expect(read).toThrow('async call(s) on this module are pending');
    }
    await pending;
    expect(m.stateDict().num_batches_tracked).toEqual(BigInt64Array.of(1n));
  });

  it('every snapshot a timer takes is the state after some completed call', async () => {
    const reference = new BatchNorm2d(4);
    const states = [reference.stateDict()];
    for (let i = 0; i < 3; i++) {
      reference.forward(x);
      states.push(reference.stateDict());
    }
    const m = new BatchNorm2d(4);
    const snapshots: StateDict[] = [];
    let done = false;
    const poll = (): void => {
      try {
        snapshots.push(m.stateDict());
      } catch (error) {
        expect(error).toBeInstanceOf(BatchNormStateError);
      }
      if (!done) setImmediate(poll);
    };
    poll();
    for (let i = 0; i < 3; i++) await m.forwardAsync(x);
    done = true;
    await new Promise((resolve) => setImmediate(resolve));
    const known = states.map((s) => JSON.stringify(Object.entries(s).map(([k, v]) => [k, bytes(v)])));
    expect(snapshots.length).toBeGreaterThan(0);
    for (const snapshot of snapshots) {
      expect(known).toContain(JSON.stringify(Object.entries(snapshot).map(([k, v]) => [k, bytes(v)])));
    }
  });

  it('validates numBatchesTracked wherever it is set', () => {
    const m = new BatchNorm2d(2);
    expect(() => (m.numBatchesTracked = 1.5)).toThrow(RangeError);
    expect(() => (m.numBatchesTracked = -1)).toThrow('Expected a non-negative safe integer for numBatchesTracked');
    expect(() => ((m as unknown as { numBatchesTracked: unknown }).numBatchesTracked = '3')).toThrow(TypeError);
    m.numBatchesTracked = 7;
    expect(m.stateDict().num_batches_tracked).toEqual(BigInt64Array.of(7n));
  });

  it('tells a second backward from a backward with no forward', () => {
    const m = new BatchNorm2d(2);
    const input = { data: ramp(16), shape: [2, 2, 2, 2] };
    expect(() => m.backward(input)).toThrow(BatchNormStateError);
    expect(() => m.backward(input)).toThrow('needs a preceding forward()');
    m.forward(input);
    m.backward(input);
    expect(() => m.backward(input)).toThrow(BatchNormStateError);
    expect(() => m.backward(input)).toThrow('was already called for the last forward()');
  });
});

describe('polluted prototypes', () => {
  const polluted = Object.prototype as Record<string, unknown>;
  afterEach(() => {
    for (const key of ['training', 'memoryFormat', 'num_batches_tracked', 'out', '1']) {
      delete polluted[key];
      delete (Array.prototype as unknown as Record<string, unknown>)[key];
    }
  });

  it('do not turn an evaluation call into a training one', () => {
    const runningMean = Float32Array.of(0.5, -0.5);
    const runningVar = Float32Array.of(2, 3);
    const x = { data: ramp(8), shape: [4, 2] };
    const expected = batchNorm(x, { runningMean, runningVar }).output.data;
    polluted.training = true;
    const output = batchNorm(x, { runningMean, runningVar }).output.data;
    expect(bytes(output)).toBe(bytes(expected));
    expect(Array.from(runningMean)).toEqual([0.5, -0.5]);
  });

  it('do not change how a tensor is read', () => {
    const x = { data: ramp(16), shape: [2, 2, 2, 2] };
    const expected = batchNorm(x, { training: true }).output.data;
    polluted.memoryFormat = 'channelsLast';
    const result = batchNorm(x, { training: true });
    expect(result.output.memoryFormat).toBe('contiguous');
    expect(bytes(result.output.data)).toBe(bytes(expected));
  });

  it('do not fill a hole of outputMask', () => {
    const x = { data: ramp(8), shape: [4, 2] };
    const forward = batchNorm(x, { training: true });
    (Array.prototype as unknown as Record<string, unknown>)[1] = false;
    // eslint-disable-next-line no-sparse-arrays
    const mask = [true, , true] as unknown as [boolean, boolean, boolean];
    expect(() =>
      batchNormBackward(x, x, { training: true, saveMean: forward.saveMean, saveInvstd: forward.saveInvstd, outputMask: mask }),
    ).toThrow(TypeError);
  });

  it('do not supply state-dict entries', () => {
    const m = new BatchNorm2d(2);
    m.numBatchesTracked = 5;
    const { weight, bias, running_mean, running_var } = m.stateDict();
    polluted.num_batches_tracked = 7;
    m.loadStateDict({ weight: weight!, bias: bias!, running_mean: running_mean!, running_var: running_var! });
    // As in PyTorch, a state dict without the counter loads it as 0.
    expect(m.numBatchesTracked).toBe(0);
  });
});

describe('safetensors edge cases', () => {
  it('keeps a tensor named __proto__ as an entry of a null-prototype result', () => {
    const state = JSON.parse('{"__proto__": 0}') as Record<string, unknown>;
    state.__proto__ = Float32Array.of(1, 2);
    expect(Object.keys(state)).toEqual(['__proto__']);
    const parsed = fromSafetensors(toSafetensors(state as StateDict));
    expect(Object.getPrototypeOf(parsed)).toBe(null);
    expect(Object.keys(parsed)).toEqual(['__proto__']);
    expect(Array.from(parsed.__proto__ as Float32Array)).toEqual([1, 2]);
  });

  it('takes sizes from the real byte length, not an own length property', () => {
    const file = toSafetensors({ a: Float32Array.of(1, 2, 3, 4) });
    const truncated = file.subarray(0, file.length - 8);
    Object.defineProperty(truncated, 'length', { value: file.length });
    expect(() => fromSafetensors(truncated)).toThrow(RangeError);
  });

  it('refuses what the format cannot hold when writing', () => {
    expect(() => toSafetensors({ __metadata__: Float32Array.of(1) })).toThrow(RangeError);
    expect(() => toSafetensors({ a: Float32Array.of(1) }, { n: 1 as unknown as string })).toThrow(TypeError);
  });

  it('refuses a path that is not a regular file, without blocking on a FIFO', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batchnorm-'));
    const fifo = path.join(dir, 'state.safetensors');
    execFileSync('mkfifo', [fifo]);
    // In a child process with a timeout: a blocking open would hang this thread past any test timeout.
    const code = `try { require(${JSON.stringify(path.join(__dirname, '..'))}).loadSafetensors(${JSON.stringify(fifo)}); console.log('read') }
      catch (e) { console.log(e.name + ': ' + e.message) }`;
    const out = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 20_000 });
    expect(out.trim()).toBe(`TypeError: Expected a regular file for path but ${fifo} is not one`);
    expect(() => loadSafetensors(dir)).toThrow(TypeError);
    fs.rmSync(dir, { recursive: true });
  });

  it('parses a header of 300,000 tensors (its time is a row of npm run bench)', () => {
    const state: StateDict = {};
    for (let i = 0; i < 300_000; i++) state[`layer${i}.weight`] = Float32Array.of(i);
    const parsed = fromSafetensors(toSafetensors(state));
    expect(Object.keys(parsed).length).toBe(300_000);
    expect((parsed['layer299999.weight'] as Float32Array)[0]).toBe(299_999);
    expect((parsed['layer0.weight'] as Float32Array)[0]).toBe(0);
  });
});

describe('typed arrays whose own properties lie', () => {
  it('are measured with the built-in getters', () => {
    const data = ramp(8);
    Object.defineProperty(data, 'length', { value: 16 });
    expect(() => batchNorm({ data, shape: [4, 4] }, { training: true })).toThrow(
      'input.shape [4, 4] describes 16 elements but input.data has 8',
    );
    const out = new Float32Array(8);
    Object.defineProperty(out, 'length', { value: 4 });
    expect(batchNorm({ data, shape: [4, 2] }, { training: true, out }).output.data).toBe(out);
  });
});

describe('typed arrays from another realm', () => {
  it('are accepted by kind, with the same bits as this realm', () => {
    const foreign = vm.runInNewContext('new Float32Array(16)') as Float32Array;
    foreign.set(ramp(16));
    expect(foreign instanceof Float32Array).toBe(false);
    const runningMean = vm.runInNewContext('new Float32Array(2)') as Float32Array;
    const runningVar = Float32Array.of(1, 1);
    const local = batchNorm({ data: ramp(16), shape: [2, 2, 2, 2] }, { training: true });
    const result = batchNorm({ data: foreign, shape: [2, 2, 2, 2] }, { training: true, runningMean, runningVar });
    expect(bytes(result.output.data)).toBe(bytes(local.output.data));
    const m = new BatchNorm2d(2);
    expect(bytes(m.forward({ data: foreign, shape: [2, 2, 2, 2] }).data)).toBe(bytes(local.output.data));
    m.loadStateDict({ ...m.stateDict(), weight: vm.runInNewContext('new Float32Array([2, 3])') as Float32Array });
    expect(Array.from(m.weight!.data)).toEqual([2, 3]);
  });

  it('are still refused for the wrong kind, named by kind', () => {
    const foreign = vm.runInNewContext('new Float64Array(16)') as Float64Array;
    expect(() => batchNorm({ data: ramp(16), shape: [2, 2, 2, 2] }, { training: true, weight: foreign.subarray(0, 2) as never })).toThrow(
      'Expected a Float32Array for weight (the input\'s dtype is float32) but received Float64Array',
    );
  });
});
