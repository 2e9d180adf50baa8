'use strict';
// `npm run prebuild`: prebuildify (--napi, --strip but on macOS) with cmake-js standing in for node-gyp
// (scripts/prebuild-node-gyp.js). One target per run, named by BATCHNORM_PREBUILD_TARGET (default
// linux-<this arch>); `npm run prebuild:all` (`--all`) builds every target of
// scripts/prebuild-targets.js into prebuilds/. Cross builds: Debian's g++-aarch64-linux-gnu for
// linux-arm64, mingw-w64 (posix threads) for win32-x64, zig (scripts/fetch-cross-tools.sh, or
// BATCHNORM_ZIG) for macOS and musl.
// prebuildify strips the binary in build/Release as well; the unstripped build is put back afterwards,
// so the working tree's own build (and the ISA check that needs its symbols) stays as it was.
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { TARGETS } = require('./prebuild-targets.js');

const root = path.join(__dirname, '..');
const release = path.join(root, 'build', 'Release', 'batchnorm.node');
const unstripped = path.join(root, 'build', 'batchnorm.unstripped.node');

function zigBinary() {
  if (process.env.BATCHNORM_ZIG) return process.env.BATCHNORM_ZIG;
  const [zig] = execFileSync('bash', [path.join(__dirname, 'fetch-cross-tools.sh')], { encoding: 'utf8' }).trim().split('\n');
  process.env.BATCHNORM_ZIG = zig;
  return zig;
}

function build(name) {
  const target = TARGETS[name];
  if (target === undefined) throw new Error(`unknown prebuild target ${name}: one of ${Object.keys(TARGETS).join(', ')}`);
  const env = { ...process.env, BATCHNORM_KEEP_UNSTRIPPED: unstripped };
  const args = ['--napi', '--platform', target.platform, '--arch', target.arch, '--node-gyp', path.join(__dirname, 'prebuild-node-gyp.js')];
  if (target.libc) args.push('--tag-libc', '--libc', target.libc);
  // prebuildify strips with the host's flags (--strip-all), which suit ELF and PE; a Mach-O build has no
  // debug information in the binary to strip (it stays in the object files).
  if (target.platform !== 'darwin') args.push('--strip');
  if (target.zig) {
    env.BATCHNORM_ZIG = zigBinary();
    env.BATCHNORM_ZIG_TARGET = target.zig;
    env.BATCHNORM_PREBUILD_TOOLCHAIN = target.toolchain;
    args.push('--strip-bin', 'llvm-strip');
  } else if (target.toolchain && (target.arch !== process.arch || target.platform !== process.platform)) {
    env.BATCHNORM_PREBUILD_TOOLCHAIN = target.toolchain;
    args.push('--strip-bin', target.stripBin);
  }
  const cross = env.BATCHNORM_PREBUILD_TOOLCHAIN !== undefined;
  // A cross build replaces build/: keep the host's binary to put back afterwards.
  const hostBinary = cross && fs.existsSync(release) ? fs.readFileSync(release) : null;
  console.log(`::: prebuild ${name}`);
  const result = spawnSync(process.execPath, [require.resolve('prebuildify/bin.js'), ...args], { cwd: root, stdio: 'inherit', env });
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
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (process.argv.includes('--all')) {
  for (const name of Object.keys(TARGETS)) build(name);
} else {
  build(process.env.BATCHNORM_PREBUILD_TARGET ?? `linux-${process.arch}`);
}
