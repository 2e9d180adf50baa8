// Large outputs the package allocates get transparent huge pages on Linux when their memory is fresh
// (lib/tensor.ts, newOutputLike; native/binding/fresh_pages.h): the kernel's first write then faults
// once per 2 MB instead of once per 4 KB.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native } from '../lib/native';

describe('huge pages for fresh outputs', () => {
  it('takes float arrays only, naming the argument', () => {
    expect(() => native().adviseHugePages(new Int32Array(4) as never)).toThrow(TypeError);
    expect(() => native().adviseHugePages(new Int32Array(4) as never)).toThrow(/array/);
    expect(() => native().adviseHugePages(undefined as never)).toThrow(TypeError);
  });

  it('gives no advice for spans without a whole 2 MB page, nor off Linux', () => {
    expect(native().adviseHugePages(new Float32Array(1024))).toBe(false);
    expect(native().adviseHugePages(new Float64Array(0))).toBe(false);
    if (process.platform !== 'linux') expect(native().adviseHugePages(new Float32Array(16 << 20))).toBe(false);
  });

  it.skipIf(process.platform !== 'linux')('advises a fresh 64 MB output, not resident memory, and the values are unchanged', () => {
    const script = path.join(__dirname, 'scripts', 'fresh-pages.js');
    const report = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 })) as {
      plainFill: { advisedBytes: number; faults: number };
      advice: { result: boolean; advisedBytes: number };
      advisedFill: { faults: number };
      residentAdvice: { result: boolean; advisedBytes: number };
      plainCall: { advisedBytes: number; faults: number };
      allocatingCall: { advisedBytes: number; faults: number };
      outputCorrect: boolean;
    };
    // The 2 MB-aligned interior of 64 MB: at least 62 MB. The advice is the system's flag on the
    // mapping; whether it then finds huge pages depends on its free memory, so the faults the advice
    // spares are measured in docs/PERFORMANCE.md, not required here.
    const interior = 62 << 20;
    expect(report.plainFill.advisedBytes).toBe(0);
    expect(report.advice.result).toBe(true);
    expect(report.advice.advisedBytes).toBeGreaterThanOrEqual(interior);
    expect(report.residentAdvice).toEqual({ result: false, advisedBytes: 0 });
    // An `out` array is the caller's: never advised. The package's allocating call advises its own output.
    expect(report.plainCall.advisedBytes).toBe(0);
    expect(report.allocatingCall.advisedBytes).toBeGreaterThanOrEqual(interior);
    expect(report.outputCorrect).toBe(true);
  });
});
