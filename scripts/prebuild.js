'use strict';
// `npm run prebuild`: prebuildify (--napi --strip --tag-libc) with cmake-js standing in for node-gyp
// (scripts/prebuild-node-gyp.js), writing prebuilds/linux-x64/batchnorm.glibc.node. prebuildify strips
// the binary in build/Release as well; the unstripped build is put back afterwards, so the working tree's
// own build (and the ISA check that needs its symbols) stays as it was.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const release = path.join(root, 'build', 'Release', 'batchnorm.node');
const unstripped = path.join(root, 'build', 'batchnorm.unstripped.node');
const arch = process.env.BATCHNORM_PREBUILD_ARCH ?? process.arch;

const result = spawnSync(
  process.execPath,
  [
    require.resolve('prebuildify/bin.js'),
    '--napi',
    '--strip',
    '--tag-libc',
    '--arch',
    arch,
    '--node-gyp',
    path.join(__dirname, 'prebuild-node-gyp.js'),
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BATCHNORM_KEEP_UNSTRIPPED: unstripped } },
);
if (fs.existsSync(unstripped)) fs.renameSync(unstripped, release);
process.exit(result.status ?? 1);
