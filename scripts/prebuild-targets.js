'use strict';
// The prebuilds a release ships: what scripts/prebuild.js builds and scripts/check-prebuilds.js (npm's
// prepack) requires. platform/arch as node-gyp-build looks them up; libc is the file's tag (none on
// macOS and Windows).
const path = require('node:path');

const toolchain = (name) => path.join(__dirname, '..', 'cmake', `toolchain-${name}.cmake`);

const TARGETS = {
  'linux-x64': { platform: 'linux', arch: 'x64', libc: 'glibc' },
  'linux-arm64': { platform: 'linux', arch: 'arm64', libc: 'glibc', toolchain: toolchain('linux-arm64'), stripBin: 'aarch64-linux-gnu-strip' },
  'linux-musl-x64': { platform: 'linux', arch: 'x64', libc: 'musl', zig: 'x86_64-linux-musl', toolchain: toolchain('zig') },
  'linux-musl-arm64': { platform: 'linux', arch: 'arm64', libc: 'musl', zig: 'aarch64-linux-musl', toolchain: toolchain('zig') },
  'darwin-x64': { platform: 'darwin', arch: 'x64', zig: 'x86_64-macos.11.0', toolchain: toolchain('zig') },
  'darwin-arm64': { platform: 'darwin', arch: 'arm64', zig: 'aarch64-macos.11.0', toolchain: toolchain('zig') },
  'win32-x64': { platform: 'win32', arch: 'x64', toolchain: toolchain('mingw-x64'), stripBin: 'x86_64-w64-mingw32-strip' },
};

/** The file a target's prebuild is written to, relative to the package root. */
function prebuildFile(name) {
  const target = TARGETS[name];
  return path.join('prebuilds', `${target.platform}-${target.arch}`, `batchnorm${target.libc ? `.${target.libc}` : ''}.node`);
}

module.exports = { TARGETS, prebuildFile };
