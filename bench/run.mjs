// `npm run bench`: median times of batchnorm's eval forward, training forward and training backward
// (float32, NCHW) next to a native memcpy of the same bytes and PyTorch, all measured in this run.
//   npm run bench [-- --json] [-- --budget-ms 400] [-- --threads 1,2] [-- --rounds 2] [-- --only 256x256x7x7]
// --threads takes thread counts ('all': every core); --threads alone means 1,2,all. With 1 and more
// counts, a second table gives each row's speed-up over one thread, ours and PyTorch's.
// --only keeps the shapes whose name ("256x256x7x7", "256x256x7x7 NHWC") contains the given text;
// --only safetensors runs the checkpoint row alone; --only distributed the SyncBatchNorm rows alone.
// The machine this runs on may be shared: every case is measured in each of `rounds` rounds (ours,
// then PyTorch's), and each time kept is its smallest median over the rounds, so a slow spell during
// one side's turn does not decide a ratio.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import './steady-malloc.mjs'; // first: may rerun this process
import bn from '../dist/index.js';
import { benchTensors, callsPerSample, measure as measureFor, median, randomArray, startTorch } from './timing.mjs';
import nativeModule from '../dist/native.js';
import nativeArguments from '../dist/native-arguments.js';
import { readSafetensors } from '../dist/safetensors.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 && args[index + 1] !== undefined ? args[index + 1] : fallback;
};
const budgetMs = Number(option('--budget-ms', 400));
const rounds = Math.max(1, Number(option('--rounds', 2)));
const allThreads = Math.min(256, os.availableParallelism());
const threadsIndex = args.indexOf('--threads');
const threadsAlone = threadsIndex >= 0 && (args[threadsIndex + 1] === undefined || args[threadsIndex + 1].startsWith('--'));
const threadCounts = (threadsAlone ? '1,2,all' : option('--threads', '1,all'))
  .split(',')
  .map((t) => (t === 'all' ? allThreads : Number(t)))
  .filter((t, i, a) => a.indexOf(t) === i);

const SHAPES = [
  [32, 64, 56, 56],
  [256, 256, 7, 7],
  [128, 1024],
  [8, 32, 128, 128],
  [4096, 256],
  [2, 4],
  // A large batch of a BatchNorm1d: the one row whose tensor is walked a row at a time (README, Walks).
  [42000, 100],
].map((shape) => ({ shape, format: 'contiguous' }));
// Channels-last (NHWC) rows, compared with the contiguous rows of the same shape.
SHAPES.push(...[[32, 64, 56, 56], [256, 256, 7, 7]].map((shape) => ({ shape, format: 'channelsLast' })));
const only = option('--only', null);
const selected = only === null ? SHAPES : SHAPES.filter(({ shape, format }) =>
  `${shape.join('x')}${format === 'channelsLast' ? ' NHWC' : ''}`.includes(only));
const OPS = ['eval', 'train', 'backward'];
const native = nativeModule.native();

/** Median milliseconds per call of fn over this run's budget (bench/timing.mjs). */
function measure(fn, batch = 1) {
  return measureFor(fn, batch, budgetMs);
}

function benchCase({ shape, format }, op, threads) {
  bn.setNumThreads(threads);
  const { length, x, dy, weight, bias, runningMean, runningVar } = benchTensors(shape, format);
  const batch = callsPerSample(length);
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
  return { shape, format, op, threads, batch, oursMs: ours, copyMs: copy, oursAllocatingMs: oursAllocating, walks: walksOf(x, op) };
}

/** The planner's walks for a row (bn.kernelPlan): reduction + elementwise pass ("ew" alone in eval). */
function walksOf(x, op) {
  const plan = bn.kernelPlan(x);
  const phase = op === 'eval' ? plan.evalForward : op === 'train' ? plan.trainingForward : plan.backward;
  const last = phase.lastBlock === null ? '' : ` (last block ${[phase.lastBlock.reduction, phase.lastBlock.elementwise].filter(Boolean).join(' + ')})`;
  return [phase.reduction, phase.elementwise].filter(Boolean).join(' + ') + last;
}

