'use strict';
// Run by test/async.test.ts in a child process with --expose-gc:
//   gc    — async calls whose arrays are only referenced by the native side survive forced GCs;
//   worker — a worker_thread terminated while its async call is in flight does not crash this process.
const { Worker, isMainThread, parentPort } = require('node:worker_threads');
const path = require('node:path');
const bn = require(path.join(__dirname, '..', '..'));

async function gcScenario() {
  const shape = [16, 8, 64, 64];
  const n = shape.reduce((a, b) => a * b);
  const expected = bn.batchNorm({ data: Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape }, { training: true });
  const pending = [];
  for (let k = 0; k < 4; k++) {
    pending.push(bn.batchNormAsync({ data: Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape }, { training: true }));
  }
  for (let k = 0; k < 20; k++) global.gc();
  for (const result of await Promise.all(pending)) {
    if (Buffer.compare(Buffer.from(result.output.data.buffer), Buffer.from(expected.output.data.buffer)) !== 0) {
      throw new Error('async result differs from the sync one');
    }
  }
  console.log('gc ok');
}

async function workerScenario() {
  const workers = [];
  for (let k = 0; k < 3; k++) {
    const worker = new Worker(__filename, { argv: ['child'] });
    workers.push(new Promise((resolve) => {
      worker.on('message', async (message) => {
        if (message === 'started') {
          await worker.terminate();
          resolve();
        }
      });
      worker.on('error', (error) => {
        console.error('worker error', error);
        process.exit(1);
      });
    }));
  }
  await Promise.all(workers);
  // The addon still works here after the workers are gone.
  const r = bn.batchNorm({ data: Float64Array.of(1, 2, 3, 4), shape: [2, 2] }, { training: true });
  if (Math.abs(r.output.data[0] + 1) > 1e-4) throw new Error('main thread broken after worker termination');
  console.log('worker ok');
}

async function child() {
  const shape = [64, 16, 128, 128];
  const n = shape.reduce((a, b) => a * b);
  const x = { data: new Float32Array(n).fill(1.5), shape };
  const promise = bn.batchNormAsync(x, { training: true });
  parentPort.postMessage('started');
  await promise;
}

if (!isMainThread) {
  child();
} else if (process.argv[2] === 'gc') {
  gcScenario().catch((e) => { console.error(e); process.exit(1); });
} else {
  workerScenario().catch((e) => { console.error(e); process.exit(1); });
}
