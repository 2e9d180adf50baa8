// The size targets of the kernel redesign (issue "Kernel redesign"), and since the call-path issue for
// the TypeScript in lib/ too: no source over about 600 lines (native/: all lines; lib/: lines of code,
// as its public API carries long TSDoc), no function over about 80, blocks nested at most four deep
// inside a function (a lambda's or a nested function's body counts as a block). Functions are found on
// the sources with comments and literals removed, so the figures count code, not prose.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

const NATIVE = path.join(__dirname, '..', 'native');
const LIB = path.join(__dirname, '..', 'lib');
const MAX_FILE_LINES = 600;
const MAX_FUNCTION_LINES = 80;
const MAX_NESTING = 4;

function sourcesUnder(dir: string, pattern = /\.(cc|h)$/): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourcesUnder(full, pattern);
    return pattern.test(entry.name) ? [full] : [];
  });
}

/** The source with comments, string and character literals blanked (newlines kept, so lines still count). */
function codeOnly(source: string): string {
  return source.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\/|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/g, (match) =>
    match.replace(/[^\n]/g, ' '));
}

interface FunctionSize {
  where: string;
  lines: number;
  nesting: number;
}

// A body opens after a parameter list, optionally followed by qualifiers, a trailing return type or a
// constructor's initializer list; class, namespace, enum and initializer braces do not match.
const FUNCTION_HEAD = /\)\s*(?:const\s*|noexcept\s*|override\s*|final\s*|mutable\s*)*(?:->\s*[\w:<>,\s*&]+)?(?::[^;{}]*)?$/;
const NOT_A_FUNCTION = /\b(?:if|for|while|switch|catch|namespace|struct|class|enum|union)\b[^;{}]*$/;

/** Every outermost function body of a file (lambdas and blocks inside count as its nesting). */
function functionSizes(file: string, root = NATIVE): FunctionSize[] {
  const code = codeOnly(readFileSync(file, 'utf8'));
  const sizes: FunctionSize[] = [];
  let line = 1;
  let statementStart = 0;
  // Open braces: whether each opens a function body, and where.
  const open: { isFunction: boolean; line: number; depthInFunction: number }[] = [];
  let current: { line: number; maxDepth: number } | null = null;
  for (let i = 0; i < code.length; i++) {
    const ch = code[i];
    if (ch === '\n') line++;
    if (ch === '{') {
      const head = code.slice(statementStart, i);
      const inFunction = current !== null;
      const isFunction = !inFunction && FUNCTION_HEAD.test(head.trimEnd()) && !NOT_A_FUNCTION.test(head);
      const depthInFunction = inFunction ? open[open.length - 1]!.depthInFunction + 1 : 0;
      open.push({ isFunction, line, depthInFunction });
      if (isFunction) current = { line, maxDepth: 0 };
      else if (current !== null) current.maxDepth = Math.max(current.maxDepth, depthInFunction);
      statementStart = i + 1;
    } else if (ch === '}') {
      const closed = open.pop();
      if (closed?.isFunction && current !== null) {
        sizes.push({ where: `${path.relative(root, file)}:${current.line}`, lines: line - current.line + 1, nesting: current.maxDepth });
        current = null;
      }
      statementStart = i + 1;
    } else if (ch === ';') {
      statementStart = i + 1;
    }
  }
  return sizes;
}

describe('native sources stay within the size targets', () => {
  const files = sourcesUnder(NATIVE);
  const functions = files.flatMap((file) => functionSizes(file));

  it('finds the sources and their functions', () => {
    expect(files.length).toBeGreaterThan(20);
    // Sanity of the scan: the known long kernel functions are among those measured.
    expect(functions.length).toBeGreaterThan(200);
    expect(functions.some((f) => f.where.startsWith(path.join('kernel', 'cpu', 'parts', 'backward.h')))).toBe(true);
  });

  it(`has no file over ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((file) => ({ file: path.relative(NATIVE, file), lines: readFileSync(file, 'utf8').split('\n').length }))
      .filter(({ lines }) => lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines or nested over ${MAX_NESTING} levels`, () => {
    expect(functions.filter((f) => f.lines > MAX_FUNCTION_LINES)).toEqual([]);
    expect(functions.filter((f) => f.nesting > MAX_NESTING)).toEqual([]);
  });
});

describe('TypeScript sources stay within the size targets', () => {
  const files = sourcesUnder(LIB, /\.ts$/);
  const functions = files.flatMap((file) => functionSizes(file, LIB));

  it('finds the sources and their functions', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(functions.some((f) => f.where.startsWith('norm-base.ts'))).toBe(true);
  });

  it(`has no file over ${MAX_FILE_LINES} lines of code`, () => {
    // Code lines, not all lines: the public API's TSDoc is the user's reference and may be long.
    const long = files
      .map((file) => ({ file: path.relative(LIB, file), lines: codeOnly(readFileSync(file, 'utf8')).split('\n').filter((l) => l.trim() !== '').length }))
      .filter(({ lines }) => lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines or nested over ${MAX_NESTING} levels`, () => {
    expect(functions.filter((f) => f.lines > MAX_FUNCTION_LINES)).toEqual([]);
    expect(functions.filter((f) => f.nesting > MAX_NESTING)).toEqual([]);
  });
});
