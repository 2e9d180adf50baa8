'use strict';
// Whether fresh outputs are advised to use huge pages (test/fresh-pages.test.ts), in a child process of
// its own so that its memory map is its own. Prints one JSON line. The advice shows in /proc/self/smaps
// as the `hg` flag of a mapping, whether or not the system then finds huge pages for it; the faults
// counted beside are what the advice is for (fewer where huge pages were found), reported, not required.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const bn = require(root);
const { native } = require(path.join(root, 'dist', 'native.js'));

/** Bytes of this process's mappings advised for huge pages (VmFlags `hg`). */
function advisedBytes() {
  let total = 0;
  let size = 0;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) size = Number(BigInt(`0x${range[2]}`) - BigInt(`0x${range[1]}`));
    else if (line.startsWith('VmFlags:') && line.split(' ').includes('hg')) total += size;
  }
  return total;
}
/** Minor page faults of this process so far (field 10 of /proc/self/stat). */
function minorFaults() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}
/** How `work` changed the advised bytes and the fault count. */
function during(work) {
  const bytes = advisedBytes();
  const faults = minorFaults();
  const result = work();
  return { result, advisedBytes: advisedBytes() - bytes, faults: minorFaults() - faults };
}

// 64 MB: above glibc's largest heap-served size (32 MB), so every allocation is a fresh mapping.
const BYTES = 64 << 20;
const fresh = () => new Float32Array(Buffer.allocUnsafeSlow(BYTES).buffer, 0, BYTES / 4);

const plain = fresh();
const plainFill = during(() => plain.fill(1));
const advisedArray = fresh();
const advice = during(() => native().adviseHugePages(advisedArray));
const advisedFill = during(() => advisedArray.fill(1));
// Resident memory (the C allocator reusing it): no advice.
const residentAdvice = during(() => native().adviseHugePages(plain));

// The package's own calls: a (4, 4, 1024, 1024) evaluation writing a fresh 64 MB array nobody advised,
// then the same call allocating its output.
const shape = [4, 4, 1024, 1024];
const input = { data: advisedArray, shape };
const options = { runningMean: new Float32Array(4), runningVar: new Float32Array(4).fill(4), training: false };
bn.setNumThreads(1);
const unadvised = fresh();
const plainCall = during(() => bn.batchNorm(input, { ...options, out: unadvised }));
const allocatingCall = during(() => bn.batchNorm(input, options).output.data);
// advisedArray holds 1 everywhere: (1 - 0) / sqrt(4 + 1e-5).
const expected = Math.fround(1 / Math.sqrt(4 + 1e-5));
const output = allocatingCall.result;
const outputCorrect = output.length === BYTES / 4 && output.every((v) => Math.abs(v - expected) <= 1e-6);

console.log(
  JSON.stringify({
    plainFill: { advisedBytes: plainFill.advisedBytes, faults: plainFill.faults },
    advice: { result: advice.result, advisedBytes: advice.advisedBytes },
    advisedFill: { faults: advisedFill.faults },
    residentAdvice: { result: residentAdvice.result, advisedBytes: residentAdvice.advisedBytes },
    plainCall: { advisedBytes: plainCall.advisedBytes, faults: plainCall.faults },
    allocatingCall: { advisedBytes: allocatingCall.advisedBytes, faults: allocatingCall.faults },
    outputCorrect,
  }),
);
