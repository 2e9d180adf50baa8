import { expect } from 'vitest';

import type { FloatArray } from '../../lib/index';

/** The relative tolerances of the parity suite: float64 1e-10, float32 1e-5 of the array's scale. */
export function toleranceFor(dtype: 'float32' | 'float64'): number {
  return dtype === 'float64' ? 1e-10 : 1e-5;
}

/** Largest |value| over the finite entries (the "scale" tolerances are relative to). */
export function scaleOf(values: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]!);
    if (Number.isFinite(v) && v > scale) scale = v;
  }
  return scale;
}

/** Largest |actual - expected| over entries where expected is finite; NaN/Inf must match exactly. */
export function maxError(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): number {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) expect.fail(`${label}[${i}]: expected NaN, got ${a}`);
    } else if (!Number.isFinite(e)) {
      if (a !== e) expect.fail(`${label}[${i}]: expected ${e}, got ${a}`);
    } else {
      if (!Number.isFinite(a)) expect.fail(`${label}[${i}]: expected ${e}, got ${a}`);
      worst = Math.max(worst, Math.abs(a - e));
    }
  }
  return worst;
}

/**
 * Asserts |actual - expected| <= rtol * scale element-wise (NaN/Inf exactly), where scale is the largest
 * finite |expected|, or `minScale` when the result is a cancellation of larger terms (then the size of
 * those terms is the scale that rounding errors are relative to).
 */
export function expectClose(
  actual: FloatArray | null,
  expected: ArrayLike<number> | null,
  rtol: number,
  label: string,
  minScale = 0,
): void {
  if (expected === null) {
    expect(actual, `${label}: expected null`).toBeNull();
    return;
  }
  expect(actual, `${label}: expected an array`).not.toBeNull();
  const error = maxError(actual!, expected, label);
  const scale = Math.max(scaleOf(expected), minScale);
  const allowed = rtol * (scale > 0 ? scale : 1);
  if (!(error <= allowed)) {
    expect.fail(`${label}: max error ${error} exceeds ${allowed} (rtol ${rtol} x scale ${scale})`);
  }
}