/** The case as torch_bench.py takes it. */
function torchCase(c) {
  return { shape: c.shape, channelsLast: c.format === 'channelsLast', op: c.op, threads: c.threads, batch: c.batch, budgetMs };
}

// Ours and PyTorch's time of each case side by side (this machine's memory bandwidth changes by about 2x
// between minutes), PyTorch first in odd rounds; a pause between the two lets the other library's
// threads stop spinning (OpenMP's and our pool's) before the next one is timed.
const torchServer = await startTorch();
const pause = () => new Promise((resolve) => setTimeout(resolve, 20));
let cases = [];
for (let round = 0; round < rounds; round++) {
  const measured = [];
  for (const threads of threadCounts) {
    for (const entry of selected) {
      for (const op of OPS) {
        let torchMs = null;
        const timeTorch = async () => {
          if (torchServer === null) return;
          const batch = callsPerSample(entry.shape.reduce((a, b) => a * b, 1));
          await pause();
          torchMs = await torchServer.time(torchCase({ ...entry, op, threads, batch }));
          await pause();
        };
        if (round % 2 === 1) await timeTorch();
        const c = benchCase(entry, op, threads);
        if (round % 2 === 0) await timeTorch();
        measured.push({ ...c, torchMs });
      }
    }
  }
  cases = round === 0 ? measured : cases.map((c, i) => ({
    ...c,
    oursMs: Math.min(c.oursMs, measured[i].oursMs),
    copyMs: Math.min(c.copyMs, measured[i].copyMs),
    oursAllocatingMs: Math.min(c.oursAllocatingMs, measured[i].oursAllocatingMs),
    torchMs: c.torchMs === null ? null : Math.min(c.torchMs, measured[i].torchMs),
  }));
}
torchServer?.close();
for (const c of cases) {
  c.copyRatio = c.oursMs / c.copyMs;
  if (c.format === 'channelsLast') {
    const contiguous = cases.find(
      (o) => o.format === 'contiguous' && o.op === c.op && o.threads === c.threads && o.shape.join() === c.shape.join(),
    );
    c.vsContiguous = contiguous ? c.oursMs / contiguous.oursMs : null;
  }
  c.speedupVsTorch = c.torchMs === null ? null : c.torchMs / c.oursMs;
}
// Each row's speed-up over its one-thread time (ours, and PyTorch's from its own one-thread time).
for (const c of cases) {
  const single = cases.find((o) => o.threads === 1 && o.op === c.op && o.format === c.format && o.shape.join() === c.shape.join());
  c.oursSpeedup = single === undefined ? null : single.oursMs / c.oursMs;
  c.oursAllocatingSpeedup = single === undefined ? null : single.oursAllocatingMs / c.oursAllocatingMs;
  c.torchSpeedup = single === undefined || single.torchMs === null || c.torchMs === null ? null : single.torchMs / c.torchMs;
}

// Async calls: what keeping the arrays' memory valid costs (README "Async calls"), on the large shapes
// at all threads. `sync` is batchNorm with `out`; `async` the same call through batchNormAsync (this
// runtime's mechanism, awaited one at a time); `marked`/`staged` call the native async entry with the
// same arguments and no staging, or every caller array staged (the Node 22 mechanism), and
// `staged block` is how long the staged call keeps the event loop (its copies in).
// (2,4) and (128,512) run on the calling thread (65,536 elements at most: native/binding/async_call.h).
const ASYNC_SHAPES = [[32, 64, 56, 56], [256, 256, 7, 7], [4096, 256], [128, 512], [2, 4]];

async function measureAsync(fn) {
  const warmUntil = performance.now() + Math.min(100, budgetMs / 4);
  do await fn(); while (performance.now() < warmUntil);
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < 5 || (performance.now() < deadline && samples.length < 2000)) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(samples);
}

