'use strict';
// `npm run test:parity`: regenerate the PyTorch fixtures live, with a fresh seed and many random cases,
// and run the parity suite against them. Needs Debian's python3-torch (and python3-mpmath, which it
// pulls in): apt-get install -y python3-torch python3-mpmath
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const python = process.env.BATCHNORM_PYTHON ?? '/usr/bin/python3';

const probe = spawnSync(python, ['-c', 'import torch, mpmath; print(torch.__version__)'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.error(
    `test:parity needs PyTorch: \`${python} -c 'import torch, mpmath'\` failed.\n` +
      'Install it with: apt-get install -y python3-torch python3-mpmath\n' +
      '(`npm test` runs the same suite on the committed fixtures without PyTorch.)',
  );
  process.exit(1);
}

const seed = Number(process.env.BATCHNORM_PARITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const randomCases = Number(process.env.BATCHNORM_PARITY_CASES ?? 300);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batchnorm-parity-'));
console.log(`PyTorch ${probe.stdout.trim()}: generating fixtures with seed ${seed} and ${randomCases} random cases`);

const fixtures = path.join(root, 'test', 'fixtures');
for (const args of [
  ['generate.py', '--out', dir, '--seed', String(seed), '--random-cases', String(randomCases)],
  ['generate_modules.py', '--out', dir, '--seed', String(seed)],
]) {
  const generate = spawnSync(python, [path.join(fixtures, args[0]), ...args.slice(1)], { stdio: 'inherit' });
  if (generate.status !== 0) process.exit(generate.status ?? 1);
}

const vitest = spawnSync(
  process.execPath,
  [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/parity.test.ts', 'test/modules-parity.test.ts', 'test/family-parity.test.ts'],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BATCHNORM_FIXTURES_DIR: dir } },
);
fs.rmSync(dir, { recursive: true, force: true });
if (vitest.status !== 0) console.error(`parity failed; reproduce with BATCHNORM_PARITY_SEED=${seed}`);
process.exit(vitest.status ?? 1);
