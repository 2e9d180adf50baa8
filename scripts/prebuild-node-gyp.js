#!/usr/bin/env node
'use strict';
// Stands in for node-gyp when prebuildify calls `<this> rebuild --target=... --arch=... --release`:
// builds with cmake-js instead (which must not receive --target: N-API builds need no Node version),
// The glibc/GLIBCXX floor comes from the code itself (native/kernel/glibc_compat.h, no std threading).
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const argv = process.argv.slice(2);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const arch = option('arch') ?? process.arch;
const debug = argv.includes('--debug');

const args = [require.resolve('cmake-js/bin/cmake-js'), 'rebuild', '--arch', arch];
if (debug) args.push('--debug');
// A cross build's CMake toolchain, chosen by scripts/prebuild.js.
if (process.env.BATCHNORM_PREBUILD_TOOLCHAIN) args.push(`--CDCMAKE_TOOLCHAIN_FILE=${process.env.BATCHNORM_PREBUILD_TOOLCHAIN}`);
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
// Before prebuildify strips the symbols: no AVX instruction outside the ISA-specific kernels.
if (arch === 'x64') {
  const addon = path.join(root, 'build', debug ? 'Debug' : 'Release', 'batchnorm.node');
  const check = spawnSync(process.execPath, [path.join(__dirname, 'check-isa.js'), addon], { stdio: 'inherit' });
  if (check.status !== 0) process.exit(check.status ?? 1);
}
// scripts/prebuild.js puts this copy back once prebuildify has stripped the original.
if (process.env.BATCHNORM_KEEP_UNSTRIPPED) {
  require('node:fs').copyFileSync(path.join(root, 'build', debug ? 'Debug' : 'Release', 'batchnorm.node'), process.env.BATCHNORM_KEEP_UNSTRIPPED);
}
