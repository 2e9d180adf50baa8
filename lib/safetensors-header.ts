// Any JSON header of a safetensors file, read with JSON.parse into its tensor entries: the reader for
// headers the plain reader (safetensors-plain.ts) leaves alone, and the one that words every error.
import { ownValue } from './intrinsics';

/** One tensor of the header, its fields not yet validated. */
export interface RawHeaderEntry {
  name: string;
  dtype: unknown;
  shape: unknown;
  offsets: unknown;
}

/**
 * The header's tensor entries in file order, without `__metadata__` (checked to be an object of
 * strings, as the format requires). Only own properties are read: JSON.parse makes a `__proto__` key an
 * own property, and nothing is taken from a (polluted) prototype.
 */
export function scanHeader(text: string, fail: (reason: string) => Error): RawHeaderEntry[] {
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (cause) {
    throw fail(`header is not valid JSON (${(cause as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('header is not a JSON object');
  const entries: RawHeaderEntry[] = [];
  for (const name of Object.keys(header)) {
    const entry = (header as Record<string, unknown>)[name];
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail('__metadata__ is not an object of strings');
      for (const value of Object.values(entry)) {
        if (typeof value !== 'string') throw fail('__metadata__ is not an object of strings');
      }
      continue;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail(`entry ${name} is not an object`);
    entries.push({ name, dtype: ownValue(entry, 'dtype'), shape: ownValue(entry, 'shape'), offsets: ownValue(entry, 'data_offsets') });
  }
  return entries;
}
