// Our kernels next to oneDNN's batch normalization JIT on the bench's channels-last rows at 1 and 2
// threads: an optional bench, not a test. Needs a system oneDNN 2.x and its headers
// (Debian: apt-get install libdnnl-dev); builds bench/onednn/batchnorm_onednn.cc into build-bench/.
//   node bench/onednn.mjs [--threads 1,2] [--rounds 2] [--budget-ms 200] [--only NHWC]
// Each case is measured ours, oneDNN, oneDNN, ours, `rounds` times; each side keeps its smallest median.
// oneDNN/ours above 1 means we are faster. oneDNN runs in its own process on OpenMP threads
// (OMP_NUM_THREADS), with the same inputs (bench/timing.mjs's generator), float32, eps 1e-5.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { commandLine, formatMs as fmt, functionalCall, measure } from './timing.mjs';

const require = createRequire(import.meta.url);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { option } = commandLine(process.argv.slice(2));
const threadCounts = option('--threads', '1,2').split(',').map(Number);
const rounds = Number(option('--rounds', 2));
const budgetMs = Number(option('--budget-ms', 200));
const only = option('--only', null);

const header = ['/usr/include/oneapi/dnnl/dnnl.hpp', '/usr/local/include/oneapi/dnnl/dnnl.hpp'].find(existsSync);
if (header === undefined) {
  console.log('bench/onednn.mjs: oneDNN is not installed (Debian: apt-get install libdnnl-dev); nothing to compare.');
  process.exit(0);
}
const binary = path.join(root, 'build-bench', 'batchnorm_onednn');
mkdirSync(path.dirname(binary), { recursive: true });
execFileSync('g++', ['-O2', '-std=c++17', path.join(root, 'bench', 'onednn', 'batchnorm_onednn.cc'), '-ldnnl', '-o', binary], {
  stdio: 'inherit',
});

const bn = require(path.join(root, 'dist', 'index.js'));
// The channels-last rows: oneDNN's JIT takes NHWC (and its blocked layouts); its NCHW batch norm is a
// plain loop (ncsp_bnorm: 10 ms for a (32,64,56,56) training forward), no reference for us.
const SHAPES = [
  [[32, 64, 56, 56], 'channelsLast'],
  [[256, 256, 7, 7], 'channelsLast'],
];
const OPS = ['eval', 'train', 'backward'];

/** A oneDNN process on `threads` OpenMP threads, answering one case per line. */
function oneDnnProcess(threads) {
  const child = spawn(binary, [], { env: { ...process.env, OMP_NUM_THREADS: String(threads) }, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()(Number(line)));
  return {
    time(shape, format, op) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin.write(`${shape.join(' ')} ${format === 'channelsLast' ? 'nhwc' : 'nchw'} ${op} ${budgetMs}\n`);
      });
    },
    close() {
      child.stdin.end();
    },
  };
}

const rows = [];
for (const threads of threadCounts) {
  bn.setNumThreads(threads);
  const oneDnn = oneDnnProcess(threads);
  for (const [shape, format] of SHAPES) {
    const name = `(${shape.join(',')})${format === 'channelsLast' ? ' NHWC' : ''}`;
    if (only !== null && !name.includes(only)) continue;
    for (const op of OPS) {
      const call = functionalCall(bn, shape, format, op);
      let ours = Infinity;
      let theirs = Infinity;
      for (let round = 0; round < rounds; round++) {
        ours = Math.min(ours, measure(call, 1, budgetMs));
        theirs = Math.min(theirs, await oneDnn.time(shape, format, op));
        theirs = Math.min(theirs, await oneDnn.time(shape, format, op));
        ours = Math.min(ours, measure(call, 1, budgetMs));
      }
      rows.push({ name, op, threads, ours, theirs });
    }
  }
  oneDnn.close();
}
for (const row of rows) {
  const single = rows.find((r) => r.threads === 1 && r.name === row.name && r.op === row.op);
  row.oursSpeedup = single && row.threads !== 1 ? single.ours / row.ours : null;
  row.theirSpeedup = single && row.threads !== 1 ? single.theirs / row.theirs : null;
}
console.log(`batchnorm ${bn.cpuCapability()} against oneDNN (OpenMP), float32; smallest median of ${rounds} rounds`);
console.log('| shape | op | thr | ours | oneDNN | oneDNN/ours | our speed-up over 1 thread | oneDNN\'s |');
console.log('|---|---|---|---|---|---|---|---|');
const ratio = (value) => (value === null ? '' : `${value.toFixed(2)}x`);
for (const r of rows) {
  console.log(`| ${r.name} | ${r.op} | ${r.threads} | ${fmt(r.ours)} | ${fmt(r.theirs)} | ${(r.theirs / r.ours).toFixed(2)}x | ${ratio(r.oursSpeedup)} | ${ratio(r.theirSpeedup)} |`);
}
