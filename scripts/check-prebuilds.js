'use strict';
// npm's `prepack`: a tarball without a prebuild for every target of scripts/prebuild-targets.js would
// make a release whose users on the missing platforms need a compiler, so `npm pack` / `npm publish`
// stop here, naming what is missing. BATCHNORM_PACK_INCOMPLETE=1 packs anyway (a local tarball for one
// machine), with a warning.
const fs = require('node:fs');
const path = require('node:path');
const { TARGETS, prebuildFile } = require('./prebuild-targets.js');

const root = path.join(__dirname, '..');
const missing = Object.keys(TARGETS).filter((name) => !fs.existsSync(path.join(root, prebuildFile(name))));
if (missing.length > 0) {
  const message =
    `batchnorm: the tarball would lack the prebuilds for ${missing.join(', ')} ` +
    `(${missing.map(prebuildFile).join(', ')}). Run npm run prebuild:all first`;
  if (process.env.BATCHNORM_PACK_INCOMPLETE === '1') {
    console.warn(`${message}; packing anyway (BATCHNORM_PACK_INCOMPLETE=1).`);
  } else {
    console.error(`${message}, or set BATCHNORM_PACK_INCOMPLETE=1 for a tarball for this machine only.`);
    process.exit(1);
  }
} else {
  console.log(`batchnorm: all ${Object.keys(TARGETS).length} prebuilds present`);
}
