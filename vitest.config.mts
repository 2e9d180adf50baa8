import { defineConfig } from 'vitest/config';

// Suites that exercise the kernels: run once more per kernel path, forced through the environment.
const KERNEL_SUITES = [
  'test/parity.test.ts',
  'test/modules-parity.test.ts',
  'test/family-parity.test.ts',
  'test/simd.test.ts',
  'test/isa.test.ts',
  'test/kernel-plan.test.ts',
  'test/sync-batchnorm.test.ts',
];

export default defineConfig({
  test: {
    // A native crash takes down one worker process and fails its file, not the whole run.
    pool: 'forks',
    testTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      ...(['default', 'avx2', 'avx512'] as const).map((isa) => ({
        extends: true as const,
        test: { name: `isa-${isa}`, include: KERNEL_SUITES, env: { BATCHNORM_CPU_CAPABILITY: isa } },
      })),
    ],
  },
});
