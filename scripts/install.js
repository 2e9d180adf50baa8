'use strict';
// npm `install` hook: use a prebuilt or already-built addon when one loads on this machine, otherwise
// compile from source with cmake-js (never node-gyp). BATCHNORM_BUILD_FROM_SOURCE=1 forces the build.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');

function existingBinaryLoads() {
  if (process.env.BATCHNORM_BUILD_FROM_SOURCE === '1') return false;
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

if (!existingBinaryLoads()) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const result = spawnSync(process.execPath, [cmakeJs, 'rebuild'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(
      'batchnorm: building the native addon failed. It needs cmake (>= 3.15) and a C++17 compiler; ' +
        'see the messages above.',
    );
    process.exit(result.status ?? 1);
  }
}
