// One kernel-thread budget per process (issue 24): the kernel threads of every environment that loads
// the addon (the main thread and its workers) together stay within it. Each case runs
// test/scripts/thread-budget.js in a child process and counts the process's threads in /proc.
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const script = path.join(__dirname, 'scripts', 'thread-budget.js');

interface BudgetReport {
  baseline: number;
  afterWorkers: number;
  afterMain: number;
  workerThreads: number[];
  mainThreads: number;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): BudgetReport {
  const out = execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return JSON.parse(out.trim().split('\n').pop()!) as BudgetReport;
}

describe('the kernel threads of all workers share one budget', () => {
  const cores = Math.min(256, os.availableParallelism());

  it.each([1, 4, 8])('%i workers and the main thread add at most budget - 1 threads (default budget: the cores)', (workers) => {
    const report = run([String(workers), '64']);
    // Every calling thread is one of the budget's threads; the pool adds the others, once per process.
    expect(report.afterMain - report.baseline).toBeLessThanOrEqual(cores - 1);
    expect(report.afterMain - report.baseline).toBeGreaterThanOrEqual(0);
    // setNumThreads(64) in a worker stays within the budget.
    expect(report.workerThreads).toEqual(Array(workers).fill(cores));
    expect(report.mainThreads).toBe(cores);
  });

  it.each([1, 3])('BATCHNORM_NUM_THREADS=%i sets the budget at load', (budget) => {
    const report = run(['4', '64'], { BATCHNORM_NUM_THREADS: String(budget) });
    expect(report.workerThreads).toEqual([budget, budget, budget, budget]);
    expect(report.mainThreads).toBe(budget);
    expect(report.afterMain - report.baseline).toBeLessThanOrEqual(budget - 1);
    // With a budget above one, the pool's threads are really started (the calls are large enough).
    if (budget <= cores) expect(report.afterMain - report.baseline).toBe(budget - 1);
  });

  it('a malformed BATCHNORM_NUM_THREADS is a RangeError naming it', () => {
    const failed = () => run(['1'], { BATCHNORM_NUM_THREADS: '0' });
    expect(failed).toThrow(/Expected an integer from 1 to 256 for the environment variable BATCHNORM_NUM_THREADS but received '0'/);
  });
});
