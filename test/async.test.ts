// Async calls: same results as sync, run off the event loop, queued per module, robust to GC and to
// worker threads that end mid-call.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import {
  BatchNorm2d,
  type FloatArray,
  batchNorm,
  batchNormAsync,
  batchNormBackward,
  batchNormBackwardAsync,
} from '../lib/index';
import { bytes, ramp } from './helpers/arrays';

const root = path.join(__dirname, '..');



describe('functional async', () => {
  // Up to 65,536 elements a call runs on the calling thread (native/binding/async_call.h); larger ones on
  // the pool.
  it.each([
    [[8, 4, 16, 16], 'contiguous'],
    [[300, 7], 'contiguous'],
    [[4, 6, 5, 5], 'channelsLast'],
    [[8, 4, 64, 64], 'contiguous'],
    [[20000, 7], 'contiguous'],
    [[4, 6, 64, 64], 'channelsLast'],
  ] as const)('gives the bits of the sync call: %j %s', async (shape, memoryFormat) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = { data: ramp(n), shape, memoryFormat };
    const dy = { data: ramp(n, 2), shape, memoryFormat };
    const rmSync = new Float32Array(shape[1]);
    const rvSync = new Float32Array(shape[1]).fill(1);
    const rmAsync = rmSync.slice();
    const rvAsync = rvSync.slice();
    const sync = batchNorm(x, { training: true, runningMean: rmSync, runningVar: rvSync });
    const asyncResult = await batchNormAsync(x, { training: true, runningMean: rmAsync, runningVar: rvAsync });
    expect(bytes(asyncResult.output.data)).toBe(bytes(sync.output.data));
    expect(asyncResult.output.memoryFormat).toBe(memoryFormat);
    expect(bytes(rmAsync)).toBe(bytes(rmSync));
    expect(bytes(rvAsync)).toBe(bytes(rvSync));
    const options = { training: true, saveMean: sync.saveMean, saveInvstd: sync.saveInvstd };
    const gradSync = batchNormBackward(dy, x, options);
    const gradAsync = await batchNormBackwardAsync(dy, x, options);
    expect(bytes(gradAsync.gradInput!.data)).toBe(bytes(gradSync.gradInput!.data));
    expect(bytes(gradAsync.gradWeight!)).toBe(bytes(gradSync.gradWeight!));
  });

  it('runs a call of at most 65,536 elements on the calling thread, settled before the event loop turns', async () => {
    const x = { data: ramp(65536), shape: [128, 512] };
    const module = new BatchNorm2d(4);
    const small = { data: ramp(4 * 4 * 8 * 8), shape: [4, 4, 8, 8] };
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const forward = await batchNormAsync(x, { training: true });
    const backward = await batchNormBackwardAsync(x, x, { training: true, saveMean: forward.saveMean, saveInvstd: forward.saveInvstd });
    const y = await module.forwardAsync(small);
    const dx = await module.backwardAsync(small);
    expect(turned).toBe(false);
    // And with the results of the sync calls.
    const sync = batchNorm(x, { training: true });
    expect(bytes(forward.output.data)).toBe(bytes(sync.output.data));
    const syncBackward = batchNormBackward(x, x, { training: true, saveMean: sync.saveMean, saveInvstd: sync.saveInvstd });
    expect(bytes(backward.gradInput!.data)).toBe(bytes(syncBackward.gradInput!.data));
    const reference = new BatchNorm2d(4);
    expect(bytes(y.data)).toBe(bytes(reference.forward(small).data));
    expect(bytes(dx.data)).toBe(bytes(reference.backward(small).data));
    expect(bytes(module.runningMean!)).toBe(bytes(reference.runningMean!));
  });

  it('rejects bad arguments without changing anything', async () => {
    const runningMean = Float32Array.of(1, 2);
    await expect(
      batchNormAsync({ data: new Float32Array(6), shape: [3, 2] }, { training: true, runningMean, momentum: NaN }),
    ).rejects.toThrow(RangeError);
    await expect(batchNormBackwardAsync({ data: new Float32Array(6), shape: [3, 2] }, { data: new Float32Array(6), shape: [3, 2] }, {
      training: true,
    })).rejects.toThrow('saveMean must be defined when training is true');
    expect(Array.from(runningMean)).toEqual([1, 2]);
  });

  // Buffers detached or resized while a call runs: test/lifecycle.test.ts, on every Node version CI has.

  it('keeps the event loop free while a large call runs', async () => {
    const shape = [64, 32, 96, 96];
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 251) * 0.01;
    const x = { data, shape };
    let settled = false;
    const started = performance.now();
    const work = batchNormAsync(x, { training: true }).then(() => {
      settled = true;
    });
    const timerDelay = await new Promise<number>((resolve) => {
      const scheduled = performance.now();
      setTimeout(() => resolve(performance.now() - scheduled), 1);
    });
    const timerFiredBeforeWork = !settled;
    await work;
    const workMs = performance.now() - started;
    // The timer must not wait for the work: it fires while the call is still running.
    expect(timerFiredBeforeWork, `work took ${workMs.toFixed(1)} ms, timer ${timerDelay.toFixed(1)} ms`).toBe(true);
    expect(timerDelay).toBeLessThan(25);
  });
});

