'use strict';
// The portability gate of a Linux prebuild: the glibc symbol versions it needs must not exceed 2.28,
// and its libstdc++ (GLIBCXX / CXXABI) floor is reported. (The ISA check, scripts/check-isa.js, needs
// the symbols that prebuilds have stripped: npm run prebuild runs it on the build before stripping.)
//
//   node scripts/check-portability.js [path/to/batchnorm.node]
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const GLIBC_LIMIT = [2, 28];
const file = process.argv[2] ?? path.join(__dirname, '..', 'prebuilds', `linux-${process.arch}`, 'batchnorm.glibc.node');
const symbols = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });

const highest = {};
const offenders = [];
for (const match of symbols.matchAll(/\b(GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)?\s+(\S+)$/gm)) {
  const [, library, version, symbol] = match;
  const parts = version.split('.').map(Number);
  const current = highest[library];
  if (current === undefined || compare(parts, current.parts) > 0) highest[library] = { parts, version };
  if (library === 'GLIBC' && compare(parts, GLIBC_LIMIT) > 0) offenders.push(`${symbol} needs GLIBC_${version}`);
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
  console.error(`check-portability: ${file} needs a glibc newer than ${GLIBC_LIMIT.join('.')}:\n${offenders.join('\n')}`);
  process.exit(1);
}
console.log(`check-portability: ${path.basename(file)} needs at most ${floors}`);
