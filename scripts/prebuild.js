'use strict';
// `npm run prebuild`: prebuildify (--napi --strip --tag-libc) with cmake-js standing in for node-gyp
// (scripts/prebuild-node-gyp.js), writing prebuilds/linux-<arch>/batchnorm.glibc.node for this machine's
// arch, or BATCHNORM_PREBUILD_ARCH=arm64 cross-compiled with g++-aarch64-linux-gnu. prebuildify strips
// the binary in build/Release as well; the unstripped build is put back afterwards, so the working tree's
// own build (and the ISA check that needs its symbols) stays as it was.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const release = path.join(root, 'build', 'Release', 'batchnorm.node');
const unstripped = path.join(root, 'build', 'batchnorm.unstripped.node');
const arch = process.env.BATCHNORM_PREBUILD_ARCH ?? process.arch;

// A cross build replaces build/: keep the host's binary to put back afterwards.
const cross = arch !== process.arch;
const hostBinary = cross && fs.existsSync(release) ? fs.readFileSync(release) : null;

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
    // A cross build needs the target's strip.
    ...(arch === 'arm64' && process.arch !== 'arm64' ? ['--strip-bin', 'aarch64-linux-gnu-strip'] : []),
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BATCHNORM_KEEP_UNSTRIPPED: unstripped } },
);
if (cross) {
  // Leave no cross-compiled CMake cache behind: the next cmake-js build configures for the host again.
  fs.rmSync(path.join(root, 'build'), { recursive: true, force: true });
  if (hostBinary !== null) {
    fs.mkdirSync(path.dirname(release), { recursive: true });
    fs.writeFileSync(release, hostBinary);
  }
} else if (fs.existsSync(unstripped)) {
  fs.renameSync(unstripped, release);
}
process.exit(result.status ?? 1);
