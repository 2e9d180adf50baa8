// The native module re-checks what it relies on: calls that bypass lib/'s validation get a TypeError or
// RangeError, never a crash or a write out of bounds.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native } from '../lib/native';
import {
  BACKWARD_ARGUMENTS,
  BackwardArgument,
  FORWARD_ARGUMENTS,
  ForwardArgument,
  GRAD_INPUT_WITH_ARGUMENTS,
  GradInputWithArgument,
  NORMALIZE_WITH_ARGUMENTS,
  NormalizeWithArgument,
  SHARD_GRADIENT_SUMS_ARGUMENTS,
  SHARD_STATISTICS_ARGUMENTS,
  ShardGradientSumsArgument,
  ShardStatisticsArgument,
  backwardArguments,
  forwardArguments,
  gradInputWithArguments,
  normalizeWithArguments,
  shardGradientSumsArguments,
  shardStatisticsArguments,
} from '../lib/native-arguments';

const f32 = (n: number) => new Float32Array(n);

function forwardArgs(overrides: Record<number, unknown> = {}): unknown[] {
  // input, output, batch, channels, spatial, weight, bias, runningMean, runningVar, saveMean, saveInvstd,
  // training, momentum, eps
  const args: unknown[] = [f32(12), f32(12), 2, 3, 2, null, null, f32(3), f32(3), f32(3), f32(3), true, 0.1, 1e-5];
  for (const [index, value] of Object.entries(overrides)) args[Number(index)] = value;
  return args;
}

function callForward(args: unknown[]): void {
  (native().forward as (...a: unknown[]) => void)(...args);
}

describe('native forward re-checks', () => {
  it.each<[string, Record<number, unknown>, typeof TypeError | typeof RangeError, string]>([
    ['integer input', { 0: new Int32Array(12) }, TypeError, 'input must be a Float32Array or Float64Array'],
    ['missing output', { 1: undefined }, TypeError, 'output must be a Float32Array or Float64Array'],
    ['output dtype', { 1: new Float64Array(12) }, TypeError, 'output must be a Float32Array like the input'],
    ['short output', { 1: f32(11) }, RangeError, 'output should contain 12 elements not 11'],
    ['sizes larger than the data', { 2: 1000 }, RangeError, 'input should contain 6000 elements not 12'],
    ['negative size', { 3: -3 }, RangeError, 'channels must be a non-negative safe integer'],
    ['fractional size', { 4: 1.5 }, RangeError, 'spatial must be a non-negative safe integer'],
    ['NaN size', { 2: NaN }, RangeError, 'batch must be a non-negative safe integer'],
    ['overflowing sizes', { 2: 2 ** 40, 3: 2 ** 20, 4: 2 ** 20 }, RangeError, 'tensor has too many elements'],
    ['string size', { 2: '2' }, TypeError, 'batch must be a number'],
    ['short saveMean', { 9: f32(2) }, RangeError, 'saveMean should contain 3 elements not 2'],
    ['missing saveInvstd when training', { 10: null }, TypeError, 'saveInvstd must be a Float32Array'],
    ['missing running stats in evaluation', { 7: null, 11: false }, TypeError, 'runningMean must be a Float32Array'],
    ['training not boolean', { 11: 1 }, TypeError, 'training must be a boolean'],
    ['eps not a number', { 13: null }, TypeError, 'eps must be a number'],
  ])('%s', (_label, overrides, errorType, message) => {
    const args = forwardArgs(overrides);
    expect(() => callForward(args)).toThrow(errorType);
    expect(() => callForward(args)).toThrow(message);
  });

  it('rejects partial overlap of output and input but allows exact aliasing', () => {
    const buffer = new Float32Array(16);
    expect(() => callForward(forwardArgs({ 0: buffer.subarray(0, 12), 1: buffer.subarray(2, 14) }))).toThrow(
      'input must not overlap output',
    );
    const same = buffer.subarray(0, 12);
    expect(() => callForward(forwardArgs({ 0: same, 1: same }))).not.toThrow();
  });

  it('rejects a written array that overlaps another argument', () => {
    const buffer = new Float32Array(24);
    expect(() => callForward(forwardArgs({ 1: buffer.subarray(0, 12), 9: buffer.subarray(10, 13) }))).toThrow(
      RangeError,
    );
  });

  it('rejects a detached buffer', () => {
    const input = f32(12);
    structuredClone(input.buffer, { transfer: [input.buffer] });
    expect(() => callForward(forwardArgs({ 0: input }))).toThrow('input should contain 12 elements not 0');
  });
});

