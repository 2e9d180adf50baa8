'use strict';
// The functional parity suite as a plain Node script, for places vitest cannot go: under qemu-user (the
// old-CPU gates of .ci/run run it with `qemu-x86_64 -cpu qemu64` and `-cpu Haswell`), or against an
// installed package. Prints the kernel path and "N passed, N failed"; exits 1 on any failure.
//
//   node scripts/parity-check.js [package-dir] [--expect-path default|avx2|avx512]
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const expectIndex = args.indexOf('--expect-path');
const expectedPath = expectIndex >= 0 ? args[expectIndex + 1] : null;
const packageDir = args.find((a, i) => !a.startsWith('--') && i !== expectIndex + 1) ?? path.join(__dirname, '..');
const bn = require(path.resolve(packageDir));
const fixtures = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'test', 'fixtures', 'functional.json'), 'utf8'));

function decode(encoded) {
  if (encoded === null) return null;
  const bytes = Buffer.from(encoded.b64, 'base64');
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  return encoded.dtype === 'float32' ? new Float32Array(buffer) : new Float64Array(buffer);
}

// |actual - expected| <= rtol * max(scale(expected), floor), NaN/Inf exactly: the vitest suite's rule.
function close(actual, expected, rtol, floor = 0) {
  if (expected === null) return actual === null;
  if (actual === null || actual.length !== expected.length) return false;
  let scale = floor;
  for (const v of expected) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const allowed = rtol * (scale > 0 ? scale : 1);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    const a = actual[i];
    if (Number.isNaN(e) ? !Number.isNaN(a) : !Number.isFinite(e) ? a !== e : !(Math.abs(a - e) <= allowed)) return false;
  }
  return true;
}

let passed = 0;
const failures = [];
for (const c of fixtures.cases) {
  const rtol = c.dtype === 'float64' ? 1e-10 : 1e-5;
  const fresh = () => Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, decode(v)]));
  const format = c.memoryFormat ?? 'contiguous';
  const inputs = fresh();
  const forward = bn.batchNorm(
    { data: inputs.input, shape: c.shape, memoryFormat: format },
    { weight: inputs.weight, bias: inputs.bias, runningMean: inputs.runningMean, runningVar: inputs.runningVar,
      training: c.training, momentum: c.momentum, eps: c.eps },
  );
  const b = fresh();
  const backward = bn.batchNormBackward(
    { data: b.gradOutput, shape: c.shape, memoryFormat: c.gradOutputFormat ?? format },
    { data: b.input, shape: c.shape, memoryFormat: format },
    { weight: b.weight, runningMean: b.runningMean, runningVar: b.runningVar, saveMean: b.saveMean,
      saveInvstd: b.saveInvstd, training: c.training, eps: c.eps, outputMask: c.outputMask },
  );
  // grad_input may cancel to rounding noise of its terms, |dy| * invstd * |w|.
  let termScale = 0;
  for (let ch = 0; ch < c.shape[1]; ch++) {
    const invstd = c.training ? b.saveInvstd[ch] : 1 / Math.sqrt(b.runningVar[ch] + c.eps);
    const w = Math.abs(invstd * (b.weight ? b.weight[ch] : 1));
    if (Number.isFinite(w)) termScale = Math.max(termScale, w);
  }
  let dyScale = 0;
  for (const v of b.gradOutput) if (Number.isFinite(v)) dyScale = Math.max(dyScale, Math.abs(v));
  const e = Object.fromEntries(Object.entries(c.expected).map(([k, v]) => [k, decode(v)]));
  const checks = {
    output: close(forward.output.data, e.output, rtol),
    runningMean: close(inputs.runningMean, e.runningMean, rtol),
    runningVar: close(inputs.runningVar, e.runningVar, rtol),
    saveMean: close(forward.saveMean, e.saveMean, rtol),
    saveInvstd: close(forward.saveInvstd, e.saveInvstd, rtol),
    gradInput: close(backward.gradInput ? backward.gradInput.data : null, e.gradInput, rtol, dyScale * termScale),
    gradWeight: close(backward.gradWeight, e.gradWeight, rtol),
    gradBias: close(backward.gradBias, e.gradBias, rtol),
  };
  const bad = Object.entries(checks).filter(([, ok]) => !ok).map(([k]) => k);
  if (bad.length === 0) passed++;
  else failures.push(`${c.name}: ${bad.join(', ')}`);
}
const capability = bn.cpuCapability();
console.log(`kernel path ${capability}; ${fixtures.cases.length} PyTorch fixture cases`);
for (const failure of failures) console.log(`FAIL ${failure}`);
let ok = failures.length === 0;
if (expectedPath !== null && capability !== expectedPath) {
  console.log(`FAIL kernel path ${capability}, expected ${expectedPath}`);
  ok = false;
}
console.log(`${passed} passed, ${failures.length} failed`);
process.exit(ok ? 0 : 1);
