'use strict';
// Checks of a musl (Alpine) prebuild, for which no musl Node.js runs here (README, Platforms): it needs
// only musl's libc.so, it exports only the N-API module entry points, and (x64) musl's own dynamic
// loader, /lib/ld-musl-x86_64.so.1, loads it: test/native/dlopen_check.c, built with musl-gcc (Debian's
// musl-tools) and given a stub for every N-API function the addon imports.
//   node scripts/check-musl.js <batchnorm.node> <x64|arm64>
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [file, arch] = process.argv.slice(2);
if (!file || !['x64', 'arm64'].includes(arch)) {
  console.error('usage: node scripts/check-musl.js <batchnorm.node> <x64|arm64>');
  process.exit(2);
}
const run = (tool, args) => execFileSync(tool, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
const problems = [];

const machine = /Machine:\s+(.*)/.exec(run('readelf', ['-h', file]))?.[1] ?? '';
if (!(arch === 'x64' ? /X86-64/ : /AArch64/).test(machine)) problems.push(`not an ELF for ${arch}: ${machine}`);
const needed = [...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
if (needed.join() !== 'libc.so') problems.push(`needs ${needed.join(', ')}, not musl's libc.so alone`);
const symbols = (flag) =>
  run('nm', ['-D', flag, file])
    .split('\n')
    .map((line) => line.trim().split(/\s+/).pop())
    .filter(Boolean);
const exported = symbols('--defined-only').sort();
if (exported.join() !== 'napi_register_module_v1,node_api_module_get_api_version_v1') {
  problems.push(`exports ${exported.slice(0, 10).join(', ')}, not the two N-API entry points`);
}

let loaded = 'not loaded (no arm64 musl loader here; test/native/core_check.cc ran under qemu-aarch64)';
if (arch === 'x64' && problems.length === 0) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'batchnorm-musl-'));
  try {
    const stubs = symbols('--undefined-only').filter((name) => /^(napi|node_api)_/.test(name));
    fs.writeFileSync(path.join(work, 'stubs.c'), stubs.map((name) => `void ${name}(void) {}\n`).join(''));
    const driver = path.join(work, 'dlopen_check');
    const source = path.join(__dirname, '..', 'test', 'native', 'dlopen_check.c');
    run('musl-gcc', ['-O1', '-rdynamic', source, path.join(work, 'stubs.c'), '-o', driver, '-ldl']);
    // musl-gcc's executables name /lib/ld-musl-x86_64.so.1 as their interpreter.
    loaded = run(driver, [path.resolve(file)]).trim();
  } catch (error) {
    problems.push(`musl's loader could not load it: ${error.stderr || error.message}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (problems.length > 0) {
  console.error(`check-musl: ${file}\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(`check-musl: ${arch} ELF needing only libc.so, exporting the 2 entry points; ${loaded}`);
