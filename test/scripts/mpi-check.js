'use strict';
// SyncBatchNorm over batchnorm/mpi, run by scripts/test-mpi.sh under `mpirun -np N`: every rank trains
// its shard of a batch it can also compute whole (the same seeded data everywhere), compares its output
// and gradInput slices with BatchNorm*d on the whole batch, checks that the running buffers are
// bit-identical on every rank and that the ranks' weight/bias gradients sum to the whole batch's, then
// that ranks with different options all get the same RangeError. Prints one line per rank; exits 1 on
// any failure.
//   mpirun -np 3 node test/scripts/mpi-check.js            (the checks)
//   mpirun -np 2 node test/scripts/mpi-check.js latency    (allGather of 2C + 1 doubles, C = 64, 256, 1024)
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const { maxError, randomArray } = require('./data.js');
const bn = require(root);
const { mpiWorld } = require(path.join(root, 'dist', 'mpi.js'));


function check(condition, message) {
  if (!condition) throw new Error(message);
}


async function sameEverywhere(group, array, label) {
  const parts = await group.allGather(Float64Array.from(array));
  for (const part of parts) check(Buffer.from(part.buffer).equals(Buffer.from(parts[0].buffer)), `${label} differs between ranks`);
}

async function trainCase(group, { dtype, format, shape, sizes, momentum }) {
  const perItem = shape.slice(1).reduce((a, b) => a * b, 1);
  const C = shape[1];
  const Module = { 2: bn.BatchNorm1d, 3: bn.BatchNorm1d, 4: bn.BatchNorm2d, 5: bn.BatchNorm3d }[shape.length];
  const whole = new Module(C, { dtype, momentum });
  const sync = new bn.SyncBatchNorm(C, { dtype, momentum, processGroup: group });
  const begin = sizes.slice(0, group.rank).reduce((a, b) => a + b, 0) * perItem;
  const end = begin + sizes[group.rank] * perItem;
  const tolerance = dtype === 'float64' ? 1e-10 : 1e-5;
  for (let step = 0; step < 2; step++) {
    const x = randomArray(dtype, shape[0] * perItem, 10 + step);
    const dy = randomArray(dtype, shape[0] * perItem, 20 + step);
    const expected = whole.forward({ data: x, shape, memoryFormat: format }).data;
    const expectedGrad = whole.backward({ data: dy, shape, memoryFormat: format }).data;
    const local = (data) => ({ data: data.slice(begin, end), shape: [sizes[group.rank], ...shape.slice(1)], memoryFormat: format });
    const y = await sync.forwardAsync(local(x));
    const dx = await sync.backwardAsync(local(dy));
    check(maxError(y.data, expected.subarray(begin, end)) <= tolerance, `step ${step}: output differs from the whole batch's`);
    check(maxError(dx.data, expectedGrad.subarray(begin, end)) <= tolerance, `step ${step}: gradInput differs from the whole batch's`);
    await sameEverywhere(group, sync.runningMean, 'runningMean');
    await sameEverywhere(group, sync.runningVar, 'runningVar');
    check(maxError(sync.runningMean, whole.runningMean) <= tolerance, 'runningMean differs from the whole batch\'s');
    check(maxError(sync.runningVar, whole.runningVar) <= tolerance, 'runningVar differs from the whole batch\'s');
    check(sync.numBatchesTracked === whole.numBatchesTracked, 'num_batches_tracked differs');
  }
  for (const key of ['weight', 'bias']) {
    const summed = Float64Array.from(sync[key].grad);
    await group.allReduce(summed);
    check(maxError(summed, whole[key].grad) <= (dtype === 'float64' ? 1e-10 : 1e-4), `summed ${key} gradient differs from the whole batch's`);
  }
}

async function checks(group) {
  const n = group.size;
  // Uneven shards, one empty where there are three ranks or more.
  const sizes = Array.from({ length: n }, (_, r) => (n >= 3 && r === 1 ? 0 : r + 2));
  const N = sizes.reduce((a, b) => a + b, 0);
  const cases = [
    { dtype: 'float32', format: 'contiguous', shape: [N, 3, 4, 4], sizes, momentum: 0.1 },
    { dtype: 'float64', format: 'channelsLast', shape: [N, 5, 3, 2], sizes, momentum: null },
    { dtype: 'float32', format: 'contiguous', shape: [N, 6], sizes, momentum: 0.3 },
    { dtype: 'float64', format: 'contiguous', shape: [N, 2, 3, 2, 2], sizes, momentum: 0.1 },
  ];
  for (const c of cases) await trainCase(group, c);
  // Different eps on rank 1: every rank throws the same RangeError, nothing changes.
  const odd = new bn.SyncBatchNorm(2, { eps: group.rank === 1 ? 1e-3 : 1e-5, processGroup: group });
  let message = 'resolved';
  try {
    await odd.forwardAsync({ data: randomArray('float32', 8, 3), shape: [4, 2] });
  } catch (error) {
    message = error.message;
  }
  check(message.startsWith('SyncBatchNorm: the ranks of the process group disagree on eps'), `mismatch: ${message}`);
  check(odd.numBatchesTracked === 0, 'a rejected step changed the counter');
  return `${cases.length} cases and the mismatch check passed on rank ${group.rank} of ${n}`;
}

async function latency(group) {
  const rows = [];
  for (const channels of [64, 256, 1024]) {
    const local = new Float64Array(2 * channels + 1);
    for (let i = 0; i < 200; i++) await group.allGather(local);
    const times = [];
    for (let i = 0; i < 2000; i++) {
      const start = process.hrtime.bigint();
      await group.allGather(local);
      times.push(Number(process.hrtime.bigint() - start) / 1e3);
    }
    times.sort((a, b) => a - b);
    rows.push({ channels, medianUs: times[times.length >> 1] });
  }
  return JSON.stringify({ rank: group.rank, size: group.size, latency: rows });
}

const group = mpiWorld();
(process.argv[2] === 'latency' ? latency(group) : checks(group)).then(
  (line) => console.log(line),
  (error) => {
    console.error(`rank ${group.rank}: ${error.stack ?? error}`);
    process.exit(1);
  },
);
