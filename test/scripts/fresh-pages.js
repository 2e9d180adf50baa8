'use strict';
// Whether fresh outputs get huge pages (test/fresh-pages.test.ts), in a child process of its own so that
// its page-fault counts are its own. Prints one JSON line.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const bn = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

/** Minor page faults of this process so far (field 10 of /proc/self/stat). */
function minorFaults() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}
function faultsDuring(work) {
  const before = minorFaults();
  work();
  return minorFaults() - before;
}

// 64 MB: above glibc's largest heap-served size (32 MB), so every allocation is a fresh mapping.
const BYTES = 64 << 20;
const fresh = () => new Float32Array(Buffer.allocUnsafeSlow(BYTES).buffer, 0, BYTES / 4);

const plain = fresh();
const plainFaults = faultsDuring(() => plain.fill(1));
const advisedArray = fresh();
const advised = native().adviseHugePages(advisedArray);
const advisedFaults = faultsDuring(() => advisedArray.fill(1));
// Resident memory (the C allocator reusing it): no advice.
const residentAdvised = native().adviseHugePages(plain);

// The package's own allocating call: a (4, 4, 1024, 1024) evaluation writes a fresh 64 MB output.
const shape = [4, 4, 1024, 1024];
const input = { data: advisedArray, shape };
const options = { runningMean: new Float32Array(4), runningVar: new Float32Array(4).fill(4), training: false };
bn.setNumThreads(1);
let output;
const callFaults = faultsDuring(() => {
  output = bn.batchNorm(input, options).output.data;
});
// advisedArray holds 1 everywhere: (1 - 0) / sqrt(4 + 1e-5).
const expected = Math.fround(1 / Math.sqrt(4 + 1e-5));
const outputCorrect = output.length === BYTES / 4 && output.every((v) => Math.abs(v - expected) <= 1e-6);

console.log(JSON.stringify({ plainFaults, advised, advisedFaults, residentAdvised, callFaults, outputCorrect }));
