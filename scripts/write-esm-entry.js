'use strict';
// Writes dist/index.mjs, the `import` entry: it re-exports the CommonJS build so that `import` and
// `require` share one module instance (one native binding, one set of classes for instanceof).
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const cjs = require(path.join(dist, 'index.js'));
const names = Object.keys(cjs).filter((name) => name !== '__esModule' && name !== 'default');
const source =
  "import cjs from './index.js';\n\n" +
  names.map((name) => `export const ${name} = cjs.${name};`).join('\n') +
  '\nexport default cjs;\n';
fs.writeFileSync(path.join(dist, 'index.mjs'), source);
