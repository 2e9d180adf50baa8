'use strict';
// SyncBatchNorm over the worker-thread group (test/worker-group.test.ts and bench/run.mjs), in a child
// process printing one JSON line:
//   node worker-group.js train <dtype> <format> <shape, e.g. 8x3x4x4> <shard sizes, e.g. 3,0,5> [<module options JSON>]
//   node worker-group.js terminate | timeout
//   node worker-group.js latency <members> <channels> <rounds>
//   node worker-group.js step <members> <shard shape, e.g. 16x64x56x56> <steps>
//   UV_THREADPOOL_SIZE=1 node worker-group.js poolBusy <pbkdf2 iterations>
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const root = path.join(__dirname, '..', '..');
const { maxError, randomArray } = require('./data.js');
const bn = require(root);


const STEPS = 2;

async function workerMain() {
  const { member, task } = workerData;
  const group = bn.joinWorkerGroup(member);
  if (task.kind === 'train') {
    // The native steps by blocks (a worker group's path), with the bytes per channel they cut blocks by.
    const binding = require(path.join(root, 'dist', 'native.js')).native();
    const byBlocks = { forward: [], backward: [] };
    const spy = (name, list) => {
      const original = binding[name];
      binding[name] = (...args) => (list.push(args[12]), original(...args));
    };
    spy('normalizeByBlocks', byBlocks.forward);
    spy('gradInputByBlocks', byBlocks.backward);
    const result = await trainShards(task, group);
    parentPort.postMessage({ ...result, byBlocks });
  } else if (task.kind === 'terminate' || task.kind === 'timeout') {
    const module = new bn.SyncBatchNorm(2, { processGroup: group });
    if (member.rank === 1) {
      if (task.kind === 'terminate') process.exit(3);
      setTimeout(() => {}, 1000); // alive, but never arrives
      return;
    }
    try {
      await module.forwardAsync({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] });
      parentPort.postMessage({ outcome: 'resolved' });
    } catch (error) {
      parentPort.postMessage({ outcome: 'rejected', message: error.message, counter: module.numBatchesTracked, mean: Array.from(module.runningMean) });
    }
  } else if (task.kind === 'throwInBlocks') {
    // Rank 1's native step by blocks throws (as if a check the package makes first had missed a case):
    // its peers, already waiting for its first block in native code, must reject, not wait on.
    if (member.rank === 1) {
      const binding = require(path.join(root, 'dist', 'native.js')).native();
      binding.normalizeByBlocks = () => {
        throw new RangeError('a native check failed');
      };
    }
    const module = new bn.SyncBatchNorm(4, { processGroup: group });
    try {
      await module.forwardAsync({ data: randomArray('float32', 2 * 4 * 64, 1 + member.rank), shape: [2, 4, 8, 8] });
      parentPort.postMessage({ outcome: 'resolved' });
    } catch (error) {
      parentPort.postMessage({ outcome: 'rejected', message: error.message, counter: module.numBatchesTracked });
    }
  } else if (task.kind === 'smallMaxLength') {
    // maxLength 6: a module of 4 channels agrees (6 doubles) but its blocks would need 8 per rank; one of
    // 3 channels fits, and the group still works after the refusal.
    const shape = [2, 4, 8, 8];
    const x = { data: randomArray('float32', 2 * 4 * 64, 1 + member.rank), shape };
    const tooWide = new bn.SyncBatchNorm(4, { processGroup: group });
    let message = null;
    try {
      await tooWide.forwardAsync(x);
    } catch (error) {
      message = error.message;
    }
    const fits = new bn.SyncBatchNorm(3, { processGroup: group });
    const y = await fits.forwardAsync({ data: randomArray('float32', 2 * 3 * 64, 1 + member.rank), shape: [2, 3, 8, 8] });
    parentPort.postMessage({ message, counter: tooWide.numBatchesTracked, after: fits.numBatchesTracked, finite: y.data.every(Number.isFinite) });
  } else if (task.kind === 'exitInBlocks' || task.kind === 'timeoutInBlocks') {
    // Rank 1 arrives at the backward (its first exchange) but never runs the blocks: it exits, or
    // stays alive without them. The others' backward by blocks is waiting for it inside native code.
    const shape = [2, 4, 64, 64];
    const length = shape.reduce((a, b) => a * b, 1);
    const x = { data: randomArray('float32', length, 1 + member.rank), shape };
    const module = new bn.SyncBatchNorm(4, { processGroup: group });
    await module.forwardAsync(x);
    if (member.rank === 1) {
      await group.allGather(new Float64Array(1));
      if (task.kind === 'exitInBlocks') process.exit(3);
      setTimeout(() => {}, 2000);
      return;
    }
    const gradInput = new Float32Array(length);
    try {
      await module.backwardAsync({ ...x, data: randomArray('float32', length, 5) }, { out: { gradInput } });
      parentPort.postMessage({ outcome: 'resolved' });
    } catch (error) {
      parentPort.postMessage({ outcome: 'rejected', message: error.message, weightGrad: module.weight.grad, biasGrad: module.bias.grad });
    }
  } else if (task.kind === 'step') {
    // A training step (forward + backward) of SyncBatchNorm on this rank's shard, against BatchNorm2d's
    // on the same shard alone, interleaved; medians in ms.
    const { shape, steps } = task;
    const length = shape.reduce((a, b) => a * b, 1);
    const x = { data: randomArray('float32', length, 1 + member.rank), shape };
    const dy = { data: randomArray('float32', length, 2 + member.rank), shape };
    const sync = new bn.SyncBatchNorm(shape[1], { processGroup: group });
    const plain = new bn.BatchNorm2d(shape[1]);
    const out = { out: new Float32Array(length) };
    const gradOut = { out: { gradInput: new Float32Array(length) } };
    const syncTimes = [], plainTimes = [];
    for (let i = 0; i < steps; i++) {
      let start = process.hrtime.bigint();
      await sync.forwardAsync(x, out);
      await sync.backwardAsync(dy, gradOut);
      syncTimes.push(Number(process.hrtime.bigint() - start) / 1e6);
      start = process.hrtime.bigint();
      plain.forward(x, out);
      plain.backward(dy, gradOut);
      plainTimes.push(Number(process.hrtime.bigint() - start) / 1e6);
      await group.allGather(new Float64Array(1)); // keep the ranks in step
    }
    const median = (t) => t.sort((a, b) => a - b)[t.length >> 1];
    parentPort.postMessage({ syncMs: median(syncTimes), plainMs: median(plainTimes) });
  } else if (task.kind === 'poolBusy') {
    // libuv's pool (one thread in this process: UV_THREADPOOL_SIZE=1) is busy with a long pbkdf2 that
    // rank 0 starts; a SyncBatchNorm step of shards above the size async calls run inline must not wait
    // for it, as its passes run on the workers' own threads.
    const shape = [2, 64, 32, 32];
    const length = shape.reduce((a, b) => a * b, 1);
    const x = { data: randomArray('float32', length, 1 + member.rank), shape };
    const dy = { data: randomArray('float32', length, 2 + member.rank), shape };
    const sync = new bn.SyncBatchNorm(shape[1], { processGroup: group });
    let poolDone = false;
    if (member.rank === 0) require('node:crypto').pbkdf2('p', 's', task.iterations, 32, 'sha256', () => (poolDone = true));
    await group.allGather(new Float64Array(1));
    const start = process.hrtime.bigint();
    const y = await sync.forwardAsync(x);
    await sync.backwardAsync(dy);
    const stepMs = Number(process.hrtime.bigint() - start) / 1e6;
    parentPort.postMessage({ rank: member.rank, poolDoneAfterStep: poolDone, stepMs, finite: y.data.every(Number.isFinite) });
  } else if (task.kind === 'latency') {
    const local = new Float64Array(2 * task.channels + 1);
    for (let i = 0; i < 200; i++) await group.allGather(local);
    const times = [];
    for (let i = 0; i < task.rounds; i++) {
      const start = process.hrtime.bigint();
      await group.allGather(local);
      times.push(Number(process.hrtime.bigint() - start) / 1e3);
    }
    times.sort((a, b) => a - b);
    parentPort.postMessage({ medianUs: times[times.length >> 1] });
  }
}