async function asyncCase(shape, op) {
  bn.setNumThreads(allThreads);
  const { length, x, dy, weight, bias, runningMean, runningVar } = benchTensors(shape, 'contiguous');
  const channels = shape[1];
  const out = new Float32Array(length);
  const { saveMean, saveInvstd } = bn.batchNorm(x, { weight, bias, runningMean, runningVar, training: true });
  const training = op === 'train';
  let sync;
  let viaLib;
  let nativeArgs;
  let nativeAsync;
  if (op === 'backward') {
    const options = { weight, saveMean, saveInvstd, training: true, out: { gradInput: out } };
    sync = () => bn.batchNormBackward(dy, x, options);
    viaLib = () => bn.batchNormBackwardAsync(dy, x, options);
    nativeArgs = nativeArguments.backwardArguments({
      gradOutput: dy.data, input: x.data, batch: shape[0], channels, spatial: length / shape[0] / channels, weight,
      runningMean: null, runningVar: null, saveMean, saveInvstd, gradInput: out, gradWeight: null, gradBias: null,
      training: true, eps: 1e-5,
    });
    nativeAsync = (mask) => native.backwardAsync(...nativeArgs, mask);
  } else {
    const options = { weight, bias, runningMean, runningVar, training, out };
    sync = () => bn.batchNorm(x, options);
    viaLib = () => bn.batchNormAsync(x, options);
    const save = training ? [new Float32Array(channels), new Float32Array(channels)] : [null, null];
    nativeArgs = nativeArguments.forwardArguments({
      input: x.data, output: out, batch: shape[0], channels, spatial: length / shape[0] / channels, weight, bias,
      runningMean, runningVar, saveMean: save[0], saveInvstd: save[1], training, momentum: 0.1, eps: 1e-5,
    });
    nativeAsync = (mask) => native.forwardAsync(...nativeArgs, mask);
  }
  const everyArgument = 0x1fff;
  const syncMs = measure(sync);
  const asyncMs = await measureAsync(viaLib);
  // Interleaved A/B of the two mechanisms, in both orders; each keeps its smaller median.
  let markedMs = Infinity;
  let stagedMs = Infinity;
  for (const order of [[0, everyArgument], [everyArgument, 0]]) {
    for (const mask of order) {
      const ms = await measureAsync(() => nativeAsync(mask));
      if (mask === 0) markedMs = Math.min(markedMs, ms);
      else stagedMs = Math.min(stagedMs, ms);
    }
  }
  // Only the synchronous part of each call is timed; each call settles before the next starts.
  const blocks = [];
  for (let i = 0; i < 15; i++) {
    const start = process.hrtime.bigint();
    const settled = nativeAsync(everyArgument);
    blocks.push(Number(process.hrtime.bigint() - start) / 1e6);
    await settled;
  }
  const blockMs = median(blocks);
  return { shape, op, threads: allThreads, syncMs, asyncMs, markedMs, stagedMs, stagedBlockMs: blockMs };
}

