// What the benchmarks share: medians of repeated timings, reproducible inputs and PyTorch's timings.
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Calls per timed sample: tensors under 4,096 elements are timed 2,000 calls at a time (ours and PyTorch's). */
export function callsPerSample(elements) {
  return elements < 4096 ? 2000 : 1;
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Median milliseconds per call of fn (timed `batch` calls at a time), sampling for about budgetMs (at
 * least 5 samples) after a warm-up of up to 100 ms.
 */
export function measure(fn, batch, budgetMs) {
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

/** A Float32Array of values in [-1, 1) from a linear congruential generator seeded with `seed`. */
export function randomArray(length, seed) {
  const array = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    array[i] = state / 2 ** 31 - 1;
  }
  return array;
}

/**
 * The tensors of a bench case, the same in every bench script: input and gradient in [-1, 1) (seeds 1
 * and 2), weight in [0.5, 2.5) and bias in [-1, 1) (seeds 3 and 4), running statistics 0 and 1.
 */
export function benchTensors(shape, format) {
  const length = shape.reduce((a, b) => a * b, 1);
  const channels = shape[1];
  return {
    length,
    x: { data: randomArray(length, 1), shape, memoryFormat: format },
    dy: { data: randomArray(length, 2), shape, memoryFormat: format },
    weight: randomArray(channels, 3).map((v) => v + 1.5),
    bias: randomArray(channels, 4),
    runningMean: new Float32Array(channels),
    runningVar: new Float32Array(channels).fill(1),
  };
}

/**
 * PyTorch's median milliseconds for `cases` ({key, shape, channelsLast, op, threads, batch?, budgetMs}),
 * timed by bench/torch_bench.py with Debian's /usr/bin/python3: {torch: version, results: {key: ms}},
 * or null where torch cannot be imported.
 *
 * PyTorch's CPU tensors come from glibc's malloc, which by default hands freed heap memory back to the
 * system and faults it in again at the next allocation, or not, depending on the process's history:
 * the same (32, 64, 56, 56) backward took 5.2 ms or 89 ms in two runs within one process, (128, 1024)
 * 65 µs or 1.4 ms. MALLOC_TOP_PAD_ (1 GiB of freed heap kept; as an environment variable it leaves
 * glibc's adaptive mmap threshold on, where mallopt would turn it off) times PyTorch in its steady,
 * fastest state on every row; one already in the environment is kept, as bench/steady-malloc.mjs keeps
 * it for our side.
 */
export function torchTimes(cases) {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const result = spawnSync('/usr/bin/python3', [path.join(here, 'torch_bench.py')], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: { ...process.env, MALLOC_TOP_PAD_: process.env.MALLOC_TOP_PAD_ ?? String(2 ** 30) },
  });
  if (result.status !== 0) {
    console.error(`PyTorch benchmark failed:\n${result.stderr}`);
    return null;
  }
  return JSON.parse(result.stdout);
}

/**
 * PyTorch in a process that stays up, timing one case at a time (torch_bench.py --serve, with the
 * environment of torchTimes): `time(case)` resolves with its median milliseconds, so a bench can time
 * PyTorch's case right beside its own, in the same spell of a machine whose memory bandwidth changes
 * between minutes. null where torch cannot be imported.
 */
export async function startTorch() {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const child = spawn('/usr/bin/python3', [path.join(here, 'torch_bench.py'), '--serve'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, MALLOC_TOP_PAD_: process.env.MALLOC_TOP_PAD_ ?? String(2 ** 30) },
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the PyTorch benchmark process ended');
    return JSON.parse(value);
  };
  const { torch } = await next();
  return {
    torch,
    async time(testCase) {
      child.stdin.write(`${JSON.stringify(testCase)}\n`);
      return (await next()).ms;
    },
    close() {
      child.stdin.end();
    },
  };
}

/** The value after `--name` in a script's arguments, or `fallback`; and the arguments that are not options. */
export function commandLine(args) {
  const option = (name, fallback) => {
    const index = args.indexOf(name);
    return index >= 0 && args[index + 1] !== undefined ? args[index + 1] : fallback;
  };
  const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  return { option, positional };
}

/**
 * A functional call of `bn` (the package) for a bench case: eval, train (forward) or backward (of a
 * training forward), on the case's tensors, with `out` given (what a training loop passes) unless
 * `allocating`.
 */
export function functionalCall(bn, shape, format, op, allocating = false) {
  const { length, x, dy, weight, bias, runningMean, runningVar } = benchTensors(shape, format);
  const forwardOptions = { weight, bias, runningMean, runningVar };
  if (op === 'backward') {
    const { saveMean, saveInvstd } = bn.batchNorm(x, { ...forwardOptions, training: true });
    const options = { weight, saveMean, saveInvstd, training: true };
    if (!allocating) options.out = { gradInput: new Float32Array(length) };
    return () => bn.batchNormBackward(dy, x, options);
  }
  const options = { ...forwardOptions, training: op === 'train' };
  if (!allocating) options.out = new Float32Array(length);
  return () => bn.batchNorm(x, options);
}

/** The A/B scripts' cases: the bench rows, shape and layout. */
export const AB_SHAPES = [
  [[32, 64, 56, 56], 'contiguous'],
  [[256, 256, 7, 7], 'contiguous'],
  [[128, 1024], 'contiguous'],
  [[8, 32, 128, 128], 'contiguous'],
  [[4096, 256], 'contiguous'],
  [[2, 4], 'contiguous'],
  [[32, 64, 56, 56], 'channelsLast'],
  [[256, 256, 7, 7], 'channelsLast'],
];

/** A time for a table: microseconds under 10 µs, milliseconds above. */
export function formatMs(ms) {
  return ms < 0.01 ? `${(ms * 1000).toFixed(2)} us` : `${ms.toFixed(3)} ms`;
}
