// The built package as users load it: `require` and `import` of the package root share one instance.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

describe('packing (npm prepack: scripts/check-prebuilds.js)', () => {
  it('refuses a tarball without every prebuild, and with BATCHNORM_PACK_INCOMPLETE=1 says what it holds', () => {
    const scratch = mkdtempSync(path.join(tmpdir(), 'batchnorm-pack-'));
    try {
      mkdirSync(path.join(scratch, 'scripts'));
      for (const file of ['check-prebuilds.js', 'prebuild-targets.js']) {
        copyFileSync(path.join(root, 'scripts', file), path.join(scratch, 'scripts', file));
      }
      const check = (env: NodeJS.ProcessEnv) =>
        spawnSync(process.execPath, [path.join(scratch, 'scripts', 'check-prebuilds.js')], { encoding: 'utf8', env: { ...process.env, ...env } });
      const refused = check({ BATCHNORM_PACK_INCOMPLETE: '' });
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain("set BATCHNORM_PACK_INCOMPLETE=1 to pack the prebuilds there are (npm run prebuild makes this machine's)");
      const none = check({ BATCHNORM_PACK_INCOMPLETE: '1' });
      expect(none.status).toBe(0);
      expect(none.stderr).toContain('the tarball holds no prebuild, so installing it compiles the addon from source');
      mkdirSync(path.join(scratch, 'prebuilds', 'linux-x64'), { recursive: true });
      copyFileSync(path.join(root, 'package.json'), path.join(scratch, 'prebuilds', 'linux-x64', 'batchnorm.glibc.node'));
      expect(check({ BATCHNORM_PACK_INCOMPLETE: '1' }).stderr).toContain('the tarball holds the prebuilds for linux-x64 only');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('batchnorm/mpi', () => {
  it('explains how to build its addon when it is not built', () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "try { require('batchnorm/mpi').mpiWorld() } catch (e) { console.log(e.name + ': ' + e.message) }"],
      { cwd: root, encoding: 'utf8', env: { ...process.env, BATCHNORM_MPI_ADDON_PATH: '/nonexistent/batchnorm_mpi.node' } },
    );
    expect(out).toMatch(/^BatchNormLoadError: batchnorm\/mpi: could not load \/nonexistent\/batchnorm_mpi\.node/);
    expect(out).toContain('apt-get install openmpi-bin libopenmpi-dev');
    expect(out).toContain('`npm run build:mpi` in the batchnorm package folder');
  });

  it('the main addon does not link MPI', () => {
    const addon = path.join(root, 'build', 'Release', 'batchnorm.node');
    const needed = execFileSync('readelf', ['-d', addon], { encoding: 'utf8' });
    expect(needed).toMatch(/NEEDED/);
    expect(needed).not.toMatch(/libmpi/);
  });
});
