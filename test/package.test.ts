// The built package as users load it: `require` and `import` of the package root share one instance.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');

function runNode(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();
}

describe('package entry points', () => {
  it('explains a binary that cannot be loaded with a BatchNormLoadError', () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "try { require('batchnorm').cpuCapability() } catch (e) { console.log(e.name + ': ' + e.message) }"],
      { cwd: root, encoding: 'utf8', env: { ...process.env, BATCHNORM_ADDON_PATH: '/nonexistent/batchnorm.node' } },
    );
    expect(out).toMatch(/^BatchNormLoadError: batchnorm: BATCHNORM_ADDON_PATH=\/nonexistent\/batchnorm.node could not be loaded/);
  });

  it('loads with require', () => {
    const out = runNode([
      '-e',
      "const bn = require('batchnorm'); const r = bn.batchNorm({ data: new Float64Array([1, 3]), shape: [2, 1] }, { training: true }); console.log(JSON.stringify([typeof bn.batchNormBackward, Array.from(r.output.data)]))",
    ]);
    const [backwardType, output] = JSON.parse(out) as [string, number[]];
    expect(backwardType).toBe('function');
    expect(output[0]).toBeCloseTo(-1 / Math.sqrt(1 + 1e-5), 12);
    expect(output[1]).toBeCloseTo(1 / Math.sqrt(1 + 1e-5), 12);
  });

  it('loads with import, sharing the CommonJS instance', () => {
    const out = runNode([
      '--input-type=module',
      '-e',
      "import { batchNorm, cpuCapability } from 'batchnorm'; import { createRequire } from 'node:module'; const cjs = createRequire(import.meta.url)('batchnorm'); console.log(JSON.stringify([batchNorm === cjs.batchNorm, cpuCapability()]))",
    ]);
    const [same, capability] = JSON.parse(out) as [boolean, string];
    expect(same).toBe(true);
    expect(['default', 'avx2', 'avx512']).toContain(capability);
  });
});
