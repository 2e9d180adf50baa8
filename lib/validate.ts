import { invalidType, invalidValue } from './errors';

const templates = new WeakMap<readonly string[], Record<string, undefined>>();

/** An object with each of `keys` as an own property set to undefined, made once per key list. */
function templateFor(keys: readonly string[]): Record<string, undefined> {
  let template = templates.get(keys);
  if (template === undefined) {
    template = Object.fromEntries(keys.map((key) => [key, undefined])) as Record<string, undefined>;
    templates.set(keys, template);
  }
  return template;
}

/**
 * Checks an options argument: undefined or an object with only the known keys. Returns a copy holding
 * every known key as an own property (undefined when absent), so an option is never read from a
 * (polluted) prototype. (A spread over a template: copying key by key, or into a null-prototype
 * dictionary, cost 0.1 to 0.3 µs more per call.)
 */
export function checkOptions<K extends string>(
  value: unknown,
  name: string,
  knownKeys: readonly K[],
  required = false,
): Partial<Record<K, unknown>> {
  if (value === undefined && !required) value = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw invalidType(name, 'an options object', value);
  }
  for (const key of Object.keys(value)) {
    if (!(knownKeys as readonly string[]).includes(key)) {
      throw new TypeError(`Unknown option '${key}' in ${name}; expected one of: ${knownKeys.join(', ')}`);
    }
  }
  // Every known key first (undefined), then the caller's own enumerable values over them.
  return { ...templateFor(knownKeys), ...value } as Partial<Record<K, unknown>>;
}

export function checkBoolean(value: unknown, name: string, fallback: boolean | undefined): boolean {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value);
  return value;
}

/** A finite number (TypeError for a non-number, RangeError for NaN or ±Infinity). */
export function checkFiniteNumber(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidType(name, 'a finite number', value);
  if (!Number.isFinite(value)) throw invalidValue(name, 'a finite number', value);
  return value;
}

/** eps: a finite number >= 0. */
export function checkEps(value: unknown, name: string, fallback: number): number {
  const eps = checkFiniteNumber(value, name, fallback);
  if (eps < 0) throw invalidValue(name, 'a finite number >= 0', value);
  return eps;
}
