// `npm run bench`: median times of batchnorm's eval forward, training forward and training backward
// (float32, NCHW) next to a native memcpy of the same bytes and PyTorch, all measured in this run.
//   npm run bench [-- --json] [-- --budget-ms 400] [-- --threads 1,2] [-- --rounds 2] [-- --only 256x256x7x7]
// --only keeps the shapes whose name ("256x256x7x7", "256x256x7x7 NHWC") contains the given text.
// The machine this runs on may be shared: every case is measured in each of `rounds` rounds (ours,
// then PyTorch's), and each time kept is its smallest median over the rounds, so a slow spell during
// one side's turn does not decide a ratio.
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import bn from '../dist/index.js';
import nativeModule from '../dist/native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 && args[index + 1] !== undefined ? args[index + 1] : fallback;
};
const budgetMs = Number(option('--budget-ms', 400));
const rounds = Math.max(1, Number(option('--rounds', 2)));
const allThreads = Math.min(256, os.availableParallelism());
const threadCounts = option('--threads', `1,${allThreads}`).split(',').map(Number).filter((t, i, a) => a.indexOf(t) === i);

const SHAPES = [
  [32, 64, 56, 56],
  [256, 256, 7, 7],
  [128, 1024],
  [8, 32, 128, 128],
  [4096, 256],
  [2, 4],
].map((shape) => ({ shape, format: 'contiguous' }));
// Channels-last (NHWC) rows, compared with the contiguous rows of the same shape.
SHAPES.push(...[[32, 64, 56, 56], [256, 256, 7, 7]].map((shape) => ({ shape, format: 'channelsLast' })));
const only = option('--only', null);
const selected = only === null ? SHAPES : SHAPES.filter(({ shape, format }) =>
  `${shape.join('x')}${format === 'channelsLast' ? ' NHWC' : ''}`.includes(only));
const OPS = ['eval', 'train', 'backward'];
const native = nativeModule.native();

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median milliseconds per call of fn, sampling for about budgetMs (at least 5 samples) after a warm-up. */
function measure(fn, batch = 1) {
  const warmUntil = performance.now() + Math.min(100, budgetMs / 4);
  do fn(); while (performance.now() < warmUntil);
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < 5 || (performance.now() < deadline && samples.length < 2000)) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6 / batch);
  }
  return median(samples);
}

function randomArray(length, seed) {
  const array = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    array[i] = state / 2 ** 31 - 1;
  }
  return array;
}

function benchCase({ shape, format }, op, threads) {
  bn.setNumThreads(threads);
  const length = shape.reduce((a, b) => a * b, 1);
  const channels = shape[1];
  const batch = length < 4096 ? 2000 : 1;
  const x = { data: randomArray(length, 1), shape, memoryFormat: format };
  const dy = { data: randomArray(length, 2), shape, memoryFormat: format };
  const weight = randomArray(channels, 3).map((v) => v + 1.5);
  const bias = randomArray(channels, 4);
  const runningMean = new Float32Array(channels);
  const runningVar = new Float32Array(channels).fill(1);
  const out = new Float32Array(length);
  const gradInput = new Float32Array(length);
  const copyTarget = new Float32Array(length);
  const forwardOptions = { weight, bias, runningMean, runningVar };
  const { saveMean, saveInvstd } = bn.batchNorm(x, { ...forwardOptions, training: true });
  const backwardOptions = { weight, saveMean, saveInvstd, training: true };

  // Options objects are built once, as a training loop would; only the calls are timed.
  let intoOut;
  let allocating;
  if (op === 'backward') {
    const intoOutOptions = { ...backwardOptions, out: { gradInput } };
    intoOut = () => bn.batchNormBackward(dy, x, intoOutOptions);
    allocating = () => bn.batchNormBackward(dy, x, backwardOptions);
  } else {
    const training = op === 'train';
    const intoOutOptions = { ...forwardOptions, training, out };
    const allocatingOptions = { ...forwardOptions, training };
    intoOut = () => bn.batchNorm(x, intoOutOptions);
    allocating = () => bn.batchNorm(x, allocatingOptions);
  }
  const copy = measure(() => native.copy(copyTarget, x.data), batch);
  const ours = measure(intoOut, batch);
  const oursAllocating = measure(allocating, batch);
  return { shape, format, op, threads, batch, oursMs: ours, copyMs: copy, oursAllocatingMs: oursAllocating };
}

