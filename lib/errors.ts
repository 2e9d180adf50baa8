import { typedArrayKind } from './intrinsics';

/** A short description of a received value for error messages, e.g. `1.5 of type number`, `Int32Array`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return typedArrayKind(value) ?? 'a DataView';
  if (Array.isArray(value)) return 'an Array';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'null prototype'})`;
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}' of type string`;
  return `${String(value)} of type ${typeof value}`;
}

/** `Expected <what> for <name> but received <value>`, as a TypeError (wrong kind of value). */
export function invalidType(name: string, expected: string, received: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${name} but received ${describeValue(received)}`);
}

/** `Expected <what> for <name> but received <value>`, as a RangeError (right kind, wrong value). */
export function invalidValue(name: string, expected: string, received: unknown): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but received ${describeValue(received)}`);
}

/** Formats a shape the way PyTorch prints sizes: `[2, 3, 4]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Misuse of a module's state: a backward without a forward, a second backward for one forward, or a
 * synchronous call that reads or changes the state while async calls on the module are pending.
 */
export class BatchNormStateError extends Error {
  override readonly name = 'BatchNormStateError';
}
