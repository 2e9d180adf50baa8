'use strict';
// Run by test/leaks.test.ts with --expose-gc: forward + backward steps on modules (sync, async on the
// calling thread, async on the pool) must keep the resident set flat. Prints the growth in MB over the
// two halves of the steps, after a warm-up.
const path = require('node:path');
const bn = require(path.join(__dirname, '..', '..'));

// Async calls up to 65,536 elements run on the calling thread, larger ones on the pool
// (native/binding/async_call.h): the small layer takes the first path, the large one the second.
function layerOf(shape) {
  const n = shape.reduce((a, b) => a * b);
  return {
    layer: new bn.BatchNorm2d(shape[1]),
    x: { data: Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape },
    dy: { data: Float32Array.from({ length: n }, (_, i) => Math.cos(i)), shape },
  };
}
const small = layerOf([8, 16, 6, 6]);
const large = layerOf([8, 16, 24, 24]);

function rssMb() {
  for (let i = 0; i < 5; i++) global.gc();
  return process.memoryUsage().rss / 2 ** 20;
}

async function step(i) {
  const { layer, x, dy } = i % 20 === 10 ? large : small;
  if (i % 10 === 0) {
    await layer.forwardAsync(x);
    await layer.backwardAsync(dy);
  } else {
    layer.forward(x);
    layer.backward(dy);
  }
  if (i % 1000 === 0) layer.zeroGrad();
}

async function main() {
  const steps = Number(process.argv[2] ?? 40000);
  for (let i = 0; i < 2000; i++) await step(i);
  const before = rssMb();
  let middle = before;
  for (let i = 0; i < steps; i++) {
    await step(i);
    if (i === steps / 2 - 1) middle = rssMb();
  }
  const after = rssMb();
  console.log(JSON.stringify({ steps, firstHalfMb: middle - before, secondHalfMb: after - middle }));
}

main();