/** SyncBatchNorm's steps on this rank's shards: outputs, gradients, state and an averaged array. */
async function trainShards({ dtype, format, shape, shards, options }, group) {
  const module = new bn.SyncBatchNorm(shape[1], { ...options, dtype, processGroup: group });
  const steps = [];
  for (let step = 0; step < STEPS; step++) {
    const x = { data: shards[step].x, shape: [shards[step].n, ...shape.slice(1)], memoryFormat: format };
    const y = await module.forwardAsync(x);
    const dx = await module.backwardAsync({ ...x, data: shards[step].dy });
    steps.push({ output: y.data, gradInput: dx.data });
  }
  const grads = { weight: module.weight?.grad ?? null, bias: module.bias?.grad ?? null };
  // Other layers' gradients, averaged over the ranks as a training script would.
  const averaged = Float32Array.of(group.rank, 1);
  await group.allReduce(averaged);
  return { steps, grads, state: module.stateDict(), averaged };
}

/** `size` ranks in this thread (two passes and one exchange per backward: no worker group). */
function threadGroups(size) {
  const rounds = [];
  const called = new Array(size).fill(0);
  return Array.from({ length: size }, (_, rank) => ({
    rank,
    size,
    allGather(local) {
      const round = (rounds[called[rank]++] ??= { parts: [], resolvers: [] });
      round.parts[rank] = local.slice();
      return new Promise((resolve) => {
        round.resolvers[rank] = resolve;
        if (round.parts.filter(Boolean).length === size) round.resolvers.forEach((r) => r(round.parts.map((p) => p.slice())));
      });
    },
    async allReduce(array) {
      const parts = await this.allGather(Float64Array.from(array));
      array.forEach((_, i) => (array[i] = parts.reduce((sum, part) => sum + part[i], 0)));
    },
  }));
}

