#!/usr/bin/env node
// Bit-for-bit comparison of two builds of the addon on random calls with special values (eval forward,
// training forward with its saved and running statistics, backward with every output mask, and
// SyncBatchNorm's normalization and grad_input with given statistics), float32 or float64 (--dtype):
// for a refactor that must not change a single output, e.g. the per-channel coefficients moving into
// vector registers. Both builds run in this process on the same inputs; NaNs compare equal whatever
// their payload.
//   node scripts/compare-builds.js <a.node> <b.node> [--cases 2500] [--seed 1] [--dtype float32|float64]
// BATCHNORM_CPU_CAPABILITY=default|avx2|avx512 picks the kernel path of both builds.
'use strict';

const path = require('node:path');

// The named builders of the native argument lists (built by npm install / npm run build:ts).
const {
  forwardArguments, backwardArguments, normalizeWithArguments, gradInputWithArguments,
} = require('../dist/native-arguments.js');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(name);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const builds = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const dtypeAt = args.indexOf('--dtype');
const dtype = dtypeAt >= 0 ? args[dtypeAt + 1] : 'float32';
if (builds.length !== 2 || (dtype !== 'float32' && dtype !== 'float64')) {
  console.error('usage: node scripts/compare-builds.js <a.node> <b.node> [--cases 2500] [--seed 1] [--dtype float32|float64]');
  process.exit(2);
}
const addons = builds.map((file) => require(path.resolve(file)));
const cases = option('--cases', 2500);
let seed = option('--seed', 1) >>> 0;
const random = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const SPECIALS = [0, -0, 1, -1, 1e-30, 1e30, 3.4e38, 1e-45, Infinity, -Infinity, NaN, 2 ** -90, 2 ** 90];
const special = (p) => (random() < p ? SPECIALS[Math.floor(random() * SPECIALS.length)] : null);
const choose = (list) => list[Math.floor(random() * list.length)];
const FloatArray = dtype === 'float64' ? Float64Array : Float32Array;
const fill = (length, value) => FloatArray.from({ length }, value);
const fill64 = (length, value) => Float64Array.from({ length }, value);

function randomCall() {
  const batch = 1 + Math.floor(random() * 6);
  const channels = 1 + Math.floor(random() * 70);
  const spatial = choose([1, 1, 1, 2, 3, 7, 16, 17, 49, 70, 70, 1031]);
  const n = batch * channels * spatial;
  const scale = 10 ** (random() * 6 - 3);
  const offset = (random() - 0.5) * scale * (random() < 0.3 ? 1000 : 1);
  const x = fill(n, () => special(0.01) ?? offset + (random() - 0.5) * scale);
  if (random() < 0.2) x.fill(offset, 0, spatial);  // a constant first row
  return {
    batch, channels, spatial, x,
    dy: fill(n, () => special(0.01) ?? random() - 0.5),
    weight: random() < 0.8 ? fill(channels, () => special(0.05) ?? random() * 2 - 0.5) : null,
    bias: random() < 0.8 ? fill(channels, () => special(0.05) ?? random() - 0.5) : null,
    runningMean: fill(channels, () => special(0.05) ?? (random() - 0.5) * scale),
    runningVar: fill(channels, () => Math.abs(special(0.05) ?? random() * scale + 0.1)),
    saveMean: fill(channels, () => special(0.05) ?? (random() - 0.5) * scale),
    saveInvstd: fill(channels, () => Math.abs(special(0.05) ?? random() * 3 / scale)),
    tracked: random() < 0.85,
    eps: choose([1e-5, 0, 1e-3]),
    momentum: choose([0.1, 0.5, 1, 0.01]),
    mask: choose([[true, true, true], [true, false, false], [false, true, true], [true, true, false]]),
    // SyncBatchNorm's merged statistics and gradient sums
    mean: fill64(channels, () => special(0.05) ?? offset + (random() - 0.5) * scale),
    invstd: fill64(channels, () => Math.abs(special(0.05) ?? random() * 3 / scale)),
    sumDy: fill64(channels, () => special(0.05) ?? (random() - 0.5) * batch * spatial),
    dotp: fill64(channels, () => special(0.05) ?? (random() - 0.5) * batch * spatial * scale),
    training: random() < 0.6,
  };
}

