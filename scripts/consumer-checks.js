'use strict';
// What a consumer app meets first (issue 24), run by scripts/test-package.sh in a fresh project that
// installed the packed tarball, `ndarray` and `@stdlib/ndarray-ctor` from the registry:
//   node consumer-checks.js <file.safetensors>
// Throws on the first check that fails; writes a whole model's state dict with prefixed layer keys to
// the file for PyTorch to read back.
const assert = require('node:assert');
const bn = require('batchnorm');
const ndarray = require('ndarray');
const StdlibNdarray = require('@stdlib/ndarray-ctor');

const ramp = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + 0.2));

// A training forward over its own input is refused, in the modules and the functional API.
const x = { data: ramp(48), shape: [4, 3, 2, 2] };
const layer = new bn.BatchNorm2d(3);
assert.throws(() => layer.forward(x, { out: x.data }), { name: 'RangeError', message: /options\.out must not overlap input\.data in training/ });
assert.throws(() => bn.batchNorm(x, { training: true, out: x.data.subarray(0) }), RangeError);
assert.strictEqual(layer.numBatchesTracked, 0);
console.log('in-place training refused');

// numpy's spelling of strides is refused, not read as contiguous.
assert.throws(() => bn.batchNorm({ data: ramp(8), shape: [4, 2], strides: [1, 4], offset: 0 }, { training: true }), {
  name: 'TypeError',
  message: /Unknown key 'strides' in input \(did you mean 'stride'\?\)/,
});
console.log('strides refused with a did-you-mean');

// A transposed ndarray view is read by its strides.
const base = ramp(24);
const view = ndarray(base, [4, 3, 2]).transpose(2, 1, 0);
const gathered = new Float32Array(24);
let i = 0;
for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) gathered[i++] = view.get(a, b, c);
assert.deepStrictEqual(
  bn.batchNorm(view, { training: true }).output.data,
  bn.batchNorm({ data: gathered, shape: [2, 3, 4] }, { training: true }).output.data,
);
console.log('ndarray view read by its strides');

// A @stdlib/ndarray ndarray is refused with the object to pass, which works.
const stdlib = new StdlibNdarray('float32', ramp(30), [2, 3, 5], [1, 2, 6], 0, 'column-major');
assert.throws(() => bn.batchNorm(stdlib, { training: true }), { name: 'TypeError', message: /pass \{ data: x\.data, shape: x\.shape, stride: x\.strides, offset: x\.offset \}/ });
const passed = bn.batchNorm({ data: stdlib.data, shape: stdlib.shape, stride: stdlib.strides, offset: stdlib.offset }, { training: true });
assert.strictEqual(passed.output.data.length, 30);
console.log('@stdlib/ndarray refused with its conversion, which works');

// A whole model's state dict: layer keys with prefixes, each num_batches_tracked 0-d in the file.
const bn1 = new bn.BatchNorm2d(3);
bn1.forward(x);
bn1.forward({ data: ramp(48).map((v) => v * 2 + 1), shape: [4, 3, 2, 2] });
const head = new bn.BatchNorm1d(2, { momentum: null });
head.forward({ data: ramp(8), shape: [4, 2] });
bn.saveSafetensors(process.argv[2], { ...bn1.stateDict({ prefix: 'bn1.' }), ...head.stateDict({ prefix: 'head.1.' }) });
console.log(`wrote ${process.argv[2]}: bn1.num_batches_tracked = ${bn1.numBatchesTracked}, running_mean = ${Array.from(bn1.runningMean).map((v) => v.toFixed(6)).join(' ')}`);

// batchnorm/mpi resolves from the installed package and, not built there, says how to build it.
const { mpiWorld } = require('batchnorm/mpi');
assert.throws(() => mpiWorld(), { name: 'BatchNormLoadError', message: /npm run build:mpi/ });
console.log('batchnorm/mpi explains how to build its addon');
