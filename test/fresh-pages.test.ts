// Large outputs the package allocates get transparent huge pages on Linux when their memory is fresh
// (lib/tensor.ts, newOutputLike; native/binding/fresh_pages.h): the kernel's first write then faults
// once per 2 MB instead of once per 4 KB.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native } from '../lib/native';

const THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled';
/** Whether this system gives huge pages to memory advised for them ("[always]" or "[madvise]"). */
const hugePagesOnAdvice =
  process.platform === 'linux' && existsSync(THP_SETTING) && /\[(always|madvise)\]/.test(readFileSync(THP_SETTING, 'utf8'));

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

  it.skipIf(!hugePagesOnAdvice)('faults a fresh 64 MB output in far fewer pages, and the values are unchanged', () => {
    const script = path.join(__dirname, 'scripts', 'fresh-pages.js');
    const report = JSON.parse(execFileSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 })) as {
      plainFaults: number;
      advised: boolean;
      advisedFaults: number;
      residentAdvised: boolean;
      callFaults: number;
      outputCorrect: boolean;
    };
    // 64 MB in 4 KB pages is 16,384 faults; in 2 MB pages, 32 plus the unaligned edges.
    expect(report.plainFaults).toBeGreaterThan(12_000);
    expect(report.advised).toBe(true);
    expect(report.advisedFaults).toBeLessThan(report.plainFaults / 4);
    expect(report.residentAdvised).toBe(false);
    // The package's allocating call advises its output itself.
    expect(report.callFaults).toBeLessThan(report.plainFaults / 4);
    expect(report.outputCorrect).toBe(true);
  });
});
