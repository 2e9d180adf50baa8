// The lifecycle around the kernels (issue 13): buffers detached or resized during async calls, worker
// threads terminated at any moment, the addon loaded many times, sizes that cannot be allocated and
// the thread-count calls during a long call. Each scenario runs in a child process
// (test/scripts/lifecycle.js), so a crash fails one test instead of the runner. Under
// `npm run test:sanitize` the children inherit the ASan+UBSan build.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const script = path.join(__dirname, 'scripts', 'lifecycle.js');
const sanitized = (process.env.LD_PRELOAD ?? '').includes('asan');

/** This Node and the extra runtimes CI installs (BATCHNORM_TEST_NODES, path-delimited): 22 and 24. */
const runtimes = [process.execPath, ...(process.env.BATCHNORM_TEST_NODES ?? '').split(path.delimiter).filter(Boolean)];

function run(node: string, scenario: string, options: { env?: NodeJS.ProcessEnv; args?: string[]; shell?: string } = {}) {
  const env = { ...process.env, ...options.env };
  const out = options.shell
    ? execFileSync('bash', ['-c', `${options.shell}; exec "$0" --expose-gc "$1" "$2"`, node, script, scenario], {
        encoding: 'utf8',
        env,
        timeout: 300_000,
      })
    : execFileSync(node, ['--expose-gc', script, scenario, ...(options.args ?? [])], { encoding: 'utf8', env, timeout: 300_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
}

function nodeVersion(node: string): number {
  return Number(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
}

interface DetachCase {
  target: string;
  method: string;
  detach: string;
  outcome: string;
}

describe.each(runtimes.map((node) => [nodeVersion(node), node] as const))('on Node %i', (major, node) => {
  it.each(['chosen', 'staged'])('an async call whose buffer is detached settles cleanly (guard %s)', (mode) => {
    const report = run(node, 'detach', { env: mode === 'staged' ? { BATCHNORM_ASYNC_MEMORY: 'staged' } : {} });
    const cases = report.cases as DetachCase[];
    // Node 22's ArrayBuffer.prototype.transfer detaches a buffer marked untransferable; 20 and 24 honour the mark.
    const expectedGuard = mode === 'staged' || major === 22 ? 'staged' : 'untransferable';
    expect(report.guard).toBe(expectedGuard);
    expect(cases.length).toBeGreaterThanOrEqual(10);
    for (const c of cases) {
      expect(['resolved', 'rejected'], JSON.stringify(c)).toContain(c.outcome);
      // A functional call protects the caller's buffers from its start: marked buffers are not detached.
      if (expectedGuard === 'untransferable' && !c.target.startsWith('module')) {
        expect(c.detach, JSON.stringify(c)).not.toBe('detached');
        expect(c.outcome, JSON.stringify(c)).toBe('resolved');
      }
      if (c.detach === 'detached') expect(c.outcome, JSON.stringify(c)).toBe('rejected');
    }
  });

  it('async calls refuse resizable buffers; growable shared ones work; sync calls check the current length', () => {
    const report = run(node, 'resizable');
    expect(report.input).toMatch(/^TypeError: input\.data is backed by a resizable ArrayBuffer/);
    expect(report.out).toMatch(/^TypeError: options\.out is backed by a resizable ArrayBuffer/);
    expect(report.growableShared).toBe(true);
    expect(report.syncBeforeShrink).toBe(true);
    expect(report.syncAfterShrink).toMatch(/^RangeError: input\.shape \[4, 3, 8, 8\] describes 768 elements but input\.data has 767/);
  });
});

describe('worker threads terminated at random moments', () => {
  // Both mechanisms: staging once grew the resident set (a kept staging block pinned the heap of the
  // worker thread that allocated it).
  it.each(['chosen', 'staged'])('300 cycles: no abort, no thread growth, bounded memory (guard %s)', (mode) => {
    // One malloc arena for every thread: glibc gives each thread an arena of its own (64 MB heaps) that
    // outlives it and keeps whatever an exited worker had freed inside it, so with the default arenas the
    // resident set jumped by one arena heap in 1 run of 12 on a loaded machine (+62 MB in one
    // heap's mapping, read from /proc/self/smaps) and failed a CI run. With one arena the same cycles
    // moved it by -2.6 to +7.4 MB over either half in 18 runs (Node 20, 22 and 24, loaded and quiet), so
    // the bounds below measure what the package leaks, not where glibc keeps freed memory
    // (docs/PERFORMANCE.md, "The allocating path").
    const env = { MALLOC_ARENA_MAX: '1', ...(mode === 'staged' ? { BATCHNORM_ASYNC_MEMORY: 'staged' } : {}) };
    const report = run(process.execPath, 'terminate', { args: ['300'], env });
    const before = report.before as { threads: number; rssMb: number };
    const after = report.after as { threads: number; rssMb: number };
    expect(report.works).toBe(true);
    // Some cycles must have reached the calls (the rest end while loading or constructing).
    expect(report.calling as number).toBeGreaterThan(20);
    expect(after.threads).toBe(before.threads);
    // ASan's allocator quarantines freed memory, so only the release build bounds the resident set.
    // V8's heaps still move it by up to about 20 MB without a leak, so the bounds are loose but catch a
    // leak per worker: the 0.3 MB per terminated worker once leaked would add 45 MB to each half.
    const middle = report.middle as { threads: number; rssMb: number };
    expect(middle.threads).toBe(before.threads);
    if (!sanitized) {
      expect(after.rssMb - before.rssMb).toBeLessThan(64);
      expect(after.rssMb - middle.rssMb).toBeLessThan(32);
    }
  }, 600_000);
});

describe('loading', () => {
  it('200 reloads of the package start no threads', () => {
    const report = run(process.execPath, 'reload', { args: ['200'] });
    expect(report.works).toBe(true);
    expect(report.after).toBe(report.before);
  });
});

describe('sizes that cannot be allocated', () => {
  // An address-space limit makes the per-channel scratch of a backward over 100M channels fail. Under ASan, operator
  // new reports the failure and aborts instead of throwing std::bad_alloc (and ASan's shadow memory
  // needs more address space than the limit leaves), so the sanitizer run checks the release build.
  const release = sanitized ? { BATCHNORM_ADDON_PATH: '', LD_PRELOAD: '' } : {};
  it('are a RangeError, sync and async, and change nothing', () => {
    const report = run(process.execPath, 'outOfMemory', { shell: 'ulimit -v 3000000', env: release });
    expect(report.emptyEval).toBe('ok');
    expect(report.sync).toMatch(/^RangeError: batchnorm: the memory this call needs .* cannot be allocated/);
    expect(report.async).toMatch(/^RangeError: batchnorm: the memory this call needs .* cannot be allocated/);
    expect(report.unchanged).toBe(true);
    expect(report.stillWorks).toBe(true);
  });
});

describe('thread count during a long async call', () => {
  it('the getter and the setter return at once; the new count applies to later calls', () => {
    const report = run(process.execPath, 'numThreads', { env: { BATCHNORM_NUM_THREADS: '2' } });
    const kernelMs = report.kernelMs as number;
    // Waiting for the call would take most of kernelMs (it was a quarter done when they were called).
    expect(report.getMs as number).toBeLessThan(kernelMs / 4);
    expect(report.setMs as number).toBeLessThan(kernelMs / 4);
    expect(report.threads).toBe(2);
    expect(report.afterSet).toBe(1);
    expect(report.laterOk).toBe(true);
  });
});