function torchTimes(cases) {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const input = cases.map((c) => ({
    key: `${c.shape.join('x')}/${c.format}/${c.op}/${c.threads}`,
    shape: c.shape,
    channelsLast: c.format === 'channelsLast',
    op: c.op,
    threads: c.threads,
    batch: c.batch,
    budgetMs,
  }));
  const result = spawnSync('/usr/bin/python3', [path.join(here, 'torch_bench.py')], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (result.status !== 0) {
    console.error(`PyTorch benchmark failed:\n${result.stderr}`);
    return null;
  }
  return JSON.parse(result.stdout);
}

let cases = [];
let torch = null;
for (let round = 0; round < rounds; round++) {
  const measured = [];
  for (const threads of threadCounts) {
    for (const shape of selected) for (const op of OPS) measured.push(benchCase(shape, op, threads));
  }
  cases = round === 0 ? measured : cases.map((c, i) => ({
    ...c,
    oursMs: Math.min(c.oursMs, measured[i].oursMs),
    copyMs: Math.min(c.copyMs, measured[i].copyMs),
    oursAllocatingMs: Math.min(c.oursAllocatingMs, measured[i].oursAllocatingMs),
  }));
  const torchRound = torchTimes(measured);
  if (torchRound !== null) {
    torch = torch === null ? torchRound : {
      torch: torchRound.torch,
      results: Object.fromEntries(Object.entries(torch.results).map(([key, ms]) => [key, Math.min(ms, torchRound.results[key])])),
    };
  }
}
for (const c of cases) {
  c.copyRatio = c.oursMs / c.copyMs;
  const key = `${c.shape.join('x')}/${c.format}/${c.op}/${c.threads}`;
  c.torchMs = torch?.results[key] ?? null;
  if (c.format === 'channelsLast') {
    const contiguous = cases.find(
      (o) => o.format === 'contiguous' && o.op === c.op && o.threads === c.threads && o.shape.join() === c.shape.join(),
    );
    c.vsContiguous = contiguous ? c.oursMs / contiguous.oursMs : null;
  }
  c.speedupVsTorch = c.torchMs === null ? null : c.torchMs / c.oursMs;
}

const report = {
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version },
  kernelPath: bn.cpuCapability(),
  torch: torch?.torch ?? null,
  budgetMs,
  rounds,
  cases,
};
if (json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const fmt = (ms) => (ms < 0.01 ? `${(ms * 1000).toFixed(2)} µs` : `${ms.toFixed(3)} ms`);
  console.log(
    `batchnorm ${report.kernelPath} on ${report.machine.cpu} (${report.machine.cores} threads), ` +
      `Node ${report.machine.node}, PyTorch ${report.torch ?? 'not installed'}; ` +
      `float32; each time the smallest median of ${rounds} rounds`,
  );
  console.log(
    'ours: into preallocated outputs (`out`); ours+alloc: a new output array per call (V8 zero-fills it);\n' +
      'PyTorch: F.batch_norm / native_batch_norm_backward (PyTorch allocates from its own allocator)',
  );
  const header = ['shape', 'op', 'thr', 'ours', 'memcpy', 'ours/memcpy', 'ours+alloc', 'PyTorch', 'PyTorch/ours', 'NHWC/NCHW'];
  const rows = cases.map((c) => [
    `(${c.shape.join(',')})${c.format === 'channelsLast' ? ' NHWC' : ''}`,
    c.op,
    String(c.threads),
    fmt(c.oursMs),
    fmt(c.copyMs),
    `${c.copyRatio.toFixed(2)}x`,
    fmt(c.oursAllocatingMs),
    c.torchMs === null ? '-' : fmt(c.torchMs),
    c.speedupVsTorch === null ? '-' : `${c.speedupVsTorch.toFixed(2)}x`,
    c.vsContiguous == null ? '' : `${c.vsContiguous.toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}
