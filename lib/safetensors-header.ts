// The JSON header of a safetensors file, scanned directly into its tensor entries. JSON.parse would
// build one object per entry and per array, plus a 300,000-key dictionary, before the entries are
// read once and dropped: on a header of 300,000 tensors that alone took about 0.8 s here.
// Standard JSON only.

/** One tensor of the header, its fields not yet validated. */
export interface RawHeaderEntry {
  name: string;
  dtype: unknown;
  shape: unknown;
  offsets: unknown;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Scanner {
  private position = 0;

  constructor(
    private readonly text: string,
    private readonly fail: (reason: string) => Error,
  ) {}

  /** The next character after spaces, not consumed. */
  peek(): string | undefined {
    this.skipSpace();
    return this.text[this.position];
  }

  get done(): boolean {
    this.skipSpace();
    return this.position >= this.text.length;
  }

  skipSpace(): void {
    const text = this.text;
    let i = this.position;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.position = i;
  }

  /** Consumes `char` (after spaces) if it is next; true if it was. */
  take(char: string): boolean {
    this.skipSpace();
    if (this.text[this.position] !== char) return false;
    this.position++;
    return true;
  }

  expect(char: string): void {
    if (!this.take(char)) throw this.error(`expected '${char}'`);
  }

  error(reason: string): Error {
    return this.fail(`header is not valid JSON (${reason} at character ${this.position})`);
  }

  string(): string {
    this.expect('"');
    const text = this.text;
    const start = this.position;
    let escaped = false;
    let i = start;
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c) || c < 0x20) throw this.error('unterminated string');
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        i++;
      }
      i++;
    }
    this.position = i + 1;
    if (!escaped) return text.slice(start, i);
    try {
      return JSON.parse(text.slice(start - 1, i + 1)) as string;
    } catch {
      throw this.error('invalid escape in a string');
    }
  }

  value(): unknown {
    this.skipSpace();
    const c = this.text[this.position];
    if (c === '"') return this.string();
    if (c === '{') {
      const object = Object.create(null) as Record<string, unknown>;
      this.members(() => {
        const key = this.string();
        this.expect(':');
        object[key] = this.value();
      });
      return object;
    }
    if (c === '[') {
      const array: unknown[] = [];
      this.position++;
      if (this.take(']')) return array;
      do array.push(this.value());
      while (this.take(','));
      this.expect(']');
      return array;
    }
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.position)) {
        this.position += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.position;
    const match = NUMBER.exec(this.text);
    if (match === null) throw this.error('unexpected token');
    this.position += match[0].length;
    return Number(match[0]);
  }

  /** `{ member (, member)* }` or `{}`, calling `member` with the scanner before each key. */
  members(member: () => void): void {
    this.expect('{');
    if (this.take('}')) return;
    do member();
    while (this.take(','));
    this.expect('}');
  }
}

/**
 * The header's tensor entries in file order, without `__metadata__` (checked to be an object of
 * strings, as the format requires).
 */
export function scanHeader(text: string, fail: (reason: string) => Error): RawHeaderEntry[] {
  const scanner = new Scanner(text, fail);
  const entries: RawHeaderEntry[] = [];
  if (scanner.peek() !== '{') throw fail('header is not a JSON object');
  scanner.members(() => {
    const name = scanner.string();
    scanner.expect(':');
    if (name === '__metadata__') {
      const metadata = scanner.value();
      if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
        throw fail('__metadata__ is not an object of strings');
      }
      for (const value of Object.values(metadata)) {
        if (typeof value !== 'string') throw fail('__metadata__ is not an object of strings');
      }
      return;
    }
    const entry: RawHeaderEntry = { name, dtype: undefined, shape: undefined, offsets: undefined };
    if (!scanner.take('{')) throw fail(`entry ${name} is not an object`);
    if (!scanner.take('}')) {
      do {
        const key = scanner.string();
        scanner.expect(':');
        const value = scanner.value();
        if (key === 'dtype') entry.dtype = value;
        else if (key === 'shape') entry.shape = value;
        else if (key === 'data_offsets') entry.offsets = value;
      } while (scanner.take(','));
      scanner.expect('}');
    }
    entries.push(entry);
  });
  if (!scanner.done) throw scanner.error('unexpected text after the header object');
  return entries;
}
