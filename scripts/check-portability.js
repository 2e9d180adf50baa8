'use strict';
// The portability gate of a Linux prebuild: the glibc symbol versions it needs must not exceed 2.28, nor
// its libstdc++ ones GCC 5's (GLIBCXX_3.4.21, CXXABI_1.3.9), the floors the README promises. (A
// std::exception_ptr once raised CXXABI to 1.3.13, GCC 11, unnoticed while this was only reported.) (The ISA check, scripts/check-isa.js, needs
// the symbols that prebuilds have stripped: npm run prebuild runs it on the build before stripping.)
//
//   node scripts/check-portability.js [path/to/batchnorm.node]
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const LIMITS = { GLIBC: [2, 28], GLIBCXX: [3, 4, 21], CXXABI: [1, 3, 9] };
const file = process.argv[2] ?? path.join(__dirname, '..', 'prebuilds', `linux-${process.arch}`, 'batchnorm.glibc.node');
const symbols = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });

const highest = {};
const offenders = [];
for (const match of symbols.matchAll(/\b(GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)?\s+(\S+)$/gm)) {
  const [, library, version, symbol] = match;
  const parts = version.split('.').map(Number);
  const current = highest[library];
  if (current === undefined || compare(parts, current.parts) > 0) highest[library] = { parts, version };
  if (compare(parts, LIMITS[library]) > 0) offenders.push(`${symbol} needs ${library}_${version}`);
}

function compare(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const floors = Object.entries(highest).map(([library, { version }]) => `${library}_${version}`).join(', ');
if (offenders.length > 0) {
  const limits = Object.entries(LIMITS).map(([library, parts]) => `${library}_${parts.join('.')}`).join(', ');
  console.error(`check-portability: ${file} needs more than ${limits}:\n${offenders.join('\n')}`);
  process.exit(1);
}
console.log(`check-portability: ${path.basename(file)} needs at most ${floors}`);
