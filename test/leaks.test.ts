// Memory: many training steps keep the process's resident set flat.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

import { expect, it } from 'vitest';

// The bound: after a 2,000-step warm-up, 20,000 more steps (a tenth of them async) may grow the resident
// set by less than 16 MB (one leaked 2.3 KB output per step would be 45 MB).
it('keeps RSS flat over 20,000 forward + backward steps', () => {
  const out = execFileSync(process.execPath, ['--expose-gc', path.join(__dirname, 'scripts', 'leak-check.js'), '20000'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const { growthMb } = JSON.parse(out) as { growthMb: number };
  expect(growthMb).toBeLessThan(16);
});
