// Kernel-path selection and the portability of the binary.
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { cpuCapability } from '../lib/index';

const root = path.join(__dirname, '..');
const ORDER = ['default', 'avx2', 'avx512'];

/** The path a fresh process picks with the given BATCHNORM_CPU_CAPABILITY (undefined: unset). */
function capabilityWith(requested: string | undefined): { capability: string; stderr: string } {
  const env = { ...process.env, BATCHNORM_CPU_CAPABILITY: requested };
  if (requested === undefined) delete env.BATCHNORM_CPU_CAPABILITY;
  const child = spawnSync(process.execPath, ['-e', "process.stdout.write(require('batchnorm').cpuCapability())"], {
    cwd: root,
    env,
    encoding: 'utf8',
  });
  return { capability: child.stdout, stderr: child.stderr };
}

const best = capabilityWith(undefined).capability;

describe('kernel path selection', () => {
  it('uses the forced path when the CPU has it, else the best it has', () => {
    const forced = process.env.BATCHNORM_CPU_CAPABILITY;
    if (forced === undefined) {
      expect(cpuCapability()).toBe(best);
    } else {
      const expected = ORDER.indexOf(forced) <= ORDER.indexOf(best) ? forced : best;
      expect(cpuCapability()).toBe(expected);
    }
  });

  it.each(ORDER)('BATCHNORM_CPU_CAPABILITY=%s never goes above the best path', (requested) => {
    const { capability, stderr } = capabilityWith(requested);
    const supported = ORDER.indexOf(requested) <= ORDER.indexOf(best);
    expect(capability).toBe(supported ? requested : best);
    expect(stderr).toBe(supported ? '' : `batchnorm: BATCHNORM_CPU_CAPABILITY=${requested} is not supported on this CPU; using ${best}\n`);
  });

  it('ignores an unknown value with a warning', () => {
    const { capability, stderr } = capabilityWith('sse9');
    expect(capability).toBe(best);
    expect(stderr).toContain('ignoring BATCHNORM_CPU_CAPABILITY=sse9 (expected default, avx2 or avx512)');
  });
});

describe('portability of the binary', () => {
  it.runIf(process.arch === 'x64')('has AVX instructions only inside the avx2/avx512 kernels', () => {
    const out = execFileSync(process.execPath, [path.join(root, 'scripts', 'check-isa.js')], { encoding: 'utf8' });
    expect(out).toMatch(/baseline functions free of AVX/);
  });
});
