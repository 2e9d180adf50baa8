// How a module prints, as PyTorch's `repr(module)`:
// `BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)`.

/**
 * A number as Python's `repr(float)`: the shortest digits that read back to it (as JavaScript's), in
 * positional notation for decimal exponents -4 to 15 and scientific otherwise, with at least two
 * exponent digits (`1e-05`, `1e+16`) and `.0` after an integral value (`1.0`).
 */
export function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = value.toExponential().split('e') as [string, string];
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  const negative = mantissa.startsWith('-');
  const digits = mantissa.replace('-', '').replace('.', '');
  let text: string;
  if (exponent < 0) {
    text = `0.${'0'.repeat(-exponent - 1)}${digits}`;
  } else if (digits.length > exponent + 1) {
    text = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  } else {
    text = `${digits}${'0'.repeat(exponent + 1 - digits.length)}.0`;
  }
  return negative ? `-${text}` : text;
}

function pythonBool(value: boolean): string {
  return value ? 'True' : 'False';
}

export interface ReprFields {
  numFeatures: number;
  eps: number;
  momentum: number | null;
  affine: boolean;
  trackRunningStats: boolean;
}

/**
 * A number as Python prints what the same JavaScript literal would be there: an integral value as an
 * int (`momentum: 1` prints `momentum=1`, as `momentum=1` does in Python), any other as a float.
 */
function pythonNumber(value: number): string {
  return Number.isSafeInteger(value) ? String(value) : pythonFloat(value);
}

/** PyTorch's `_NormBase.extra_repr` inside `Name(...)`. */
export function moduleRepr(name: string, fields: ReprFields): string {
  const momentum = fields.momentum === null ? 'None' : pythonNumber(fields.momentum);
  return (
    `${name}(${fields.numFeatures}, eps=${pythonNumber(fields.eps)}, momentum=${momentum}, ` +
    `affine=${pythonBool(fields.affine)}, track_running_stats=${pythonBool(fields.trackRunningStats)})`
  );
}