describe('module async', () => {
  function twins() {
    const a = new BatchNorm2d(3);
    const b = new BatchNorm2d(3);
    return [a, b] as const;
  }
  const shape = [4, 3, 5, 5];
  const inputs = [1, 2, 3].map((seed) => ({ data: ramp(300, seed), shape }));

  it('queues calls in order and matches the sync sequence', async () => {
    const [sync, queued] = twins();
    const expected = inputs.map((x) => sync.forward(x));
    const promises = inputs.map((x) => queued.forwardAsync(x));
    expect(queued.pendingAsyncCalls).toBe(3);
    const outputs = await Promise.all(promises);
    outputs.forEach((y, i) => expect(bytes(y.data)).toBe(bytes(expected[i]!.data)));
    expect(queued.numBatchesTracked).toBe(3);
    expect(bytes(queued.runningVar!)).toBe(bytes(sync.runningVar!));
    const dy = { data: ramp(300, 9), shape };
    const gSync = sync.backward(dy);
    const gAsync = await queued.backwardAsync(dy);
    expect(bytes(gAsync.data)).toBe(bytes(gSync.data));
    expect(bytes(queued.weight!.grad!)).toBe(bytes(sync.weight!.grad!));
    expect(queued.pendingAsyncCalls).toBe(0);
  });

  it('refuses sync calls while async work is pending, then accepts them', async () => {
    const [m] = twins();
    const pending = m.forwardAsync(inputs[0]!);
    expect(() => m.forward(inputs[1]!)).toThrow(
      'BatchNorm2d.forward() was called while 1 async call(s) on this module are pending',
    );
    expect(() => m.zeroGrad()).toThrow('await them first');
    expect(() => m.loadStateDict(m.stateDict())).toThrow('pending');
    await pending;
    expect(() => m.forward(inputs[1]!)).not.toThrow();
  });

  it('rejects a failed queued call without stopping the queue', async () => {
    const [m] = twins();
    const bad = m.forwardAsync({ data: ramp(10), shape: [5, 2] });
    const good = m.forwardAsync(inputs[0]!);
    await expect(bad).rejects.toThrow('expected 4D input (got 2D input)');
    await expect(good).resolves.toBeDefined();
    expect(m.numBatchesTracked).toBe(1);
  });
});

describe('threads of JavaScript', () => {
  it('works in several worker_threads at once, with the same results as the main thread', async () => {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const bn = require(${JSON.stringify(root)});
      const shape = [16, 8, 32, 32];
      const n = shape.reduce((a, b) => a * b);
      const x = { data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + 1) * 2 + 0.5), shape };
      bn.batchNormAsync(x, { training: true }).then((r) => parentPort.postMessage(Buffer.from(r.output.data.buffer).toString('base64')));
    `;
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<string>((resolve, reject) => {
            const worker = new Worker(code, { eval: true });
            worker.once('message', (m: string) => {
              void worker.terminate();
              resolve(m);
            });
            worker.once('error', reject);
          }),
      ),
    );
    const shape = [16, 8, 32, 32];
    const expected = bytes(batchNorm({ data: ramp(16 * 8 * 32 * 32), shape }, { training: true }).output.data);
    for (const r of results) expect(r).toBe(expected);
  });

  it("runs a worker's small async calls on the worker's own thread, as the main thread does", async () => {
    // The promise is settled before the event loop turns (a setImmediate scheduled first has not run);
    // the values are the main thread's.
    const code = `
      const { parentPort } = require('node:worker_threads');
      const bn = require(${JSON.stringify(root)});
      const x = { data: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.37 + 1) * 2 + 0.5), shape: [16, 4] };
      let turned = false;
      setImmediate(() => { turned = true; });
      bn.batchNormAsync(x, { training: true }).then((r) =>
        parentPort.postMessage({ turned, output: Buffer.from(r.output.data.buffer).toString('base64') }));
    `;
    const report = await new Promise<{ turned: boolean; output: string }>((resolve, reject) => {
      const worker = new Worker(code, { eval: true });
      worker.once('message', (m: { turned: boolean; output: string }) => {
        void worker.terminate();
        resolve(m);
      });
      worker.once('error', reject);
    });
    expect(report.turned).toBe(false);
    expect(report.output).toBe(bytes(batchNorm({ data: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.37 + 1) * 2 + 0.5), shape: [16, 4] }, { training: true }).output.data));
  });

  it.each(['gc', 'worker'])('survives %s stress in a child process', (scenario) => {
    const out = execFileSync(process.execPath, ['--expose-gc', path.join(__dirname, 'scripts', 'async-stress.js'), scenario], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out).toContain(`${scenario} ok`);
  });
});
