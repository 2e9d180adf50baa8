// A one-pass reader for the plain headers that writers produce: ASCII, no escapes, every entry exactly
// { dtype, shape, data_offsets } with integer lists, `__metadata__` an object of plain strings. It reads
// the bytes directly and hands each tensor to the caller as it goes, so that nothing but the result is
// allocated. JSON.parse builds an object and two arrays per entry that all outlive several scavenges:
// on a 300,000-tensor header that was 1.4-2.0 s of fromSafetensors here, against 0.5-0.7 s this way
// (README, State files). Anything else returns false and the caller reads the header with JSON.parse,
// which also words every error: this reader never throws for malformed input.

/** Element types of the tensors this reader accepts. */
export type PlainDType = 'F32' | 'F64' | 'I64';

/**
 * Called once per tensor in file order. `name` is a string of the header text; `elements` is the product
 * of the shape (not yet checked against the offsets). Returning false abandons the plain reading.
 */
export type PlainTensorVisitor = (name: string, dtype: PlainDType, elements: number, begin: number, end: number) => boolean;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const DIGIT_0 = 0x30;
const FIRST_NON_ASCII = 0x80;

/** Longer digit runs may not be safe integers; those headers take the JSON.parse path. */
const MAX_DIGITS = 15;

const FIELD_DTYPE = 1;
const FIELD_SHAPE = 2;
const FIELD_OFFSETS = 4;
const ALL_FIELDS = FIELD_DTYPE | FIELD_SHAPE | FIELD_OFFSETS;

const NOT_PLAIN = -1;

function codesOf(word: string): number[] {
  return Array.from(word, (c) => c.charCodeAt(0));
}

const FIELD_NAMES: ReadonlyArray<readonly [number, number[]]> = [
  [FIELD_DTYPE, codesOf('dtype')],
  [FIELD_SHAPE, codesOf('shape')],
  [FIELD_OFFSETS, codesOf('data_offsets')],
];
const DTYPES: ReadonlyArray<readonly [PlainDType, number[]]> = [
  ['F32', codesOf('F32')],
  ['F64', codesOf('F64')],
  ['I64', codesOf('I64')],
];
const METADATA = codesOf('__metadata__');

