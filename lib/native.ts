import * as os from 'node:os';
import * as path from 'node:path';

import type { NativeBinding } from '../binding';

/** Thrown when the native addon cannot be loaded on this machine; the message says what to do. */
export class BatchNormLoadError extends Error {
  override readonly name = 'BatchNormLoadError';
}

let binding: NativeBinding | undefined;

/** The C library, for load errors: prebuilds exist for glibc only. */
function libc(): string {
  if (process.platform !== 'linux') return process.platform;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const glibc = report?.header?.glibcVersionRuntime;
  return glibc ? `glibc ${glibc}` : 'musl or another non-glibc libc';
}

/**
 * The process's kernel-thread budget as this environment asks for it: `BATCHNORM_NUM_THREADS` (an
 * integer from 1 to 256, read at load as PyTorch reads `OMP_NUM_THREADS`), else the cores available.
 */
function requestedThreadBudget(): number {
  const value = process.env.BATCHNORM_NUM_THREADS;
  if (value === undefined || value === '') return Math.min(256, Math.max(1, os.availableParallelism()));
  const threads = /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(threads >= 1 && threads <= 256)) {
    throw new RangeError(`Expected an integer from 1 to 256 for the environment variable BATCHNORM_NUM_THREADS but received '${value}'`);
  }
  return threads;
}

/** The native module, loaded once on first use (a local build/Release first, then prebuilds/). */
export function native(): NativeBinding {
  if (binding === undefined) {
    const requested = requestedThreadBudget();
    const loaded = load();
    // The first environment of the process fixes the budget; each environment's calls default to all of it.
    // (An addon built before the budget, which only bench/ab.mjs loads, takes the count as it is.)
    const budget = typeof loaded.setThreadBudget === 'function' ? loaded.setThreadBudget(requested) : requested;
    loaded.setNumThreads(budget);
    binding = loaded;
  }
  return binding;
}

function load(): NativeBinding {
  // lib/*.ts (tests) and dist/*.js (the package) both sit one level below the package root.
  const root = path.join(__dirname, '..');
  // A specific build, e.g. the sanitizer build of `npm run test:sanitize`.
  const override = process.env.BATCHNORM_ADDON_PATH;
  if (override !== undefined && override !== '') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(path.resolve(override)) as NativeBinding;
    } catch (cause) {
      throw new BatchNormLoadError(
        `batchnorm: BATCHNORM_ADDON_PATH=${override} could not be loaded (${cause instanceof Error ? cause.message : String(cause)}); ` +
          'unset it to use the package\'s own build',
        { cause },
      );
    }
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
    return nodeGypBuild(root);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new BatchNormLoadError(
      `batchnorm: could not load the native addon for ${process.platform}-${process.arch} (${libc()}, ` +
        `Node ${process.versions.node}, N-API ${process.versions.napi}). Tried ${path.join(root, 'build', 'Release')} ` +
        `(a local build) and ${path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)} (prebuilt): ${detail}\n` +
        'Fix: build it from source with `npm rebuild batchnorm` (needs cmake >= 3.15 and a C++17 compiler; ' +
        'BATCHNORM_BUILD_FROM_SOURCE=1 forces a source build even where a prebuild exists).',
      { cause },
    );
  }
}
