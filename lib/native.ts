import * as os from 'node:os';
import * as path from 'node:path';

import type { NativeBinding } from '../binding';

/** Thrown when the native addon cannot be loaded on this machine; the message says what to do. */
export class BatchNormLoadError extends Error {
  override readonly name = 'BatchNormLoadError';
}

let binding: NativeBinding | undefined;

/** The native module, loaded once on first use (prebuilds/ first, then build/Release). */
export function native(): NativeBinding {
  if (binding === undefined) {
    binding = load();
    binding.setNumThreads(Math.min(256, Math.max(1, os.availableParallelism())));
  }
  return binding;
}

function load(): NativeBinding {
  // lib/*.ts (tests) and dist/*.js (the package) both sit one level below the package root.
  const root = path.join(__dirname, '..');
  // A specific build, e.g. the sanitizer build of `npm run test:sanitize`.
  const override = process.env.BATCHNORM_ADDON_PATH;
  if (override !== undefined && override !== '') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path.resolve(override)) as NativeBinding;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => NativeBinding;
    return nodeGypBuild(root);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new BatchNormLoadError(
      `batchnorm: could not load the native addon for ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}, N-API ${process.versions.napi}). Looked in ${path.join(root, 'prebuilds')} ` +
        `and ${path.join(root, 'build', 'Release')}: ${detail}\n` +
        'Fix: run `npm rebuild batchnorm` (needs cmake >= 3.15 and a C++17 compiler), or set ' +
        'BATCHNORM_BUILD_FROM_SOURCE=1 and reinstall.',
      { cause },
    );
  }
}
