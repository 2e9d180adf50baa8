// `npm run bench:phases`: where the time of a row goes, ours next to PyTorch's, phase by phase, so that a
// row slower than PyTorch in `npm run bench` can be explained by the phase that loses.
//   npm run bench:phases [-- --threads 1,2] [-- --rounds 3] [-- --only 128x1024] [-- --budget-ms 300]
// Each side runs four calls per row: eval (the normalization alone), train (statistics + normalization),
// backward, and "sums" (the backward with outputMask [false, true, true]: its reductions alone, no
// grad_input). The statistics are train - eval and the grad_input pass is backward - sums; all of them
// with `out` on our side (PyTorch allocates; at these sizes its allocator reuses the block). Every cell
// is the smallest median over the rounds, ours and PyTorch's measured in turn in each round.
import * as os from 'node:os';

import './steady-malloc.mjs'; // first: may rerun this process
import bn from '../dist/index.js';
import { benchTensors, measure, torchTimes } from './timing.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 && args[index + 1] !== undefined ? args[index + 1] : fallback;
};
const budgetMs = Number(option('--budget-ms', 300));
const rounds = Math.max(1, Number(option('--rounds', 3)));
const threadCounts = option('--threads', `1,${Math.min(256, os.availableParallelism())}`).split(',').map(Number);
const ROWS = [
  // Two values per channel: the per-channel work (coefficients, statistics' finishing) nearly alone.
  { shape: [2, 1024], format: 'contiguous' },
  { shape: [128, 1024], format: 'contiguous' },
  { shape: [4096, 256], format: 'contiguous' },
  { shape: [256, 256, 7, 7], format: 'channelsLast' },
  { shape: [32, 64, 56, 56], format: 'channelsLast' },
  { shape: [32, 64, 56, 56], format: 'contiguous' },
  { shape: [8, 32, 128, 128], format: 'contiguous' },
];
const only = option('--only', null);
const rows = ROWS.filter(({ shape, format }) =>
  only === null || `${shape.join('x')}${format === 'channelsLast' ? ' NHWC' : ''}`.includes(only));
const OPS = ['eval', 'train', 'backward', 'sums'];
const keyOf = (row, op, threads) => `${row.shape.join('x')}/${row.format}/${op}/${threads}`;

function ours(row, threads) {
  bn.setNumThreads(threads);
  const { length, x, dy, weight, bias, runningMean, runningVar } = benchTensors(row.shape, row.format);
  const out = new Float32Array(length);
  const forward = { weight, bias, runningMean, runningVar, out };
  const { saveMean, saveInvstd } = bn.batchNorm(x, { ...forward, training: true });
  const backward = { weight, saveMean, saveInvstd, training: true, out: { gradInput: out } };
  const sums = { weight, saveMean, saveInvstd, training: true, outputMask: [false, true, true] };
  const calls = {
    eval: () => bn.batchNorm(x, { ...forward, training: false }),
    train: () => bn.batchNorm(x, { ...forward, training: true }),
    backward: () => bn.batchNormBackward(dy, x, backward),
    sums: () => bn.batchNormBackward(dy, x, sums),
  };
  return Object.fromEntries(OPS.map((op) => [keyOf(row, op, threads), measure(calls[op], 1, budgetMs)]));
}

function pytorch(cases) {
  const times = torchTimes(cases.map(({ row, op, threads }) => ({
    key: keyOf(row, op, threads),
    shape: row.shape,
    channelsLast: row.format === 'channelsLast',
    op,
    threads,
    budgetMs,
  })));
  return times === null ? null : times.results;
}

const minOf = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, a === null ? b[k] : Math.min(a[k], b[k])]));
let mine = null;
let theirs = null;
for (let round = 0; round < rounds; round++) {
  const measured = {};
  const cases = [];
  for (const threads of threadCounts) {
    for (const row of rows) {
      Object.assign(measured, ours(row, threads));
      for (const op of OPS) cases.push({ row, op, threads });
    }
  }
  mine = minOf(mine, measured);
  const torchRound = pytorch(cases);
  theirs = torchRound === null ? null : minOf(theirs, torchRound);
}

const us = (ms) => `${(ms * 1000).toFixed(1)} µs`;
console.log(`cpu capability ${bn.cpuCapability()}; ${rounds} rounds; PyTorch ${theirs === null ? 'not installed' : 'in turn'}`);
console.log('| shape | thr | phase | ours | PyTorch | PyTorch/ours |');
console.log('|---|---|---|---|---|---|');
for (const threads of threadCounts) {
  for (const row of rows) {
    const t = (table, op) => table[keyOf(row, op, threads)];
    const phases = [
      ['eval: normalization', (m) => t(m, 'eval')],
      ['train: statistics (train - eval)', (m) => t(m, 'train') - t(m, 'eval')],
      ['train', (m) => t(m, 'train')],
      ['backward: sums', (m) => t(m, 'sums')],
      ['backward: grad_input (backward - sums)', (m) => t(m, 'backward') - t(m, 'sums')],
      ['backward', (m) => t(m, 'backward')],
    ];
    const name = `(${row.shape.join(',')})${row.format === 'channelsLast' ? ' NHWC' : ''}`;
    for (const [phase, of] of phases) {
      const a = of(mine);
      const b = theirs === null ? null : of(theirs);
      console.log(`| ${name} | ${threads} | ${phase} | ${us(a)} | ${b === null ? '' : us(b)} | ${b === null ? '' : (b / a).toFixed(2) + 'x'} |`);
    }
  }
}