// Every array each kind of call writes, for one build.
function outputs(addon, c) {
  const { batch: N, channels: C, spatial: S } = c;
  const evalOut = new FloatArray(N * C * S);
  const shape = { batch: N, channels: C, spatial: S };
  addon.forward(...forwardArguments({
    input: c.x, output: evalOut, ...shape, weight: c.weight, bias: c.bias, runningMean: c.runningMean,
    runningVar: c.runningVar, saveMean: null, saveInvstd: null, training: false, momentum: 0.1, eps: c.eps,
  }));
  const trainOut = new FloatArray(N * C * S), saveMean = new FloatArray(C), saveInvstd = new FloatArray(C);
  const runningMean = c.tracked ? c.runningMean.slice() : null, runningVar = c.tracked ? c.runningVar.slice() : null;
  addon.forward(...forwardArguments({
    input: c.x, output: trainOut, ...shape, weight: c.weight, bias: c.bias, runningMean, runningVar, saveMean,
    saveInvstd, training: true, momentum: c.momentum, eps: c.eps,
  }));
  const [wantInput, wantWeight, wantBias] = c.mask;
  const gradInput = wantInput ? new FloatArray(N * C * S) : null;
  const gradWeight = wantWeight ? new FloatArray(C) : null, gradBias = wantBias ? new FloatArray(C) : null;
  addon.backward(...backwardArguments({
    gradOutput: c.dy, input: c.x, ...shape, weight: c.weight, runningMean: c.runningMean, runningVar: c.runningVar,
    saveMean: c.training ? c.saveMean : null, saveInvstd: c.training ? c.saveInvstd : null, gradInput, gradWeight,
    gradBias, training: c.training, eps: c.eps,
  }));
  const normalized = new FloatArray(N * C * S), splitGradInput = new FloatArray(N * C * S);
  addon.normalizeWith(...normalizeWithArguments({
    input: c.x, output: normalized, ...shape, mean: c.mean, invstd: c.invstd, weight: c.weight, bias: c.bias,
  }));
  addon.gradInputWith(...gradInputWithArguments({
    gradOutput: c.dy, input: c.x, gradInput: splitGradInput, ...shape, mean: c.mean, invstd: c.invstd,
    weight: c.weight, sumDy: c.sumDy, dotp: c.dotp, total: N * S,
  }));
  return {
    evalOut, trainOut, saveMean, saveInvstd, runningMean, runningVar, gradInput, gradWeight, gradBias, normalized,
    splitGradInput,
  };
}

let values = 0;
let differing = 0;
for (let i = 0; i < cases; i++) {
  const c = randomCall();
  const [a, b] = addons.map((addon) => outputs(addon, c));
  for (const name of Object.keys(a)) {
    if (a[name] === null) continue;
    values += a[name].length;
    const Bits = dtype === 'float64' ? BigUint64Array : Uint32Array;
    const bitsA = new Bits(a[name].buffer), bitsB = new Bits(b[name].buffer);
    const at = bitsA.findIndex((bits, k) => bits !== bitsB[k] && !(Number.isNaN(a[name][k]) && Number.isNaN(b[name][k])));
    if (at >= 0) {
      differing++;
      if (differing <= 5) {
        console.log(`case ${i} (${c.batch},${c.channels},${c.spatial}) ${name}[${at}]: ${a[name][at]} against ${b[name][at]}`);
      }
    }
  }
}
console.log(`${process.env.BATCHNORM_CPU_CAPABILITY || 'best'} path, ${dtype}: ${cases} cases, ${values} values, ${differing} arrays differing`);
process.exit(differing === 0 ? 0 : 1);
