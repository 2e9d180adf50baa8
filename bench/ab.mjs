// Interleaved A/B of two builds of the addon in one process, the method README "Performance" asks of a
// special code path: each case is timed A, B, B, A (both orders), `rounds` times, and each side keeps
// its smallest median.
//   node bench/ab.mjs <a.node> <b.node> [--only 256x256x7x7] [--ops eval,train,backward] [--threads 1]
//                     [--rounds 3] [--budget-ms 200] [--shape 42000x100[,nhwc]]
// Build B from another tree (or copy build/Release/batchnorm.node aside before a change) and pass both.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { AB_SHAPES, callsPerSample, commandLine, formatMs as fmt, functionalCall, measure } from './timing.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { option, positional } = commandLine(process.argv.slice(2));
const [addonA, addonB] = positional;
if (addonA === undefined || addonB === undefined) {
  console.error('usage: node bench/ab.mjs <a.node> <b.node> [--only text] [--ops eval,train,backward] [--threads 1]');
  process.exit(2);
}
const rounds = Number(option('--rounds', 3));
const budgetMs = Number(option('--budget-ms', 200));
const threads = Number(option('--threads', 1));
const ops = option('--ops', 'eval,train,backward').split(',');
const only = option('--only', null);
const extraShape = option('--shape', null);

/** The package's dist/ loaded afresh against one addon (dist/native.js reads BATCHNORM_ADDON_PATH once). */
function loadPackage(addon) {
  const dist = path.join(here, '..', 'dist');
  for (const key of Object.keys(require.cache)) if (key.startsWith(dist)) delete require.cache[key];
  process.env.BATCHNORM_ADDON_PATH = path.resolve(addon);
  const bn = require(path.join(dist, 'index.js'));
  bn.cpuCapability();  // loads the addon now, while the variable points at it
  return bn;
}
const sides = [loadPackage(addonA), loadPackage(addonB)];
delete process.env.BATCHNORM_ADDON_PATH;

const SHAPES = [...AB_SHAPES];
// A shape of no bench row, for a walk only it takes.
if (extraShape !== null) {
  const [dims, layout] = extraShape.split(',');
  SHAPES.push([dims.split('x').map(Number), layout === 'nhwc' ? 'channelsLast' : 'contiguous']);
}

/** The call of one side for a case, with `out` given (what a training loop passes). */
function callFor(bn, shape, format, op) {
  bn.setNumThreads(threads);
  return functionalCall(bn, shape, format, op);
}

console.log(`A = ${addonA}\nB = ${addonB}\n${threads} thread(s), ${rounds} rounds of A B B A\n`);
console.log('| shape | op | A | B | A/B |\n|---|---|---|---|---|');
for (const [shape, format] of SHAPES) {
  const name = `(${shape.join(',')})${format === 'channelsLast' ? ' NHWC' : ''}`;
  if (only !== null && !`${shape.join('x')}${format === 'channelsLast' ? ' NHWC' : ''}`.includes(only)) continue;
  for (const op of ops) {
    const batch = callsPerSample(shape.reduce((a, b) => a * b, 1));
    const calls = sides.map((bn) => callFor(bn, shape, format, op));
    const best = [Infinity, Infinity];
    for (let round = 0; round < rounds; round++) {
      for (const side of [0, 1, 1, 0]) best[side] = Math.min(best[side], measure(calls[side], batch, budgetMs));
    }
    console.log(`| ${name} | ${op} | ${fmt(best[0])} | ${fmt(best[1])} | ${(best[0] / best[1]).toFixed(2)}x |`);
  }
}
