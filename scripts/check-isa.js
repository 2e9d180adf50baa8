'use strict';
// Proves that AVX/AVX-512 instructions appear only in the ISA-specific kernels of the built addon:
// every function outside the batchnorm::cpu::avx2 / avx512 namespaces must be baseline x86-64 (no
// VEX/EVEX instruction, no ymm/zmm/mask register), and the AVX2 kernels must not use AVX-512. This
// also catches a template or inline function from a shared header that was instantiated inside an
// ISA-specific file and picked by the linker for everyone (a SIGILL on older CPUs).
//
//   node scripts/check-isa.js [path/to/batchnorm.node]
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const file = process.argv[2] ?? path.join(__dirname, '..', 'build', 'Release', 'batchnorm.node');
if (process.arch !== 'x64') {
  console.log(`check-isa: nothing to check on ${process.arch}`);
  process.exit(0);
}
// GNU objdump reads ELF; a macOS prebuild (Mach-O, magic 0xfeedfacf) is read with LLVM's objdump, whose
// listing has the same shape.
const machO = fs.readFileSync(file).readUInt32LE(0) === 0xfeedfacf;
const listing = execFileSync(machO ? 'llvm-objdump' : 'objdump', ['-d', '--no-show-raw-insn', '-C', file], {
  encoding: 'utf8',
  maxBuffer: 1 << 30,
});

// AT&T mnemonics of VEX/EVEX-encoded instructions start with "v"; these few legacy ones do too.
const LEGACY_V = new Set(['verr', 'verw', 'vmcall', 'vmlaunch', 'vmresume', 'vmxoff', 'vmxon', 'vmread', 'vmwrite']);
const functions = [];
let current = null;
for (const line of listing.split('\n')) {
  const header = /^[0-9a-f]+ <(.+)>:$/.exec(line);
  if (header) {
    current = { name: header[1], avx: [], avx512: [] };
    functions.push(current);
    continue;
  }
  const instruction = /^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$/.exec(line);
  if (!instruction || current === null) continue;
  const [, mnemonic, operands] = instruction;
  const usesAvx512 = /%zmm|%k[0-7]\b/.test(operands) || /^k(mov|and|or|not|xor|shift)/.test(mnemonic);
  const usesAvx = usesAvx512 || /%ymm/.test(operands) || (mnemonic.startsWith('v') && !LEGACY_V.has(mnemonic));
  if (usesAvx) current.avx.push(line.trim());
  if (usesAvx512) current.avx512.push(line.trim());
}

const isAvx2 = (name) => name.includes('batchnorm::cpu::avx2::');
const isAvx512 = (name) => name.includes('batchnorm::cpu::avx512::');
const problems = [];
for (const fn of functions) {
  if (isAvx512(fn.name)) continue;
  if (isAvx2(fn.name)) {
    if (fn.avx512.length > 0) problems.push(`${fn.name}: AVX-512 in the AVX2 kernels: ${fn.avx512[0]}`);
  } else if (fn.avx.length > 0) {
    problems.push(`${fn.name}: ${fn.avx.length} AVX instruction(s) outside the ISA kernels, e.g. ${fn.avx[0]}`);
  }
}
const isaFunctions = functions.filter((fn) => isAvx2(fn.name) || isAvx512(fn.name)).length;
if (isaFunctions === 0) problems.push('no ISA-specific kernels found: was the addon built for x86-64 with AVX paths?');
if (problems.length > 0) {
  console.error(`check-isa: ${file}\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(
  `check-isa: ${functions.length - isaFunctions} baseline functions free of AVX; ` +
    `${isaFunctions} functions in the avx2/avx512 kernels`,
);
