// Interleaved A/B of two checkouts of the whole package (their dist/ and their addon) in one process:
// for changes in lib/, where bench/ab.mjs (two addons under one dist/) cannot see the difference. Each
// case is timed A, B, B, A, `rounds` times; each side keeps its smallest median.
//   node bench/ab-package.mjs <rootA> <rootB> [--only 2x4] [--ops eval,train,backward,module-eval,
//                             module-train,module-step] [--rounds 3] [--budget-ms 200] [--threads 1]
//                             [--module-options '{}']
// An op name ending in -alloc (eval-alloc, module-step-alloc) is the call without `out`: a new output
// array each time, as the module path allocates by default.
// A root is a checkout with dist/ and build/Release/ built (npm run build:ts, npm run build:native).
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { AB_SHAPES, benchTensors, callsPerSample, commandLine, formatMs as fmt, functionalCall, measure } from './timing.mjs';

const require = createRequire(import.meta.url);
const { option, positional } = commandLine(process.argv.slice(2));
const [rootA, rootB] = positional;
if (rootA === undefined || rootB === undefined) {
  console.error('usage: node bench/ab-package.mjs <rootA> <rootB> [--only text] [--ops ...] [--rounds 3]');
  process.exit(2);
}
const rounds = Number(option('--rounds', 3));
const budgetMs = Number(option('--budget-ms', 200));
const ops = option('--ops', 'eval,train,backward,module-eval,module-train,module-step').split(',');
const only = option('--only', null);
const threads = Number(option('--threads', 1));
// Options for side B's modules only (say '{"checkInputUnchanged":true}' with the same root twice).
const moduleOptionsB = JSON.parse(option('--module-options', '{}'));

const sides = [rootA, rootB].map((root) => {
  const bn = require(path.resolve(root, 'dist', 'index.js'));
  bn.setNumThreads(threads);
  return bn;
});

const SHAPES = [...AB_SHAPES];

const MODULES = { 2: 'BatchNorm1d', 3: 'BatchNorm1d', 4: 'BatchNorm2d', 5: 'BatchNorm3d' };

/** One side's call for a case, with `out` given (what a training loop passes) unless `op` ends in -alloc. */
function callFor(bn, side, shape, format, opName) {
  const allocating = opName.endsWith('-alloc');
  const op = allocating ? opName.slice(0, -'-alloc'.length) : opName;
  if (op.startsWith('module-')) {
    const { length, x, dy } = benchTensors(shape, format);
    const module = new bn[MODULES[shape.length]](shape[1], side === 1 ? moduleOptionsB : {});
    const out = allocating ? {} : { out: new Float32Array(length) };
    const backwardOut = allocating ? {} : { out: { gradInput: new Float32Array(length) } };
    if (op === 'module-eval') module.eval();
    if (op === 'module-step') {
      return () => {
        module.forward(x, out);
        module.backward(dy, backwardOut);
      };
    }
    return () => module.forward(x, out);
  }
  return functionalCall(bn, shape, format, op, allocating);
}

console.log(`A = ${rootA}\nB = ${rootB} ${JSON.stringify(moduleOptionsB)}\n${threads} thread(s), ${rounds} rounds of A B B A\n`);
console.log('| shape | op | A | B | A/B |\n|---|---|---|---|---|');
for (const [shape, format] of SHAPES) {
  const name = `(${shape.join(',')})${format === 'channelsLast' ? ' NHWC' : ''}`;
  if (only !== null && !`${shape.join('x')}${format === 'channelsLast' ? ' NHWC' : ''}`.includes(only)) continue;
  for (const op of ops) {
    const batch = callsPerSample(shape.reduce((a, b) => a * b, 1));
    const calls = sides.map((bn, side) => callFor(bn, side, shape, format, op));
    const best = [Infinity, Infinity];
    for (let round = 0; round < rounds; round++) {
      for (const side of [0, 1, 1, 0]) best[side] = Math.min(best[side], measure(calls[side], batch, budgetMs));
    }
    console.log(`| ${name} | ${op} | ${fmt(best[0])} | ${fmt(best[1])} | ${(best[0] / best[1]).toFixed(2)}x |`);
  }
}
