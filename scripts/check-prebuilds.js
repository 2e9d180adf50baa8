'use strict';
// npm's `prepack`: a tarball without a prebuild for every target of scripts/prebuild-targets.js would
// make a release whose users on the missing platforms need a compiler, so `npm pack` / `npm publish`
// stop here, naming what is missing. BATCHNORM_PACK_INCOMPLETE=1 packs the prebuilds there are anyway,
// with a warning that says which (after `npm run prebuild`, this machine's; with none, every install
// compiles from source).
const fs = require('node:fs');
const path = require('node:path');
const { TARGETS, prebuildFile } = require('./prebuild-targets.js');

const root = path.join(__dirname, '..');
const missing = Object.keys(TARGETS).filter((name) => !fs.existsSync(path.join(root, prebuildFile(name))));
if (missing.length > 0) {
  const message =
    `batchnorm: the tarball would lack the prebuilds for ${missing.join(', ')} ` +
    `(${missing.map(prebuildFile).join(', ')}). Run npm run prebuild:all first`;
  const present = Object.keys(TARGETS).filter((name) => !missing.includes(name));
  if (process.env.BATCHNORM_PACK_INCOMPLETE === '1') {
    const holds =
      present.length === 0
        ? 'the tarball holds no prebuild, so installing it compiles the addon from source (cmake and a C++17 compiler)'
        : `the tarball holds the prebuilds for ${present.join(', ')} only`;
    console.warn(`${message}; packing anyway (BATCHNORM_PACK_INCOMPLETE=1): ${holds}.`);
  } else {
    console.error(
      `${message}, or set BATCHNORM_PACK_INCOMPLETE=1 to pack the prebuilds there are ` +
        '(npm run prebuild makes this machine\'s).',
    );
    process.exit(1);
  }
} else {
  console.log(`batchnorm: all ${Object.keys(TARGETS).length} prebuilds present`);
}