describe('native backward re-checks', () => {
  // gradOutput, input, batch, channels, spatial, weight, runningMean, runningVar, saveMean, saveInvstd,
  // gradInput, gradWeight, gradBias, training, eps
  const base = (): unknown[] => [f32(6), f32(6), 2, 3, 1, null, null, null, f32(3), f32(3), f32(6), f32(3), f32(3), true, 1e-5];
  const call = (args: unknown[]) => (native().backward as (...a: unknown[]) => void)(...args);

  it('accepts a valid call', () => {
    expect(() => call(base())).not.toThrow();
  });

  it.each<[string, number, unknown, string]>([
    ['gradOutput dtype', 0, new Float64Array(6), 'gradOutput must be a Float32Array like the input'],
    ['short gradInput', 10, f32(5), 'gradInput should contain 6 elements not 5'],
    ['missing saveMean', 8, null, 'saveMean must be a Float32Array'],
    ['gradWeight aliasing saveMean', 11, 'alias', 'must not overlap'],
  ])('%s', (_label, index, value, message) => {
    const args = base();
    args[index] = value === 'alias' ? args[8] : value;
    expect(() => call(args)).toThrow(message);
  });
});

describe('argument positions shared by lib/ and native/', () => {
  const root = path.join(__dirname, '..');
  /** The member names of `struct <name>`'s enum in native/binding/argument_names.h, in order. */
  function enumNames(name: string): string[] {
    const header = readFileSync(path.join(root, 'native/binding/argument_names.h'), 'utf8');
    const body = new RegExp(`struct ${name} \\{\\s*enum : size_t \\{([^}]*)\\}`).exec(header)?.[1];
    expect(body, `${name} in argument_names.h`).toBeDefined();
    return body!.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'count');
  }
  /** The parameter names of `method(...)` in binding.d.ts, in order. */
  function declaredNames(method: string): string[] {
    const declarations = readFileSync(path.join(root, 'binding.d.ts'), 'utf8');
    const body = new RegExp(`\\n  ${method}\\(([^)]*)\\): void;`).exec(declarations)?.[1];
    expect(body, `${method} in binding.d.ts`).toBeDefined();
    return body!.split(',').map((s) => s.split(':')[0]!.trim()).filter((s) => s !== '');
  }
  /** What a builder puts at each position, given each name as its own value. */
  function builtOrder(build: (named: never) => unknown[], names: readonly string[]): unknown[] {
    return build(Object.fromEntries(names.map((n) => [n, n])) as never);
  }

  it.each([
    ['ForwardArgument', 'forward', FORWARD_ARGUMENTS, ForwardArgument, forwardArguments],
    ['BackwardArgument', 'backward', BACKWARD_ARGUMENTS, BackwardArgument, backwardArguments],
    ['ShardStatisticsArgument', 'shardStatistics', SHARD_STATISTICS_ARGUMENTS, ShardStatisticsArgument, shardStatisticsArguments],
    ['NormalizeWithArgument', 'normalizeWith', NORMALIZE_WITH_ARGUMENTS, NormalizeWithArgument, normalizeWithArguments],
    ['ShardGradientSumsArgument', 'shardGradientSums', SHARD_GRADIENT_SUMS_ARGUMENTS, ShardGradientSumsArgument, shardGradientSumsArguments],
    ['GradInputWithArgument', 'gradInputWith', GRAD_INPUT_WITH_ARGUMENTS, GradInputWithArgument, gradInputWithArguments],
  ] as const)('%s: the C++ enum, binding.d.ts, lib/native-arguments.ts and its builder agree', (struct, method, names, positions, build) => {
    expect(enumNames(struct)).toEqual([...names]);
    expect(declaredNames(method)).toEqual([...names]);
    expect(names.map((n) => (positions as Record<string, number>)[n])).toEqual(names.map((_, i) => i));
    expect(builtOrder(build as (named: never) => unknown[], names)).toEqual([...names]);
  });
});