// The module path (BatchNorm1d/2d/3d, what training scripts call) against the functional calls it wraps,
// at 1 thread: eval, train (forward only) and step (training forward + backward, since a module's
// backward needs its forward), each with preallocated outputs (`out`) and allocating. Interleaved A/B,
// both orders, each keeping its smaller median.
function moduleCase({ shape, format }) {
  bn.setNumThreads(1);
  const length = shape.reduce((a, b) => a * b, 1);
  const channels = shape[1];
  const batch = callsPerSample(length);
  const x = { data: randomArray(length, 1), shape, memoryFormat: format };
  const dy = { data: randomArray(length, 2), shape, memoryFormat: format };
  const Module = [null, null, bn.BatchNorm1d, bn.BatchNorm1d, bn.BatchNorm2d, bn.BatchNorm3d][shape.length];
  const module = new Module(channels);
  const runningMean = new Float32Array(channels);
  const runningVar = new Float32Array(channels).fill(1);
  const weight = module.weight.data.slice();
  const bias = module.bias.data.slice();
  const out = new Float32Array(length);
  const gradInput = new Float32Array(length);
  const outOptions = { out };
  const backwardOutOptions = { out: { gradInput } };
  const evalOptions = { weight, bias, runningMean, runningVar, training: false };
  const trainOptions = { weight, bias, runningMean, runningVar, training: true };
  // Options objects built once, as a training loop would (the backward's are filled per step, as a
  // caller keeping its own saved statistics would).
  const evalOut = { ...evalOptions, out };
  const trainOut = { ...trainOptions, out };
  const backwardOptions = { weight, saveMean: null, saveInvstd: null, training: true };
  const backwardOut = { ...backwardOptions, out: { gradInput } };
  const functionalStep = (withOut) => {
    const { saveMean, saveInvstd } = bn.batchNorm(x, withOut ? trainOut : trainOptions);
    const options = withOut ? backwardOut : backwardOptions;
    options.saveMean = saveMean;
    options.saveInvstd = saveInvstd;
    bn.batchNormBackward(dy, x, options);
  };
  const rows = [];
  for (const op of ['eval', 'train', 'step']) {
    for (const withOut of [true, false]) {
      const functional = op === 'eval'
        ? () => bn.batchNorm(x, withOut ? evalOut : evalOptions)
        : op === 'train'
          ? () => bn.batchNorm(x, withOut ? trainOut : trainOptions)
          : () => functionalStep(withOut);
      const viaModule = op === 'step'
        ? () => {
            module.forward(x, withOut ? outOptions : undefined);
            module.backward(dy, withOut ? backwardOutOptions : undefined);
          }
        : () => module.forward(x, withOut ? outOptions : undefined);
      module.train(op !== 'eval');
      let functionalMs = Infinity;
      let moduleMs = Infinity;
      for (const order of [[functional, viaModule], [viaModule, functional]]) {
        for (const fn of order) {
          const ms = measure(fn, batch);
          if (fn === functional) functionalMs = Math.min(functionalMs, ms);
          else moduleMs = Math.min(moduleMs, ms);
        }
      }
      rows.push({ shape, format, op, out: withOut, functionalMs, moduleMs });
    }
  }
  return rows;
}

const moduleCases = selected.flatMap((shape) => moduleCase(shape));