function matches(bytes: Uint8Array, begin: number, end: number, word: number[]): boolean {
  if (end - begin !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (bytes[begin + k] !== word[k]) return false;
  return true;
}

/** Walks one header; positions are byte offsets, equal to character offsets since it is all ASCII. */
class PlainHeaderReader {
  private at = 0;
  /** The numbers of the last integer list read. */
  private readonly list: number[] = [];

  constructor(
    private readonly bytes: Uint8Array,
    private readonly text: string,
  ) {}

  read(visit: PlainTensorVisitor): boolean {
    if (!this.take(OPEN_BRACE)) return false;
    if (this.take(CLOSE_BRACE)) return this.atEnd();
    do {
      this.skipSpace();
      const nameEnd = this.stringEnd();
      if (nameEnd === NOT_PLAIN) return false;
      const nameBegin = this.at + 1;
      this.at = nameEnd + 1;
      if (!this.take(COLON)) return false;
      if (matches(this.bytes, nameBegin, nameEnd, METADATA)) {
        if (!this.metadata()) return false;
      } else if (!this.entry(this.text.slice(nameBegin, nameEnd), visit)) {
        return false;
      }
    } while (this.take(COMMA));
    return this.take(CLOSE_BRACE) && this.atEnd();
  }

  /** `{ "dtype": ..., "shape": [...], "data_offsets": [b, e] }` in any order, each field once. */
  private entry(name: string, visit: PlainTensorVisitor): boolean {
    if (!this.take(OPEN_BRACE)) return false;
    let seen = 0;
    let dtype: PlainDType | undefined;
    let elements = 1;
    let begin = 0;
    let end = 0;
    do {
      const field = this.fieldName();
      if (field === NOT_PLAIN || (seen & field) !== 0 || !this.take(COLON)) return false;
      seen |= field;
      if (field === FIELD_DTYPE) {
        dtype = this.dtype();
        if (dtype === undefined) return false;
      } else if (!this.integerList()) {
        return false;
      } else if (field === FIELD_SHAPE) {
        for (const extent of this.list) elements *= extent;
      } else {
        if (this.list.length !== 2) return false;
        begin = this.list[0]!;
        end = this.list[1]!;
      }
    } while (this.take(COMMA));
    if (!this.take(CLOSE_BRACE) || seen !== ALL_FIELDS) return false;
    return visit(name, dtype!, elements, begin, end);
  }

  /** An object of strings; its values are not kept. */
  private metadata(): boolean {
    if (!this.take(OPEN_BRACE)) return false;
    if (this.take(CLOSE_BRACE)) return true;
    do {
      if (!this.skipString() || !this.take(COLON) || !this.skipString()) return false;
    } while (this.take(COMMA));
    return this.take(CLOSE_BRACE);
  }

  private fieldName(): number {
    return this.oneOf(FIELD_NAMES) ?? NOT_PLAIN;
  }

  private dtype(): PlainDType | undefined {
    return this.oneOf(DTYPES);
  }

  /** The key of the word in `words` that the string starting here (after spaces) spells, or undefined. */
  private oneOf<K>(words: ReadonlyArray<readonly [K, number[]]>): K | undefined {
    this.skipSpace();
    const end = this.stringEnd();
    if (end === NOT_PLAIN) return undefined;
    const begin = this.at + 1;
    this.at = end + 1;
    for (const [key, word] of words) if (matches(this.bytes, begin, end, word)) return key;
    return undefined;
  }

  /** `[]` or `[n, ...]` of non-negative integers without sign, fraction or exponent, into `list`. */
  private integerList(): boolean {
    const list = this.list;
    list.length = 0;
    if (!this.take(OPEN_BRACKET)) return false;
    if (this.take(CLOSE_BRACKET)) return true;
    do {
      this.skipSpace();
      const bytes = this.bytes;
      const first = this.at;
      let value = 0;
      let digit = bytes[first]! - DIGIT_0;
      while (digit >= 0 && digit <= 9) {
        value = value * 10 + digit;
        digit = bytes[++this.at]! - DIGIT_0;
      }
      const digits = this.at - first;
      if (digits === 0 || digits > MAX_DIGITS || (digits > 1 && bytes[first] === DIGIT_0)) return false;
      list.push(value);
    } while (this.take(COMMA));
    return this.take(CLOSE_BRACKET);
  }

  private skipString(): boolean {
    this.skipSpace();
    const end = this.stringEnd();
    if (end === NOT_PLAIN) return false;
    this.at = end + 1;
    return true;
  }

  /** The position of the closing quote of the string that starts here, or NOT_PLAIN. */
  private stringEnd(): number {
    const bytes = this.bytes;
    if (bytes[this.at] !== QUOTE) return NOT_PLAIN;
    for (let i = this.at + 1; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (c === QUOTE) return i;
      if (c === BACKSLASH || c < SPACE || c >= FIRST_NON_ASCII) return NOT_PLAIN;
    }
    return NOT_PLAIN;
  }

  /** Consumes `code` after any spaces; false (nothing consumed past the spaces) if it is not next. */
  private take(code: number): boolean {
    this.skipSpace();
    if (this.bytes[this.at] !== code) return false;
    this.at++;
    return true;
  }

  private skipSpace(): void {
    const bytes = this.bytes;
    let c = bytes[this.at];
    while (c === SPACE || c === LF || c === CR || c === TAB) c = bytes[++this.at];
  }

  private atEnd(): boolean {
    this.skipSpace();
    return this.at === this.bytes.length;
  }
}

/**
 * Reads a plain header, calling `visit` for each tensor. False when the header is not plain (or `visit`
 * refused a tensor): the caller then reads it with JSON.parse, which accepts or words every other case.
 */
export function readPlainHeader(header: Uint8Array, visit: PlainTensorVisitor): boolean {
  // latin1 equals the text wherever the reader looks (it refuses any byte >= 0x80 in a string).
  const text = Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString('latin1');
  return new PlainHeaderReader(header, text).read(visit);
}
