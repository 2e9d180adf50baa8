'use strict';
// Run by test/leaks.test.ts with --expose-gc: 20,000 forward + backward steps on a module (sync and
// async) must keep the resident set flat. Prints the growth in MB after a warm-up.
const path = require('node:path');
const bn = require(path.join(__dirname, '..', '..'));

const shape = [8, 16, 6, 6];
const n = shape.reduce((a, b) => a * b);
const x = { data: Float32Array.from({ length: n }, (_, i) => Math.sin(i)), shape };
const dy = { data: Float32Array.from({ length: n }, (_, i) => Math.cos(i)), shape };
const layer = new bn.BatchNorm2d(16);

function rssMb() {
  for (let i = 0; i < 5; i++) global.gc();
  return process.memoryUsage().rss / 2 ** 20;
}

async function main() {
  const steps = Number(process.argv[2] ?? 20000);
  for (let i = 0; i < 2000; i++) {
    layer.forward(x);
    layer.backward(dy);
  }
  const before = rssMb();
  for (let i = 0; i < steps; i++) {
    if (i % 10 === 0) {
      await layer.forwardAsync(x);
      await layer.backwardAsync(dy);
    } else {
      layer.forward(x);
      layer.backward(dy);
    }
    if (i % 1000 === 0) layer.zeroGrad();
  }
  const after = rssMb();
  console.log(JSON.stringify({ steps, beforeMb: before, afterMb: after, growthMb: after - before }));
}

main();