// Reading a checkpoint's header: a safetensors file of 300,000 one-element tensors, with the plain-header
// reader (what fromSafetensors takes for such a file) and with JSON.parse alone, interleaved (README,
// State files).
function safetensorsCase() {
  const state = {};
  for (let i = 0; i < 300_000; i++) state[`layer${i}.weight`] = Float32Array.of(i);
  const bytes = bn.toSafetensors(state);
  const samples = { plain: [], jsonParse: [] };
  for (let i = 0; i < 5; i++) {
    for (const [reader, plain] of i % 2 === 0 ? [['plain', true], ['jsonParse', false]] : [['jsonParse', false], ['plain', true]]) {
      const start = process.hrtime.bigint();
      readSafetensors(bytes, plain);
      samples[reader].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return { tensors: 300_000, parseMs: median(samples.plain), jsonParseMs: median(samples.jsonParse) };
}

// SyncBatchNorm over the worker-thread group (README, Distributed training): the exchange's latency
// (an allGather of 2C + 1 doubles, what a forward exchanges through a transport without the worker
// group's steps by blocks, MPI or a user's group) and a training step of a (32,64,56,56)
// batch split over 2 workers against BatchNorm2d on one (16,64,56,56) shard, each in a child process:
// as a script runs them by default, and with one kernel thread per process (BATCHNORM_NUM_THREADS=1),
// like with like, since SyncBatchNorm's passes in a worker run on that worker's thread alone while
// BatchNorm2d's calls share the process's kernel pool.
function distributedCases() {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'scripts', 'worker-group.js');
  const run = (args, env = {}) =>
    JSON.parse(execFileSync(process.execPath, [script, ...args], { encoding: 'utf8', env: { ...process.env, ...env } }).trim().split('\n').pop());
  const latency = [];
  for (const members of [2, 4]) {
    for (const channels of [64, 256, 1024]) latency.push({ members, channels, ...run(['latency', String(members), String(channels), '2000']) });
  }
  const step = { members: 2, shard: [16, 64, 56, 56], ...run(['step', '2', '16x64x56x56', '20']) };
  const stepOneThread = { ...run(['step', '2', '16x64x56x56', '20'], { BATCHNORM_NUM_THREADS: '1' }) };
  // batchnorm/mpi over 2 ranks, where its addon is built and mpirun is on PATH.
  let mpi = null;
  const root = path.join(path.dirname(script), '..', '..');
  if (existsSync(path.join(root, 'build-mpi', 'Release', 'batchnorm_mpi.node'))) {
    try {
      const out = execFileSync('mpirun', ['--oversubscribe', '-np', '2', process.execPath, path.join(root, 'test', 'scripts', 'mpi-check.js'), 'latency'], {
        encoding: 'utf8',
        env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
      });
      mpi = JSON.parse(out.trim().split('\n')[0]).latency;
    } catch {
      mpi = null;
    }
  }
  return { latency, step, stepOneThread, mpi };
}

const asyncCases = [];
if (only === null) {
  for (const shape of ASYNC_SHAPES) for (const op of OPS) asyncCases.push(await asyncCase(shape, op));
}

const report = {
  machine: {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    node: process.version,
    mallocTopPad: process.env.MALLOC_TOP_PAD_ ?? null,
  },
  kernelPath: bn.cpuCapability(),
  torch: torchServer?.torch ?? null,
  budgetMs,
  rounds,
  cases,
  moduleCases,
  safetensors: only === null || only === 'safetensors' ? safetensorsCase() : null,
  distributed: only === null || only === 'distributed' ? distributedCases() : null,
  asyncMemoryGuard: bn.asyncMemoryGuard(),
  asyncCases,
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
    'ours: into preallocated outputs (`out`); ours+alloc: a new output array per call (uninitialized from 1 MiB, zero-filled below);\n' +
      `PyTorch: F.batch_norm / native_batch_norm_backward; both allocate through glibc with MALLOC_TOP_PAD_=${process.env.MALLOC_TOP_PAD_ ?? 'unset'}`,
  );
  const header = ['shape', 'op', 'thr', 'ours', 'memcpy', 'ours/memcpy', 'ours+alloc', 'PyTorch', 'PyTorch/ours', 'NHWC/NCHW', 'walks'];
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
    c.walks,
  ]);
  printTable(header, rows);
  if (threadCounts.includes(1) && threadCounts.length > 1) {
    console.log(
      '\nthread scaling: each row\'s one-thread time over its time on `thr` threads (ours with `out`, ours+alloc, PyTorch);\n' +
        'PyTorch/ours as above, and for the allocating calls',
    );
    const ratio = (value) => (value == null ? '-' : `${value.toFixed(2)}x`);
    printTable(
      ['shape', 'op', 'thr', 'ours', 'ours speed-up', 'ours+alloc speed-up', 'PyTorch speed-up', 'PyTorch/ours', 'PyTorch/ours+alloc'],
      cases.filter((c) => c.threads !== 1).map((c) => [
        `(${c.shape.join(',')})${c.format === 'channelsLast' ? ' NHWC' : ''}`,
        c.op,
        String(c.threads),
        fmt(c.oursMs),
        ratio(c.oursSpeedup),
        ratio(c.oursAllocatingSpeedup),
        ratio(c.torchSpeedup),
        ratio(c.speedupVsTorch),
        ratio(c.torchMs === null ? null : c.torchMs / c.oursAllocatingMs),
      ]),
    );
  }
  console.log(
    '\nmodule path (1 thread): BatchNorm1d/2d/3d against the functional calls; step = training forward + backward;\n' +
      'PyTorch: the same ops from the table above (step: its train + backward)',
  );
  const torchFor = (c) => {
    const row = (op) => cases.find((o) => o.threads === 1 && o.op === op && o.format === c.format && o.shape.join() === c.shape.join());
    const ms = (op) => row(op)?.torchMs ?? null;
    if (c.op !== 'step') return ms(c.op);
    return ms('train') === null || ms('backward') === null ? null : ms('train') + ms('backward');
  };
  printTable(
    ['shape', 'op', 'out', 'functional', 'module', 'module/functional', 'PyTorch', 'PyTorch/module'],
    moduleCases.map((c) => {
      const torchMs = torchFor(c);
      return [
        `(${c.shape.join(',')})${c.format === 'channelsLast' ? ' NHWC' : ''}`,
        c.op,
        c.out ? 'out' : 'alloc',
        fmt(c.functionalMs),
        fmt(c.moduleMs),
        `${(c.moduleMs / c.functionalMs).toFixed(2)}x`,
        torchMs == null ? '-' : fmt(torchMs),
        torchMs == null ? '-' : `${(torchMs / c.moduleMs).toFixed(2)}x`,
      ];
    }),
  );
  if (report.safetensors !== null) {
    const { tensors, parseMs, jsonParseMs } = report.safetensors;
    console.log(
      `\nsafetensors: fromSafetensors of ${tensors} one-element tensors: ${fmt(parseMs)}; ` +
        `with the JSON.parse reader ${fmt(jsonParseMs)} (${(jsonParseMs / parseMs).toFixed(2)}x; medians of 5, interleaved)`,
    );
  }
  if (report.distributed !== null) {
    const { latency, step, stepOneThread } = report.distributed;
    console.log('\nSyncBatchNorm over worker threads: allGather of 2C + 1 doubles (median of 2,000 rounds, slowest rank)');
    printTable(['members', 'C', 'round'], latency.map((c) => [String(c.members), String(c.channels), `${c.medianUs.toFixed(1)} µs`]));
    if (report.distributed.mpi !== null) {
      console.log('batchnorm/mpi over 2 ranks (mpirun on this machine): the same exchange');
      printTable(['C', 'round'], report.distributed.mpi.map((c) => [String(c.channels), `${c.medianUs.toFixed(1)} µs`]));
    }
    console.log(
      `training step (forward + backward, with out) of a (32,64,56,56) batch over ${step.members} workers: ` +
        `SyncBatchNorm ${fmt(step.syncMs)} per rank, BatchNorm2d on its (16,64,56,56) shard ${fmt(step.plainMs)} ` +
        `(${(step.syncMs / step.plainMs).toFixed(2)}x; medians of 20, slowest rank); with one kernel thread per ` +
        `process (BATCHNORM_NUM_THREADS=1), ${fmt(stepOneThread.syncMs)} against ${fmt(stepOneThread.plainMs)} ` +
        `(${(stepOneThread.syncMs / stepOneThread.plainMs).toFixed(2)}x)`,
    );
  }
  if (asyncCases.length > 0) {
    console.log(`\nasync calls (${allThreads} threads, with out; this runtime's mechanism: ${report.asyncMemoryGuard})`);
    printTable(
      ['shape', 'op', 'sync', 'async', 'async/sync', 'marked', 'staged', 'staged/marked', 'staged block'],
      asyncCases.map((c) => [
        `(${c.shape.join(',')})`,
        c.op,
        fmt(c.syncMs),
        fmt(c.asyncMs),
        `${(c.asyncMs / c.syncMs).toFixed(2)}x`,
        fmt(c.markedMs),
        fmt(c.stagedMs),
        `${(c.stagedMs / c.markedMs).toFixed(2)}x`,
        fmt(c.stagedBlockMs),
      ]),
    );
  }
}

function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}
