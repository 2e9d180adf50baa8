// SyncBatchNorm over the shipped worker-thread group (issue 23): each case runs
// test/scripts/worker-group.js in a child process, with one worker per rank, and compares with
// BatchNorm*d on the concatenated batch there; failures (a worker that exits, a peer that never comes)
// reject every peer's exchange with an error naming it and change no state.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { createWorkerGroup, joinWorkerGroup } from '../lib/index';
import { native } from '../lib/native';

const script = path.join(__dirname, 'scripts', 'worker-group.js');

function run(args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

describe('SyncBatchNorm over worker threads', () => {
  it.each([
    ['float32', 'contiguous', '6x3', '6', '{}'],
    ['float32', 'contiguous', '8x3x4x4', '3,5', '{"momentum":null}'],
    ['float32', 'contiguous', '8x3x4x4', '3,0,5', '{}'],
    ['float64', 'channelsLast', '7x5x3x2', '2,2,3', '{"affine":false}'],
    ['float32', 'channelsLast', '9x4x2x3x2', '1,4,0,4', '{"trackRunningStats":false}'],
    ['float64', 'contiguous', '10x6x5', '4,1,2,3', '{"momentum":0.3}'],
    // Channels of 1 MB and more: the backward by blocks runs a block per channel or two.
    ['float32', 'contiguous', '6x4x256x256', '2,4', '{}'],
    ['float64', 'contiguous', '5x3x128x256', '3,0,2', '{"affine":false}'],
  ])('%s %s (%s) over shards %s, options %s, matches BatchNorm*d on the whole batch', (dtype, format, shape, shards, options) => {
    const report = run(['train', dtype, format, shape, shards, options]);
    // Workers of more than one run every step by blocks: cut by the largest shard's bytes per channel
    // (forward x, backward x and dy) where every rank's rows hold at least blockMinSpatial values, else
    // one block (0 bytes); either way with the bits of ranks run in one thread through the two passes.
    const sizes = shards.split(',').map(Number);
    const spatial = shape.split('x').map(Number).slice(2).reduce((a, b) => a * b, 1);
    const planar = format === 'contiguous' && spatial >= native().blockMinSpatial;
    const bytes = planar ? Math.max(...sizes) * spatial * (dtype === 'float64' ? 8 : 4) : 0;
    const steps = sizes.length > 1 ? { forward: [bytes, bytes], backward: [2 * bytes, 2 * bytes] } : { forward: [], backward: [] };
    expect(report.byBlocks).toEqual(Array(sizes.length).fill(steps));
    expect(report.sameBitsInThread).toBe(true);
    const tolerance = dtype === 'float64' ? 1e-10 : 1e-5;
    expect(report.outputError).toBeLessThanOrEqual(tolerance);
    expect(report.gradInputError).toBeLessThanOrEqual(tolerance);
    expect(report.runningError).toBeLessThanOrEqual(tolerance);
    expect(report.gradError).toBeLessThanOrEqual(dtype === 'float64' ? 1e-10 : 1e-4);
    expect(report.runningIdentical).toBe(true);
    const ranks = shards.split(',').length;
    expect(report.counters).toEqual(Array(ranks).fill(options.includes('trackRunningStats') ? null : 2));
    // allReduce: [rank, 1] summed over the ranks.
    expect(report.averaged).toEqual({ 0: (ranks * (ranks - 1)) / 2, 1: ranks });
  });

  it('a worker that exits mid-step makes its peers reject, naming it, with no state changed', () => {
    const { results } = run(['terminate']) as { results: Record<string, unknown>[] };
    expect(results[1]).toEqual({ exitCode: 3 });
    for (const rank of [0, 2]) {
      expect(results[rank]).toEqual({
        outcome: 'rejected',
        message: 'worker group: the worker of rank 1 exited (code 3), so its peers\' exchanges cannot complete',
        counter: 0,
        mean: [0, 0],
      });
    }
  });

  it('a peer that leaves during the backward by blocks makes the others reject, with no gradient accumulated', () => {
    const { results } = run(['exitInBlocks']) as { results: Record<string, unknown>[] };
    expect(results[1]).toEqual({ exitCode: 3 });
    for (const rank of [0, 2]) {
      expect(results[rank]).toEqual({
        outcome: 'rejected',
        message: 'worker group: the worker of rank 1 exited (code 3), so its peers\' exchanges cannot complete',
        weightGrad: null,
        biasGrad: null,
      });
    }
  });

  it('a peer that stops between the blocks makes the others reject after timeoutMs, with no gradient accumulated', () => {
    const { results } = run(['timeoutInBlocks']) as { results: Record<string, unknown>[] };
    for (const rank of [0, 2]) {
      expect(results[rank]!.outcome).toBe('rejected');
      expect(results[rank]!.message).toMatch(/^worker group: an exchange waited more than 300 ms for a peer/);
      expect(results[rank]!.weightGrad).toBeNull();
    }
  });

  it('a rank whose native step by blocks throws breaks the group: its peers reject instead of waiting', () => {
    const { results } = run(['throwInBlocks']) as { results: Record<string, unknown>[] };
    expect(results[1]).toEqual({ outcome: 'rejected', message: 'a native check failed', counter: 0 });
    for (const rank of [0, 2]) {
      expect(results[rank]).toEqual({
        outcome: 'rejected',
        message: 'worker group: rank 1 failed inside a SyncBatchNorm step by blocks, so its peers cannot complete it',
        counter: 0,
      });
    }
  });

  it('a step whose blocks exceed maxLength is the same RangeError on every rank, and the group still works', () => {
    const { results } = run(['smallMaxLength']) as { results: Record<string, unknown>[] };
    expect(results).toEqual(
      Array(3).fill({
        message: 'worker group: a SyncBatchNorm step of 4 channels exchanges 8 doubles per rank, more than its maxLength of 6',
        counter: 0,
        after: 1,
        finite: true,
      }),
    );
  });

  it('a peer that never comes makes the others reject after timeoutMs, with no state changed', () => {
    const { results } = run(['timeout']) as { results: Record<string, unknown>[] };
    for (const rank of [0, 2]) {
      expect(results[rank]!.outcome).toBe('rejected');
      expect(results[rank]!.message).toMatch(/^worker group: an exchange waited more than 300 ms for a peer/);
      expect(results[rank]!.counter).toBe(0);
    }
  });

  it("runs a step's passes on the workers' own threads: a busy libuv pool does not hold it up", () => {
    // One libuv thread for the whole process, kept busy by a pbkdf2 of about 0.3 s that rank 0 starts
    // just before a step whose shards (131,072 values) are above the size async calls run inline.
    const out = execFileSync(process.execPath, [script, 'poolBusy', '2000000'], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    });
    const { results } = JSON.parse(out.trim().split('\n').pop()!) as { results: Record<string, unknown>[] };
    expect(results.map((r) => r.finite)).toEqual([true, true]);
    expect(results[0]!.poolDoneAfterStep).toBe(false);
  });

  it('validates its arguments', () => {
    expect(() => createWorkerGroup(0)).toThrow('Expected a positive integer for size but received 0 of type number');
    expect(() => createWorkerGroup(2, { timeoutMs: -1 })).toThrow(RangeError);
    expect(() => createWorkerGroup(2).member(2)).toThrow('Expected an integer from 0 to 1 for rank');
    expect(() => joinWorkerGroup({} as never)).toThrow(TypeError);
  });

  it('a group of one gathers its own array; longer arrays than maxLength are a RangeError', async () => {
    const group = joinWorkerGroup(createWorkerGroup(1, { maxLength: 4 }).member(0));
    expect(await group.allGather(Float64Array.of(1, 2, 3))).toEqual([Float64Array.of(1, 2, 3)]);
    expect(await group.allGather(Float64Array.of(4))).toEqual([Float64Array.of(4)]);
    await expect(group.allGather(new Float64Array(5))).rejects.toThrow('exceeds its maxLength of 4');
  });
});
