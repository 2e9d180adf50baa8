// Memory: many training steps keep the process's resident set flat.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { expect, it } from 'vitest';

// After a 2,000-step warm-up, 40,000 steps (a tenth of them async: on the calling thread and on the
// pool) in two halves. The resident set still settles in the first half (up to 9 MB in runs here, more
// when every call runs on the JavaScript thread, without a leak: 80,000 steps grew no more than 20,000);
// a leak grows it in both. The second half may grow it by less than 8 MB: one leaked 2.3 KB output per
// step would be 46 MB there.
it('keeps RSS flat over 40,000 forward + backward steps', () => {
  const out = execFileSync(process.execPath, ['--expose-gc', path.join(__dirname, 'scripts', 'leak-check.js'), '40000'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const { firstHalfMb, secondHalfMb } = JSON.parse(out) as { firstHalfMb: number; secondHalfMb: number };
  expect(firstHalfMb).toBeLessThan(32);
  expect(secondHalfMb).toBeLessThan(8);
});
