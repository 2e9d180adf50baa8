// Facts about typed arrays and buffers read through the built-in getters, captured once at load: an
// own property (`length` redefined on an array), a polluted prototype or an array from another realm
// (vm.runInNewContext, an iframe-like context) cannot make them lie.

type Getter<T> = (this: unknown) => T;

function builtinGetter<T>(prototype: object, key: PropertyKey): Getter<T> {
  const getter = Object.getOwnPropertyDescriptor(prototype, key)?.get;
  if (getter === undefined) throw new Error(`batchnorm: the runtime has no built-in getter for ${String(key)}`);
  return getter as Getter<T>;
}

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const typedArrayTag = builtinGetter<string | undefined>(TypedArrayPrototype, Symbol.toStringTag);
const typedArrayLength = builtinGetter<number>(TypedArrayPrototype, 'length');
const typedArrayBuffer = builtinGetter<ArrayBufferLike>(TypedArrayPrototype, 'buffer');
const typedArrayByteOffset = builtinGetter<number>(TypedArrayPrototype, 'byteOffset');
const typedArrayByteLength = builtinGetter<number>(TypedArrayPrototype, 'byteLength');
const arrayBufferByteLength_ = builtinGetter<number>(ArrayBuffer.prototype, 'byteLength');
const arrayBufferResizable: Getter<boolean> | undefined = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')
  ?.get as Getter<boolean> | undefined;

/** The typed-array kind ('Float32Array', 'Uint8Array', ...) of any realm, or undefined for anything else. */
export function typedArrayKind(value: unknown): string | undefined {
  return ArrayBuffer.isView(value) ? typedArrayTag.call(value) : undefined;
}

/** Elements of a typed array (0 once its buffer is detached). */
export function elementCount(array: ArrayBufferView): number {
  return typedArrayLength.call(array);
}

export function bufferOf(array: ArrayBufferView): ArrayBufferLike {
  return typedArrayBuffer.call(array);
}

export function byteOffsetOf(array: ArrayBufferView): number {
  return typedArrayByteOffset.call(array);
}

export function byteLengthOf(array: ArrayBufferView): number {
  return typedArrayByteLength.call(array);
}

/** Bytes of a non-shared ArrayBuffer (0 once detached). */
export function arrayBufferByteLength(buffer: ArrayBuffer): number {
  return arrayBufferByteLength_.call(buffer);
}

const typedArraySubarray = (TypedArrayPrototype as { subarray: (begin: number, end: number) => ArrayBufferView }).subarray;

/** `array.subarray(begin, end)` through the built-in method. */
export function subarrayOf<A extends ArrayBufferView>(array: A, begin: number, end: number): A {
  return typedArraySubarray.call(array, begin, end) as A;
}

/** A SharedArrayBuffer (of any realm); those can be neither detached nor shrunk. */
export function isShared(buffer: ArrayBufferLike): boolean {
  try {
    arrayBufferByteLength_.call(buffer);
    return false;
  } catch {
    return true;
  }
}

/** A non-shared ArrayBuffer created with `maxByteLength`, which `resize()` can shrink. */
export function isResizable(buffer: ArrayBufferLike): boolean {
  return arrayBufferResizable !== undefined && !isShared(buffer) && arrayBufferResizable.call(buffer);
}

/** `Object.hasOwn` (Node 16.9+), without going through a property a caller could have replaced. */
const hasOwnProperty = Object.prototype.hasOwnProperty;
export function hasOwn(object: object, key: PropertyKey): boolean {
  return hasOwnProperty.call(object, key);
}

/** The value of an own property, or undefined: never an inherited (possibly polluted) one. */
export function ownValue(object: object, key: PropertyKey): unknown {
  return hasOwn(object, key) ? (object as Record<PropertyKey, unknown>)[key] : undefined;
}
