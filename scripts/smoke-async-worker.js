'use strict';
// An async call and a worker thread against a package directory, for runtimes the vitest suite does not
// reach (Node's Windows binary under wine: scripts/test-win32.sh): BatchNorm2d.forwardAsync /
// backwardAsync must equal the synchronous calls bit for bit, and a worker_threads Worker loading the
// package must compute the same output as the main thread.
//   node scripts/smoke-async-worker.js [package-dir]
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const packageDir = path.resolve(process.argv[2] ?? path.join(__dirname, '..'));
const bn = require(packageDir);
const shape = [4, 3, 5, 5];
const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i) * 3 + (i % 7));
const gradData = new Float32Array(data.length).map((_, i) => Math.cos(i));

function same(a, b, what) {
  if (a.length !== b.length || a.some((v, i) => !Object.is(v, b[i]))) throw new Error(`${what} differs`);
}

async function main() {
  const syncModule = new bn.BatchNorm2d(3);
  const asyncModule = new bn.BatchNorm2d(3);
  const ySync = syncModule.forward({ data, shape });
  const yAsync = await asyncModule.forwardAsync({ data, shape });
  same(yAsync.data, ySync.data, 'forwardAsync output');
  const dxSync = syncModule.backward({ data: gradData, shape });
  const dxAsync = await asyncModule.backwardAsync({ data: gradData, shape });
  same(dxAsync.data, dxSync.data, 'backwardAsync gradInput');
  same(asyncModule.runningMean, syncModule.runningMean, 'running mean');

  const fromWorker = await new Promise((resolve, reject) => {
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const bn = require(workerData.packageDir);
       const r = bn.batchNorm({ data: workerData.data, shape: workerData.shape }, { training: true });
       parentPort.postMessage(r.output.data);`,
      { eval: true, workerData: { packageDir, data, shape } },
    );
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  same(fromWorker, bn.batchNorm({ data, shape }, { training: true }).output.data, 'worker output');
  console.log(`smoke: async calls and a worker agree with the sync calls (${bn.cpuCapability()} kernels)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
