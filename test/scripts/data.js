'use strict';
// What the child-process scripts of the SyncBatchNorm tests share: seeded data and a relative error.

/** A seeded array of `length` values in about [-1.5, 3.1), the same on every rank that asks. */
function randomArray(dtype, length, seed) {
  let state = seed >>> 0;
  const array = dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    array[i] = (state / 2 ** 32) * 4 - 1.5 + (i % 7) * 0.1;
  }
  return array;
}

/** max |actual - expected| over max(1, max |expected|). */
function maxError(actual, expected) {
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return worst / scale;
}

module.exports = { randomArray, maxError };
