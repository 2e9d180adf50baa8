import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A native crash takes down one worker process and fails its file, not the whole run.
    pool: 'forks',
    testTimeout: 60_000,
  },
});