/** Whether two typed arrays (or two nulls) hold the same bytes. */
function sameBits(a, b) {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Runs one worker per rank of a new group; resolves with their messages (or exit codes). */
function runGroup(size, taskFor, groupOptions) {
  const group = bn.createWorkerGroup(size, groupOptions);
  return Promise.all(
    Array.from({ length: size }, (_, rank) => {
      const worker = new Worker(__filename, { workerData: { member: group.member(rank), task: taskFor(rank) } });
      group.watch(worker, rank);
      return new Promise((resolve, reject) => {
        let message = null;
        worker.once('message', (m) => (message = m));
        worker.once('error', reject);
        worker.once('exit', (code) => resolve(message ?? { exitCode: code }));
      });
    }),
  );
}


async function train([dtype, format, shapeText, shardText, optionsText]) {
  const options = JSON.parse(optionsText ?? '{}');
  const shape = shapeText.split('x').map(Number);
  const sizes = shardText.split(',').map(Number);
  const perItem = shape.slice(1).reduce((a, b) => a * b, 1);
  const Module = { 2: bn.BatchNorm1d, 3: bn.BatchNorm1d, 4: bn.BatchNorm2d, 5: bn.BatchNorm3d }[shape.length];
  const whole = new Module(shape[1], { ...options, dtype });
  const inputs = [];
  const expected = [];
  for (let step = 0; step < STEPS; step++) {
    const x = randomArray(dtype, shape[0] * perItem, 10 + step);
    const dy = randomArray(dtype, shape[0] * perItem, 20 + step);
    inputs.push({ x, dy });
    const y = whole.forward({ data: x, shape, memoryFormat: format });
    const dx = whole.backward({ data: dy, shape, memoryFormat: format });
    expected.push({ output: y.data, gradInput: dx.data });
  }
  const begins = sizes.map((_, r) => sizes.slice(0, r).reduce((a, b) => a + b, 0));
  const taskOf = (rank) => ({
    kind: 'train', dtype, format, shape, options,
    shards: inputs.map(({ x, dy }) => {
      const from = begins[rank] * perItem, to = (begins[rank] + sizes[rank]) * perItem;
      return { n: sizes[rank], x: x.slice(from, to), dy: dy.slice(from, to) };
    }),
  });
  const results = await runGroup(sizes.length, taskOf);
  // The same shards over ranks in this thread: the workers' results, whichever path they took, must
  // have the same bits (every channel's arithmetic and the rank order of the merges are the same).
  const inThread = await Promise.all(threadGroups(sizes.length).map((group) => trainShards(taskOf(group.rank), group)));
  const report = { outputError: 0, gradInputError: 0, runningIdentical: true, runningError: 0, gradError: 0, averaged: results[0].averaged };
  for (const [rank, result] of results.entries()) {
    if (result.exitCode !== undefined) throw new Error(`rank ${rank} exited with ${result.exitCode}`);
    for (let step = 0; step < STEPS; step++) {
      const from = begins[rank] * perItem, to = (begins[rank] + sizes[rank]) * perItem;
      report.outputError = Math.max(report.outputError, maxError(result.steps[step].output, expected[step].output.subarray(from, to)));
      report.gradInputError = Math.max(report.gradInputError, maxError(result.steps[step].gradInput, expected[step].gradInput.subarray(from, to)));
    }
    for (const key of ['running_mean', 'running_var']) {
      if (result.state[key] === undefined) continue;
      const a = Buffer.from(result.state[key].buffer), b = Buffer.from(results[0].state[key].buffer);
      report.runningIdentical &&= a.equals(b);
    }
  }
  if (whole.runningMean !== null) {
    report.runningError = Math.max(maxError(results[0].state.running_mean, whole.runningMean), maxError(results[0].state.running_var, whole.runningVar));
  }
  for (const key of whole.affine ? ['weight', 'bias'] : []) {
    const summed = new Float64Array(shape[1]);
    for (const result of results) result.grads[key].forEach((v, i) => (summed[i] += v));
    report.gradError = Math.max(report.gradError, maxError(summed, whole[key].grad));
  }
  report.counters = results.map((r) => (r.state.num_batches_tracked === undefined ? null : Number(r.state.num_batches_tracked[0])));
  report.byBlocks = results.map((r) => r.byBlocks);
  report.sameBitsInThread = results.every((result, rank) => {
    const other = inThread[rank];
    return result.steps.every((s, i) => sameBits(s.output, other.steps[i].output) && sameBits(s.gradInput, other.steps[i].gradInput)) &&
      sameBits(result.grads.weight, other.grads.weight) && sameBits(result.grads.bias, other.grads.bias) &&
      Object.keys(other.state).every((key) => sameBits(result.state[key], other.state[key]));
  });
  return report;
}

async function failure(kind) {
  const options = kind.startsWith('timeout') ? { timeoutMs: 300 } : kind === 'smallMaxLength' ? { maxLength: 6 } : {};
  const results = await runGroup(3, () => ({ kind }), options);
  return { results };
}

async function step([members, shapeText, steps]) {
  const shape = shapeText.split('x').map(Number);
  const results = await runGroup(Number(members), () => ({ kind: 'step', shape, steps: Number(steps) }));
  return { syncMs: Math.max(...results.map((r) => r.syncMs)), plainMs: Math.max(...results.map((r) => r.plainMs)) };
}

async function poolBusy([iterations]) {
  const results = await runGroup(2, () => ({ kind: 'poolBusy', iterations: Number(iterations) }));
  return { results };
}

async function latency([members, channels, rounds]) {
  const results = await runGroup(Number(members), () => ({ kind: 'latency', channels: Number(channels), rounds: Number(rounds) }));
  return { medianUs: Math.max(...results.map((r) => r.medianUs)) };
}

if (!isMainThread) {
  workerMain().catch((error) => {
    console.error(error);
    process.exit(1);
  });
} else {
  const [kind, ...args] = process.argv.slice(2);
  const modes = { train, latency, step, poolBusy };
  const run = kind in modes ? modes[kind](args) : failure(kind);
  run.then(
    (report) => console.log(JSON.stringify(report)),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
