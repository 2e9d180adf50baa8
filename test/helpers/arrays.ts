// Small deterministic inputs and a bitwise fingerprint of typed arrays, shared by the tests.

/** A float32 ramp of `length` values (a sine, so channels differ), offset by `seed`. */
export function ramp(length: number, seed = 1): Float32Array {
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37 + seed) * 2 + 0.5);
}

/** The bytes of a typed array view, base64: equal strings mean bitwise-equal arrays. */
export function bytes(array: ArrayBufferView): string {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString('base64');
}
