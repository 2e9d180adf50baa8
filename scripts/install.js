'use strict';
// npm `install` hook: use a prebuilt or already-built addon when one loads on this machine, otherwise
// compile from source with cmake-js (never node-gyp). BATCHNORM_BUILD_FROM_SOURCE=1 forces the build.
//
// The source-build toolchain (cmake-js, node-addon-api, node-api-headers) is not a dependency: users
// whose prebuild loads never install it. When a build is needed and the toolchain cannot be resolved
// (a development checkout has it as devDependencies), the versions pinned in package.json's
// devDependencies are installed from the npm registry into a folder of this package, used for the
// build and removed afterwards.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const TOOLCHAIN = ['cmake-js', 'node-addon-api', 'node-api-headers'];

function existingBinaryLoads() {
  if (process.env.BATCHNORM_BUILD_FROM_SOURCE === '1') return false;
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

function resolvable(name) {
  try {
    require.resolve(`${name}/package.json`, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

// Installs the pinned toolchain into `folder` with the npm running this script (npm_execpath), or the
// npm on PATH when another package manager (pnpm, yarn) runs it: the flags below are npm's.
function installToolchain(folder) {
  const pinned = require('../package.json').devDependencies;
  const specs = TOOLCHAIN.map((name) => `${name}@${pinned[name]}`);
  console.log(`batchnorm: installing the source-build toolchain (${specs.join(', ')}) for this build`);
  const execPath = process.env.npm_execpath ?? '';
  const npm = /npm-cli\.js$/.test(execPath) ? [process.execPath, execPath] : ['npm'];
  const args = ['install', '--prefix', folder, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts'];
  const result = spawnSync(npm[0], [...npm.slice(1), ...args, ...specs], {
    stdio: 'inherit',
    shell: process.platform === 'win32' && npm.length === 1,
  });
  if (result.status !== 0) {
    console.error(`batchnorm: could not install ${specs.join(', ')} from the npm registry.`);
    process.exit(result.status ?? 1);
  }
}

/**
 * Runs cmake-js with `args` in the package root, with the pinned toolchain fetched for the run where it
 * cannot be resolved (an installed package); the exit status of cmake-js.
 */
function runCmakeJs(args) {
  const fetched = TOOLCHAIN.every(resolvable) ? null : path.join(root, 'build-toolchain');
  if (fetched !== null) installToolchain(fetched);
  const modules = fetched === null ? null : path.join(fetched, 'node_modules');
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [modules ?? root] });
  // CMakeLists.txt asks node for node-addon-api's headers; NODE_PATH lets it find the fetched copy.
  const env = modules === null ? process.env : { ...process.env, NODE_PATH: [modules, process.env.NODE_PATH].filter(Boolean).join(path.delimiter) };
  const result = spawnSync(process.execPath, [cmakeJs, ...args], { cwd: root, stdio: 'inherit', env });
  if (fetched !== null) fs.rmSync(fetched, { recursive: true, force: true });
  return result.status ?? 1;
}

function buildFromSource() {
  const status = runCmakeJs(['rebuild']);
  if (status !== 0) {
    console.error(
      'batchnorm: building the native addon failed. It needs cmake (>= 3.15) and a C++17 compiler; ' +
        'see the messages above.',
    );
    process.exit(status);
  }
}

module.exports = { runCmakeJs };

if (require.main === module && !existingBinaryLoads()) buildFromSource();
