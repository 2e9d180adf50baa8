'use strict';
// The process's kernel-thread budget with worker threads (test/threads.test.ts), in a child process:
//   node thread-budget.js <workers> [<threads asked for in each worker>]
// Prints one JSON line: the process's thread count with the workers started but the addon not loaded,
// after every worker (then the main thread) loaded it and ran multi-threaded calls, and what
// getNumThreads() answered in each.
const fs = require('node:fs');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const root = path.join(__dirname, '..', '..');

function threadCount() {
  return fs.readdirSync('/proc/self/task').length;
}

/** A training forward large enough that every thread of the budget gets a range. */
function work(bn) {
  const shape = [16, 64, 32, 32];
  const data = new Float32Array(shape.reduce((a, b) => a * b));
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  for (let i = 0; i < 3; i++) bn.batchNorm({ data, shape }, { training: true });
}

if (!isMainThread) {
  parentPort.once('message', () => {
    const bn = require(root);
    if (workerData.asked !== undefined) bn.setNumThreads(workerData.asked);
    work(bn);
    parentPort.postMessage(bn.getNumThreads());
    // Stay alive (holding the port) until the main thread has counted.
    parentPort.once('message', () => parentPort.close());
  });
  parentPort.postMessage('started');
} else {
  const workers = Number(process.argv[2]);
  const asked = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
  const next = (worker) => new Promise((resolve) => worker.once('message', resolve));
  (async () => {
    const pool = Array.from({ length: workers }, () => new Worker(__filename, { workerData: { asked } }));
    await Promise.all(pool.map(next));
    // Let the workers' own start-up threads settle before the baseline.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const baseline = threadCount();
    const answers = await Promise.all(pool.map((worker) => (worker.postMessage('go'), next(worker))));
    const afterWorkers = threadCount();
    const bn = require(root);
    work(bn);
    const afterMain = threadCount();
    const mainThreads = bn.getNumThreads();
    for (const worker of pool) worker.postMessage('exit');
    await Promise.all(pool.map((worker) => new Promise((resolve) => worker.once('exit', resolve))));
    console.log(JSON.stringify({ workers, baseline, afterWorkers, afterMain, workerThreads: answers, mainThreads }));
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
