// `npm run demo` end to end with few epochs: batch norm reaches the target, and the saved layers load
// back into fresh modules with exactly the trained state.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { BatchNorm1d, loadSafetensors } from '../lib/index';

const root = path.join(__dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'batchnorm-demo-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

interface Summary {
  targetAccuracy: number;
  runs: { name: string; epochsToTarget: number | null; finalTestAccuracy: number }[];
  layers: number[];
  state: Record<string, number[]>;
}

describe('demo', () => {
  const script = path.join(root, 'dist-examples', 'train-mlp.js');
  const stdout = execFileSync(process.execPath, [script, '--epochs', '4', '--seed', '7', '--threads', '1', '--out', out], {
    cwd: root,
    encoding: 'utf8',
  });
  const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as Summary;

  it('prints a per-epoch comparison and a summary', () => {
    expect(stdout).toMatch(/epoch \| with BatchNorm1d/);
    expect(stdout).toMatch(/\| with BatchNorm1d +\| \d+ +\|/);
    expect(stdout).toContain('load_file("');
  });

  it('reaches the target accuracy with batch norm', () => {
    const withBn = summary.runs.find((r) => r.name === 'with BatchNorm1d')!;
    expect(withBn.epochsToTarget).not.toBeNull();
    expect(withBn.finalTestAccuracy).toBeGreaterThanOrEqual(summary.targetAccuracy);
  });

  it('saves layers that load into fresh modules with identical state', () => {
    const file = loadSafetensors(path.join(out, 'batchnorm_layers.safetensors'));
    summary.layers.forEach((features, i) => {
      const prefix = `bn${i}.`;
      const layerState = Object.fromEntries(
        Object.entries(file).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]),
      );
      const module = new BatchNorm1d(features);
      module.loadStateDict(layerState);
      for (const [key, value] of Object.entries(module.stateDict())) {
        const expected = summary.state[`${prefix}${key}`]!;
        expect(Array.from(value as ArrayLike<number | bigint>, Number), `${prefix}${key}`).toEqual(expected);
      }
      expect(module.numBatchesTracked).toBeGreaterThan(0);
    });
  });
});

describe('distributed demo', () => {
  const script = path.join(root, 'dist-examples', 'train-distributed.js');
  const distributedOut = path.join(out, 'distributed');
  const stdout = execFileSync(process.execPath, [script, '--steps', '25', '--seed', '7', '--out', distributedOut], { cwd: root, encoding: 'utf8' });
  const report = JSON.parse(readFileSync(path.join(distributedOut, 'distributed.json'), 'utf8')) as {
    maxLossDifference: { sync: number; perReplica: number };
    runs: { name: string; losses: number[] }[];
  };

  it('SyncBatchNorm on 4 workers tracks the one-process run step for step; per-replica batch norm does not', () => {
    expect(report.runs.map((r) => r.losses.length)).toEqual([25, 25, 25]);
    // The same arithmetic up to float32 rounding in a different order.
    expect(report.maxLossDifference.sync).toBeLessThan(1e-5);
    expect(report.maxLossDifference.perReplica).toBeGreaterThan(1e-2);
    expect(stdout).toMatch(/largest loss difference from the one-process run over 25 steps: SyncBatchNorm/);
    expect(readFileSync(path.join(distributedOut, 'distributed.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<polyline[\s\S]*<\/svg>$/);
  });
});
