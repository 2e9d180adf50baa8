'use strict';
// Lifecycle scenarios of test/lifecycle.test.ts, each run in a child process (a crash fails one
// scenario, not the test runner) and printing one JSON line. Run with --expose-gc:
//   node --expose-gc lifecycle.js <scenario>
const fs = require('node:fs');
const path = require('node:path');
const { MessageChannel, Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const root = path.join(__dirname, '..', '..');
const bn = require(root);

function ramp(length, seed) {
  const data = new Float32Array(length);
  for (let i = 0; i < length; i++) data[i] = Math.sin(i * 0.37 + seed) * 2 + 0.5;
  return data;
}

function same(a, b) {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** The resident set after the garbage of this process is collected (the allocations of collect() included). */
function settledRssMb() {
  collect();
  for (let i = 0; i < 4; i++) global.gc();
  return process.memoryUsage().rss / 2 ** 20;
}

function threadCount() {
  return fs.readdirSync('/proc/self/task').length;
}

// Frees what a detached buffer's new owner held: many collections under allocation pressure.
function collect() {
  const junk = [];
  for (let i = 0; i < 8; i++) {
    junk.push(new Float32Array(1 << 20));
    global.gc();
  }
  return junk.length;
}

const detachers = {
  structuredClone: (buffer) => structuredClone(buffer, { transfer: [buffer] }),
  postMessage: (buffer) => {
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(buffer, [buffer]);
    port1.close();
    port2.close();
  },
  transfer: (buffer) => buffer.transfer(),
  transferToFixedLength: (buffer) => buffer.transferToFixedLength(),
};

// Starts an async call, detaches one of its caller's buffers while it runs, lets the new owner's
// memory go, and reports how the call settled. Every outcome must be one a caller can rely on: the
// expected result, or a rejection that changed nothing.
async function detachCase(target, method) {
  const shape = [8, 16, 64, 64];
  const n = shape.reduce((a, b) => a * b);
  const dyData = ramp(n, 2);
  const reference = new bn.BatchNorm2d(16);
  const expected = reference.forward({ data: ramp(n, 1), shape });
  const expectedGrad = reference.backward({ data: dyData, shape });

  const x = { data: ramp(n, 1), shape };
  const dy = { data: ramp(n, 2), shape };
  const out = new Float32Array(n);
  const runningMean = new Float32Array(16);
  const runningVar = new Float32Array(16).fill(1);
  const module = new bn.BatchNorm2d(16);
  let pending;
  let victim;
  let check;
  let unchanged;
  if (target === 'functional input' || target === 'functional out') {
    pending = bn.batchNormAsync(x, { training: true, runningMean, runningVar, out });
    victim = target === 'functional input' ? x.data.buffer : out.buffer;
    check = () => same(out, expected.data) && same(runningMean, reference.runningMean);
    unchanged = () => runningMean.every((v) => v === 0) && runningVar.every((v) => v === 1);
  } else if (target === 'backward gradOutput') {
    const forward = bn.batchNorm(x, { training: true });
    pending = bn.batchNormBackwardAsync(dy, x, { training: true, saveMean: forward.saveMean, saveInvstd: forward.saveInvstd });
    victim = dy.data.buffer;
    check = (result) => same(result.gradInput.data, expectedGrad.data);
    unchanged = () => true;
  } else if (target === 'module input') {
    pending = module.forwardAsync(x);
    victim = x.data.buffer;
    check = (y) => same(y.data, expected.data) && same(module.runningMean, reference.runningMean) && module.numBatchesTracked === 1;
    unchanged = () => module.numBatchesTracked === 0 && module.runningMean.every((v) => v === 0);
  } else {
    module.forward({ data: ramp(n, 1), shape });
    pending = module.backwardAsync(dy);
    victim = dy.data.buffer;
    check = (g) => same(g.data, expectedGrad.data) && same(module.weight.grad, reference.weight.grad);
    unchanged = () => module.weight.grad === null;
  }
  let detach = 'detached';
  try {
    detachers[method](victim);
    if (victim.byteLength !== 0) detach = 'copied';
  } catch (error) {
    detach = `refused (${error.name})`;
  }
  collect();
  try {
    const result = await pending;
    return { target, method, detach, outcome: check(result) ? 'resolved' : 'resolved with wrong values' };
  } catch (error) {
    // A queued module call checks its input when it starts: a buffer detached before then is reported
    // like any detached input.
    const clean = (error instanceof TypeError || error instanceof RangeError) && /detached/.test(error.message) && unchanged();
    return { target, method, detach, outcome: clean ? 'rejected' : `rejected badly: ${error.name}: ${error.message}` };
  }
}

async function detach() {
  const cases = [];
  for (const method of Object.keys(detachers)) {
    if (method.startsWith('transfer') && typeof ArrayBuffer.prototype[method] !== 'function') continue;
    for (const target of ['functional input', 'functional out', 'backward gradOutput', 'module input', 'module gradOutput']) {
      cases.push(await detachCase(target, method));
    }
  }
  return { guard: bn.asyncMemoryGuard?.(), node: process.versions.node, cases };
}

async function resizable() {
  const shape = [4, 3, 8, 8];
  const n = shape.reduce((a, b) => a * b);
  const report = {};
  const rab = new ArrayBuffer(4 * n, { maxByteLength: 8 * n });
  const fromRab = new Float32Array(rab);
  fromRab.set(ramp(n, 1));
  for (const [name, call] of [
    ['input', () => bn.batchNormAsync({ data: fromRab, shape }, { training: true })],
    ['out', () => bn.batchNormAsync({ data: ramp(n, 1), shape }, { training: true, out: fromRab })],
  ]) {
    try {
      await call();
      report[name] = 'accepted';
    } catch (error) {
      report[name] = `${error.name}: ${error.message}`;
    }
  }
  // Growable SharedArrayBuffers never shrink: they keep working, with the sync call's bits.
  const gsab = new SharedArrayBuffer(4 * n, { maxByteLength: 8 * n });
  const shared = new Float32Array(gsab, 0, n);
  shared.set(ramp(n, 1));
  const viaShared = await bn.batchNormAsync({ data: shared, shape }, { training: true });
  report.growableShared = same(viaShared.output.data, bn.batchNorm({ data: ramp(n, 1), shape }, { training: true }).output.data);
  // Sync calls check a length-tracking view like any other, at the moment of the call.
  const tracking = new Float32Array(rab);
  report.syncBeforeShrink = same(bn.batchNorm({ data: tracking, shape }, { training: true }).output.data, viaShared.output.data);
  rab.resize(4 * (n - 1));
  try {
    bn.batchNorm({ data: tracking, shape }, { training: true });
    report.syncAfterShrink = 'accepted';
  } catch (error) {
    report.syncAfterShrink = `${error.name}: ${error.message}`;
  }
  return report;
}

// A worker that loads the package, builds a module and runs sync and async calls until terminated.
function workerLoop() {
  const worker = require(root);
  const shape = [8, 8, 32, 32];
  const n = shape.reduce((a, b) => a * b);
  const m = new worker.BatchNorm2d(8);
  const x = { data: ramp(n, 1), shape };
  const dy = { data: ramp(n, 2), shape };
  // 4 MB: its outputs are taken uninitialized (lib/tensor.ts newOutputLike).
  const large = { data: ramp(1 << 20, 3), shape: [16, 64, 32, 32] };
  parentPort.postMessage('ready');
  (async () => {
    for (;;) {
      m.forward(x);
      m.backward(dy);
      await m.forwardAsync(x);
      await m.backwardAsync(dy);
      await worker.batchNormAsync(x, { training: true });
      worker.batchNorm(large, { training: true });
      await worker.batchNormAsync(large, { training: true });
    }
  })();
}

async function terminate() {
  const cycles = Number(process.argv[3] ?? 300);
  let ready = 0;
  const start = () => {
    const worker = new Worker(__filename, { argv: ['worker'] });
    const exited = new Promise((resolve, reject) => {
      worker.on('error', reject);
      worker.on('exit', resolve);
    });
    return { worker, exited };
  };
  // How long a worker takes to load the package and start calling (much longer under ASan): the
  // termination moments are spread over 1.5 times that, so cycles end during loading, construction or calls.
  const { worker: first, exited } = start();
  const readyMs = await new Promise((resolve) => {
    const startedAt = performance.now();
    first.once('message', () => resolve(performance.now() - startedAt));
  });
  await first.terminate();
  await exited;
  const runOnce = async (delayMs) => {
    const { worker, exited: done } = start();
    worker.on('message', () => ready++);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await worker.terminate();
    await done;
  };
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  // A terminated worker's thread may still be exiting when it reports its exit: wait (up to 5 s) for
  // the count to come down to `target`.
  const settledThreads = async (target) => {
    for (let waited = 0; threadCount() > target && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    return threadCount();
  };
  for (let i = 0; i < 20; i++) await runOnce(random() * 1.5 * readyMs);
  // libuv starts its 4 pool threads at the first async call of any thread: if no warm-up worker got as
  // far as its async calls (seen on a loaded machine), they would start after `before` was counted.
  await bn.batchNormAsync({ data: new Float32Array(1 << 17), shape: [2, 1 << 16] }, { training: true });
  await new Promise((r) => setTimeout(r, 500));
  const before = { threads: threadCount(), rssMb: settledRssMb() };
  ready = 0;
  for (let i = 0; i < cycles / 2; i++) await runOnce(random() * 1.5 * readyMs);
  const middle = { threads: await settledThreads(before.threads), rssMb: settledRssMb() };
  for (let i = cycles / 2; i < cycles; i++) await runOnce(random() * 1.5 * readyMs);
  const threads = await settledThreads(before.threads);
  const after = { threads, rssMb: settledRssMb() };
  // The addon still works on this thread.
  const check = await bn.batchNormAsync({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
  return { cycles, readyMs, calling: ready, before, middle, after, works: Math.abs(check.output.data[0] + 1) < 1e-4 };
}

function reload() {
  const reloads = Number(process.argv[3] ?? 200);
  const fresh = () => {
    for (const key of Object.keys(require.cache)) {
      if (key.startsWith(root) && !key.includes(`${path.sep}node_modules${path.sep}`)) delete require.cache[key];
    }
    return require(root);
  };
  fresh().batchNorm({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
  const before = threadCount();
  let works = true;
  for (let i = 0; i < reloads; i++) {
    const copy = fresh();
    const r = copy.batchNorm({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
    works &&= Math.abs(r.output.data[0] + 1) < 1e-4;
  }
  return { reloads, before, after: threadCount(), works };
}

// Sizes whose scratch cannot be allocated (run under a small address-space limit): a RangeError, sync
// and async, and the arrays are untouched.
async function outOfMemory() {
  const channels = 100_000_000;
  const runningMean = new Float32Array(channels);
  const runningVar = new Float32Array(channels).fill(1);
  const report = {};
  const input = { data: new Float32Array(0), shape: [0, channels] };
  // Evaluating an empty batch needs no per-channel memory: it returns at once.
  try {
    report.emptyEval = bn.batchNorm(input, { runningMean, runningVar }).output.data.length === 0 ? 'ok' : 'wrong output';
  } catch (error) {
    report.emptyEval = `${error.name}: ${error.message}`;
  }
  // Its backward still computes every channel's coefficients (1.6 GB of them here).
  const options = { runningMean, runningVar, training: false, outputMask: [true, false, false] };
  try {
    bn.batchNormBackward(input, input, options);
    report.sync = 'no error';
  } catch (error) {
    report.sync = `${error.name}: ${error.message}`;
  }
  try {
    await bn.batchNormBackwardAsync(input, input, options);
    report.async = 'no error';
  } catch (error) {
    report.async = `${error.name}: ${error.message}`;
  }
  report.unchanged = runningMean[0] === 0 && runningVar[channels - 1] === 1;
  report.stillWorks = Math.abs(bn.batchNorm({ data: Float32Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true }).output.data[0] + 1) < 1e-4;
  return report;
}

// The thread-count getter and setter, called while a large async call runs, against that call's time.
async function numThreads() {
  const shape = [16, 64, 128, 128];
  const n = shape.reduce((a, b) => a * b);
  const x = { data: ramp(n, 1), shape };
  bn.setNumThreads(2);
  bn.batchNorm(x, { training: true });
  let start = performance.now();
  bn.batchNorm(x, { training: true });
  const kernelMs = performance.now() - start;
  const pending = bn.batchNormAsync(x, { training: true });
  await new Promise((resolve) => setTimeout(resolve, kernelMs / 4));
  start = performance.now();
  const threads = bn.getNumThreads();
  const getMs = performance.now() - start;
  start = performance.now();
  bn.setNumThreads(1);
  const setMs = performance.now() - start;
  const afterSet = bn.getNumThreads();
  await pending;
  const later = await bn.batchNormAsync(x, { training: true });
  return { kernelMs, getMs, setMs, threads, afterSet, laterOk: later.output.data.length === n };
}

const scenarios = { detach, resizable, terminate, reload, outOfMemory, numThreads };

if (!isMainThread) {
  workerLoop(workerData);
} else {
  Promise.resolve(scenarios[process.argv[2]]()).then(
    (report) => console.log(JSON.stringify(report)),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
