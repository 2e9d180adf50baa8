// What the benchmarks share: medians of repeated timings and reproducible inputs.

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Median milliseconds per call of fn (timed `batch` calls at a time), sampling for about budgetMs (at
 * least 5 samples) after a warm-up of up to 100 ms.
 */
export function measure(fn, batch, budgetMs) {
  const warmUntil = performance.now() + Math.min(100, budgetMs / 4);
  do fn(); while (performance.now() < warmUntil);
  const samples = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < 5 || (performance.now() < deadline && samples.length < 2000)) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6 / batch);
  }
  return median(samples);
}

/** A Float32Array of values in [-1, 1) from a linear congruential generator seeded with `seed`. */
export function randomArray(length, seed) {
  const array = new Float32Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    array[i] = state / 2 ** 31 - 1;
  }
  return array;
}
