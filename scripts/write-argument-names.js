#!/usr/bin/env node
// Writes native/binding/argument_names.h from the argument lists of lib/native-arguments.ts (built into
// dist/ by npm run build:ts), the one place an argument of a native call is named and placed. Run it
// after changing a list:
//   npm run build:ts && node scripts/write-argument-names.js
// With --check it writes nothing and exits 1 when the header differs (test/native-boundary.test.ts
// checks the same).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

/** The C++ struct of each list, in the header's order. */
const STRUCTS = [
  ['ForwardArgument', 'FORWARD_ARGUMENTS'],
  ['BackwardArgument', 'BACKWARD_ARGUMENTS'],
  ['ShardStatisticsArgument', 'SHARD_STATISTICS_ARGUMENTS', "The phases of a SyncBatchNorm step (kernel/split_phases.h)."],
  ['NormalizeWithArgument', 'NORMALIZE_WITH_ARGUMENTS'],
  ['ShardGradientSumsArgument', 'SHARD_GRADIENT_SUMS_ARGUMENTS'],
  ['GradInputWithArgument', 'GRAD_INPUT_WITH_ARGUMENTS'],
  ['NormalizeByBlocksArgument', 'NORMALIZE_BY_BLOCKS_ARGUMENTS'],
  ['GradInputByBlocksArgument', 'GRAD_INPUT_BY_BLOCKS_ARGUMENTS'],
];

/** The header's text from the lists (those of dist/native-arguments.js when not given). */
function header(lists = require('../dist/native-arguments.js')) {
  const parts = [
    '// The positions of the arguments of forward(), backward() and the split phases (binding.d.ts), by name.',
    '// Written by scripts/write-argument-names.js from the lists of lib/native-arguments.ts: edit those and',
    '// run it, never this file (test/native-boundary.test.ts checks that the two agree).',
    '#pragma once',
    '',
    '#include <cstddef>',
    '',
    'namespace batchnorm::binding {',
    '',
  ];
  for (const [struct, list, comment] of STRUCTS) {
    if (comment) parts.push(`// ${comment}`);
    parts.push(`struct ${struct} {`, '  enum : size_t {');
    for (const name of lists[list]) parts.push(`    ${name},`);
    parts.push('    count,', '  };', '};', '');
  }
  parts.push('}  // namespace batchnorm::binding', '');
  return parts.join('\n');
}

const file = path.join(__dirname, '..', 'native', 'binding', 'argument_names.h');

if (require.main === module) {
  const text = header();
  if (process.argv.includes('--check')) {
    const same = fs.readFileSync(file, 'utf8') === text;
    if (!same) console.error(`${path.relative(process.cwd(), file)} is not what scripts/write-argument-names.js writes`);
    process.exit(same ? 0 : 1);
  }
  fs.writeFileSync(file, text);
}

module.exports = { header, file };
