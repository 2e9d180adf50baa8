// Keeping the memory of an async call valid until it settles (README "Async calls").
//
// The native side references every array, so the garbage collector keeps them; what JavaScript can
// still do is detach a buffer (transfer it: structuredClone, postMessage, ArrayBuffer.prototype.transfer)
// or shrink a resizable one, after which the new owner may free the memory while the kernel uses it.
// - Resizable non-shared ArrayBuffers are refused. SharedArrayBuffers can be neither detached nor
//   shrunk (growable ones only grow) and need nothing.
// - Other buffers the caller can reach are marked untransferable (worker_threads.markAsUntransferable),
//   where the runtime honours the mark on every path that detaches: Node 20 copies instead of
//   transferring, Node 24 refuses. The mark is permanent.
// - Where a marked buffer can still be detached (Node 22's ArrayBuffer.prototype.transfer ignores the
//   mark), the call is staged instead: the native side runs the kernel on copies it owns and writes
//   the results back on the JavaScript thread only if every array is still intact.
import { markAsUntransferable } from 'node:worker_threads';

import { invalidType } from './errors';
import { arrayBufferByteLength, bufferOf, elementCount, isResizable, isShared } from './intrinsics';
import type { FloatArray } from './tensor';

/** How this runtime's async calls protect their memory. */
export type AsyncMemoryGuard = 'untransferable' | 'staged';

type Detach = (this: ArrayBuffer) => ArrayBuffer;

function markHoldsOnThisRuntime(): boolean {
  const prototype = ArrayBuffer.prototype as unknown as Record<string, unknown>;
  for (const method of ['transfer', 'transferToFixedLength']) {
    const detach = prototype[method];
    if (typeof detach !== 'function') continue;
    const probe = new ArrayBuffer(8);
    markAsUntransferable(probe);
    try {
      (detach as Detach).call(probe);
    } catch {
      continue;
    }
    if (arrayBufferByteLength(probe) === 0) return false;
  }
  return true;
}

function runtimeGuard(): AsyncMemoryGuard {
  return markHoldsOnThisRuntime() ? 'untransferable' : 'staged';
}

function chooseGuard(): AsyncMemoryGuard {
  // BATCHNORM_ASYNC_MEMORY=staged: never mark the caller's buffers (also what the tests use to cover
  // both mechanisms on one runtime).
  if (process.env.BATCHNORM_ASYNC_MEMORY === 'staged') return 'staged';
  return runtimeGuard();
}

let guard: AsyncMemoryGuard | undefined;

/** The mechanism async calls use on this runtime, chosen once (see {@link setAsyncMemoryGuard}). */
export function asyncMemoryGuard(): AsyncMemoryGuard {
  guard ??= chooseGuard();
  return guard;
}

/**
 * How the async calls that follow keep the caller's buffers valid while they run:
 * - `'staged'`: never mark a caller's buffer; the kernel runs on copies the call owns, written back when
 *   it settles (two copies of each array: a few milliseconds for 100 MB). The caller's buffers stay
 *   transferable (`postMessage` to a worker, `structuredClone` with `transfer`) after the call, which
 *   a server handing tensors between threads needs. The same as `BATCHNORM_ASYNC_MEMORY=staged`.
 * - `'auto'` (the default): mark the buffers untransferable where the runtime honours the mark (Node 18,
 *   20 and 24: zero-copy, but Node 20 copies and Node 24 refuses a later transfer of those buffers),
 *   stage where it does not (Node 22).
 * Calls already started keep their mechanism; a buffer once marked stays marked.
 */
export function setAsyncMemoryGuard(mode: 'staged' | 'auto'): void {
  if (mode !== 'staged' && mode !== 'auto') throw invalidType('mode', "'staged' or 'auto'", mode);
  guard = mode === 'staged' ? 'staged' : runtimeGuard();
}

/** An array of an async call that the caller can reach, and its position among the native arguments. */
export interface CallerArray {
  name: string;
  array: FloatArray | null;
  argument: number;
}

/**
 * Refuses resizable buffers, then protects the caller's arrays. Returns the native `staged` mask: bit i
 * set means argument i runs on a copy (0 when the arrays were marked instead).
 */
export function protectAsyncArrays(arrays: readonly CallerArray[]): number {
  for (const { name, array } of arrays) {
    if (array !== null && isResizable(bufferOf(array))) {
      throw new TypeError(
        `${name} is backed by a resizable ArrayBuffer, which async calls refuse (it could shrink while the ` +
          'kernel runs): use a fixed-length ArrayBuffer, a SharedArrayBuffer, or the sync call',
      );
    }
  }
  const staged = asyncMemoryGuard() === 'staged';
  let mask = 0;
  for (const { array, argument } of arrays) {
    if (array === null || elementCount(array) === 0) continue;
    const buffer = bufferOf(array);
    if (isShared(buffer)) continue;
    if (staged) mask |= 1 << argument;
    else markAsUntransferable(buffer);
  }
  return mask;
}
