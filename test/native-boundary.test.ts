// The native module re-checks what it relies on: calls that bypass lib/'s validation get a TypeError or
// RangeError, never a crash or a write out of bounds.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { describe, expect, it } from 'vitest';

import { native } from '../lib/native';
import { bytes } from './helpers/arrays';
import {
  BACKWARD_ARGUMENTS,
  BackwardArgument,
  FORWARD_ARGUMENTS,
  ForwardArgument,
  GRAD_INPUT_WITH_ARGUMENTS,
  GradInputWithArgument,
  GRAD_INPUT_BY_BLOCKS_ARGUMENTS,
  GradInputByBlocksArgument,
  NORMALIZE_BY_BLOCKS_ARGUMENTS,
  NormalizeByBlocksArgument,
  NORMALIZE_WITH_ARGUMENTS,
  NormalizeWithArgument,
  SHARD_GRADIENT_SUMS_ARGUMENTS,
  SHARD_STATISTICS_ARGUMENTS,
  ShardGradientSumsArgument,
  ShardStatisticsArgument,
  backwardArguments,
  forwardArguments,
  gradInputWithArguments,
  gradInputByBlocksArguments,
  normalizeByBlocksArguments,
  normalizeWithArguments,
  shardGradientSumsArguments,
  shardStatisticsArguments,
} from '../lib/native-arguments';

const f32 = (n: number) => new Float32Array(n);

type ForwardOverrides = Partial<Record<(typeof FORWARD_ARGUMENTS)[number], unknown>>;
type BackwardOverrides = Partial<Record<(typeof BACKWARD_ARGUMENTS)[number], unknown>>;

/** A valid training forward of a (2, 3, 2) tensor, with `overrides` by name (the builder places them). */
function forwardArgs(overrides: ForwardOverrides = {}): unknown[] {
  const valid = {
    input: f32(12), output: f32(12), batch: 2, channels: 3, spatial: 2, weight: null, bias: null,
    runningMean: f32(3), runningVar: f32(3), saveMean: f32(3), saveInvstd: f32(3), training: true, momentum: 0.1, eps: 1e-5,
  };
  return forwardArguments({ ...valid, ...overrides } as Parameters<typeof forwardArguments>[0]);
}

function callForward(args: unknown[]): void {
  (native().forward as (...a: unknown[]) => void)(...args);
}

describe('native forward re-checks', () => {
  it.each<[string, ForwardOverrides, typeof TypeError | typeof RangeError, string]>([
    ['integer input', { input: new Int32Array(12) }, TypeError, 'input must be a Float32Array or Float64Array'],
    ['missing output', { output: undefined }, TypeError, 'output must be a Float32Array or Float64Array'],
    ['output dtype', { output: new Float64Array(12) }, TypeError, 'output must be a Float32Array like the input'],
    ['short output', { output: f32(11) }, RangeError, 'output should contain 12 elements not 11'],
    ['sizes larger than the data', { batch: 1000 }, RangeError, 'input should contain 6000 elements not 12'],
    ['negative size', { channels: -3 }, RangeError, 'channels must be a non-negative safe integer'],
    ['fractional size', { spatial: 1.5 }, RangeError, 'spatial must be a non-negative safe integer'],
    ['NaN size', { batch: NaN }, RangeError, 'batch must be a non-negative safe integer'],
    ['overflowing sizes', { batch: 2 ** 40, channels: 2 ** 20, spatial: 2 ** 20 }, RangeError, 'tensor has too many elements'],
    ['string size', { batch: '2' }, TypeError, 'batch must be a number'],
    ['short saveMean', { saveMean: f32(2) }, RangeError, 'saveMean should contain 3 elements not 2'],
    ['missing saveInvstd when training', { saveInvstd: null }, TypeError, 'saveInvstd must be a Float32Array'],
    ['missing running stats in evaluation', { runningMean: null, training: false }, TypeError, 'runningMean must be a Float32Array'],
    ['training not boolean', { training: 1 }, TypeError, 'training must be a boolean'],
    ['eps not a number', { eps: null }, TypeError, 'eps must be a number'],
  ])('%s', (_label, overrides, errorType, message) => {
    const args = forwardArgs(overrides);
    expect(() => callForward(args)).toThrow(errorType);
    expect(() => callForward(args)).toThrow(message);
  });

  it('rejects partial overlap of output and input but allows exact aliasing', () => {
    const buffer = new Float32Array(16);
    expect(() => callForward(forwardArgs({ input: buffer.subarray(0, 12), output: buffer.subarray(2, 14) }))).toThrow(
      'input must not overlap output',
    );
    const same = buffer.subarray(0, 12);
    expect(() => callForward(forwardArgs({ input: same, output: same }))).not.toThrow();
  });

  it('rejects a written array that overlaps another argument', () => {
    const buffer = new Float32Array(24);
    expect(() => callForward(forwardArgs({ output: buffer.subarray(0, 12), saveMean: buffer.subarray(10, 13) }))).toThrow(
      RangeError,
    );
  });

  it('checks privateRunningStats, which changes where the running statistics are updated, not their values', async () => {
    const args = forwardArgs();
    args[ForwardArgument.privateRunningStats] = 1;
    expect(() => callForward(args)).toThrow(new TypeError('privateRunningStats must be a boolean'));
    // A training forward of 81,920 values (above the size async calls run inline), its running statistics
    // through the call's own copy, in place, and staged by an async call.
    const [batch, channels, spatial] = [4, 5, 4096];
    const input = Float32Array.from({ length: batch * channels * spatial }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7));
    const run = async (mode: 'copy' | 'private' | 'staged') => {
      const runningMean = Float32Array.from({ length: channels }, (_, c) => c * 0.25);
      const runningVar = Float32Array.from({ length: channels }, (_, c) => 1 + c);
      const output = f32(input.length);
      const call = forwardArguments({
        input, output, batch, channels, spatial, weight: null, bias: null, runningMean, runningVar,
        saveMean: f32(channels), saveInvstd: f32(channels), training: true, momentum: 0.3, eps: 1e-5,
        privateRunningStats: mode === 'private',
      });
      if (mode === 'staged') {
        const staged = (1 << ForwardArgument.runningMean) | (1 << ForwardArgument.runningVar);
        await native().forwardAsync(...call, staged);
      } else {
        native().forward(...call);
      }
      return [output, runningMean, runningVar].map((array) => Buffer.from(array.buffer).toString('hex'));
    };
    const viaCopy = await run('copy');
    expect(viaCopy[1]).not.toBe(Buffer.from(Float32Array.from([0, 0.25, 0.5, 0.75, 1]).buffer).toString('hex'));
    expect(await run('private')).toEqual(viaCopy);
    expect(await run('staged')).toEqual(viaCopy);
  });

  it('rejects a detached buffer', () => {
    const input = f32(12);
    structuredClone(input.buffer, { transfer: [input.buffer] });
    expect(() => callForward(forwardArgs({ input }))).toThrow('input should contain 12 elements not 0');
  });
});

describe('native backward re-checks', () => {
  /** A valid training backward of a (2, 3, 1) tensor, with `overrides` by name. */
  const base = (overrides: BackwardOverrides = {}): unknown[] => {
    const valid = {
      gradOutput: f32(6), input: f32(6), batch: 2, channels: 3, spatial: 1, weight: null, runningMean: null,
      runningVar: null, saveMean: f32(3), saveInvstd: f32(3), gradInput: f32(6), gradWeight: f32(3), gradBias: f32(3),
      training: true, eps: 1e-5,
    };
    return backwardArguments({ ...valid, ...overrides } as Parameters<typeof backwardArguments>[0]);
  };
  const call = (args: unknown[]) => (native().backward as (...a: unknown[]) => void)(...args);

  it('accepts a valid call', () => {
    expect(() => call(base())).not.toThrow();
  });

  const saveMean = f32(3);
  it.each<[string, BackwardOverrides, string]>([
    ['gradOutput dtype', { gradOutput: new Float64Array(6) }, 'gradOutput must be a Float32Array like the input'],
    ['short gradInput', { gradInput: f32(5) }, 'gradInput should contain 6 elements not 5'],
    ['missing saveMean', { saveMean: null }, 'saveMean must be a Float32Array'],
    ['gradWeight aliasing saveMean', { saveMean, gradWeight: saveMean }, 'must not overlap'],
  ])('%s', (_label, overrides, message) => {
    expect(() => call(base(overrides))).toThrow(message);
  });
});

describe('native gradInputByBlocks re-checks', () => {
  /** A valid call of a (2, 2, 4) float32 backward by blocks over a group of one, with `overrides` by name. */
  const base = (overrides: Record<string, unknown> = {}): unknown[] => {
    const valid = {
      gradOutput: f32(16), input: f32(16), gradInput: f32(16), batch: 2, channels: 2, spatial: 4, mean: new Float64Array(2),
      invstd: new Float64Array(2).fill(1), weight: null, sumDy: new Float64Array(2), dotp: new Float64Array(2), total: 8,
      channelBytes: 64, control: new Int32Array(8), exchange: new Float64Array(4), rank: 0, size: 1, slotLength: 4,
      progressWord: 6, timeoutMs: Infinity,
    };
    return gradInputByBlocksArguments({ ...valid, ...overrides } as Parameters<typeof gradInputByBlocksArguments>[0]);
  };
  const call = (args: unknown[]) => (native().gradInputByBlocks as (...a: unknown[]) => number)(...args);

  it('runs a group of one: 0 (done), the sums and gradInput of the two passes', () => {
    const gradOutput = Float32Array.from({ length: 16 }, (_, i) => i % 5);
    const input = Float32Array.from({ length: 16 }, (_, i) => i % 3);
    const mean = Float64Array.of(1, 0.5);
    const invstd = Float64Array.of(1.5, 2);
    const [gradInput, sumDy, dotp] = [f32(16), new Float64Array(2), new Float64Array(2)];
    expect(call(base({ gradOutput, input, mean, invstd, gradInput, sumDy, dotp }))).toBe(0);
    const [twoPassGrad, twoPassDy, twoPassDotp] = [f32(16), new Float64Array(2), new Float64Array(2)];
    native().shardGradientSums(gradOutput, input, 2, 2, 4, mean, twoPassDy, twoPassDotp);
    native().gradInputWith(gradOutput, input, twoPassGrad, 2, 2, 4, mean, invstd, null, twoPassDy, twoPassDotp, 8);
    expect(bytes(sumDy)).toEqual(bytes(twoPassDy));
    expect(bytes(dotp)).toEqual(bytes(twoPassDotp));
    expect(bytes(gradInput)).toEqual(bytes(twoPassGrad));
    // sum(dy) per channel, added up here: the rows (b, c) of 4 values.
    const expected = [0, 1].map((c) => [0, 1].reduce((sum, b) => sum + gradOutput.subarray((b * 2 + c) * 4, (b * 2 + c + 1) * 4).reduce((a, v) => a + v, 0), 0));
    expect(Array.from(sumDy)).toEqual(expected);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['control of floats', { control: new Float32Array(8) }, 'control must be an Int32Array'],
    ['progress words past the control array', { progressWord: 8 }, 'progressWord must leave size words of control after it'],
    ['a short exchange', { exchange: new Float64Array(3) }, 'exchange should contain 4 elements not 3'],
    ['slots too short for the sums', { slotLength: 3, exchange: new Float64Array(3) }, 'slotLength must be an integer of at least 2 * channels'],
    ['a rank outside the group', { rank: 1 }, 'rank must be an integer from 0 to size - 1'],
    ['no time-out given as 0', { timeoutMs: 0 }, 'timeoutMs must be positive'],
  ])('%s', (_label, overrides, message) => {
    expect(() => call(base(overrides))).toThrow(message);
  });
});

describe('native normalizeByBlocks re-checks', () => {
  const round = { channelBytes: 0, control: new Int32Array(8), exchange: new Float64Array(4), rank: 0, size: 1, slotLength: 4, progressWord: 6, timeoutMs: Infinity };
  /** A valid training forward of a (2, 2, 64) float32 tensor by blocks over a group of one, with `overrides` by name. */
  const base = (overrides: Record<string, unknown> = {}): unknown[] => {
    const valid = {
      input: Float32Array.from({ length: 256 }, (_, i) => (i * 7) % 11), output: f32(256), batch: 2, channels: 2, spatial: 64,
      weight: Float32Array.of(1.5, -2), bias: Float32Array.of(0.25, 3), eps: 1e-5, counts: Float64Array.of(128),
      mean: new Float64Array(2), m2: new Float64Array(2), invstd: new Float64Array(2), ...round, channelBytes: 512,
    };
    return normalizeByBlocksArguments({ ...valid, ...overrides } as Parameters<typeof normalizeByBlocksArguments>[0]);
  };
  const call = (args: unknown[]) => (native().normalizeByBlocks as (...a: unknown[]) => number)(...args);

  it('runs a group of one by blocks of one channel: 0 (done), the statistics and output of the two passes', () => {
    const args = base();
    expect(call(args)).toBe(0);
    const [input, output] = args as [Float32Array, Float32Array];
    const [mean, m2, invstd] = args.slice(9, 12) as Float64Array[];
    const [twoPassMean, twoPassM2, twoPassOutput] = [new Float64Array(2), new Float64Array(2), f32(256)];
    native().shardStatistics(input, 2, 2, 64, twoPassMean, twoPassM2);
    const twoPassInvstd = twoPassM2.map((value) => 1 / Math.sqrt(value / 128 + 1e-5));
    native().normalizeWith(input, twoPassOutput, 2, 2, 64, twoPassMean, twoPassInvstd, Float32Array.of(1.5, -2), Float32Array.of(0.25, 3));
    expect(bytes(mean!)).toEqual(bytes(twoPassMean));
    expect(bytes(m2!)).toEqual(bytes(twoPassM2));
    expect(bytes(invstd!)).toEqual(bytes(twoPassInvstd));
    expect(bytes(output)).toEqual(bytes(twoPassOutput));
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['counts of another length', { counts: Float64Array.of(64, 64) }, 'counts should contain 1 elements not 2'],
    ['a fractional count', { counts: Float64Array.of(127.5) }, 'counts must be non-negative integers'],
    ['no values at all', { counts: Float64Array.of(0) }, 'counts must add up to at least 1'],
    ['a negative eps', { eps: -1 }, 'eps must be non-negative'],
    ['control of floats', { control: new Float32Array(8) }, 'control must be an Int32Array'],
    ['mean inside output', ((output) => ({ output, mean: new Float64Array(output.buffer, 0, 2) }))(f32(256)), 'must not overlap'],
  ])('%s', (_label, overrides, message) => {
    expect(() => call(base(overrides))).toThrow(message);
  });
});

describe('argument positions shared by lib/ and native/', () => {
  const root = path.join(__dirname, '..');
  it('native/binding/argument_names.h is the header scripts/write-argument-names.js writes from these lists', () => {
    const { header, file } = require('../scripts/write-argument-names.js') as {
      header: (lists: Record<string, readonly string[]>) => string;
      file: string;
    };
    const lists = {
      FORWARD_ARGUMENTS,
      BACKWARD_ARGUMENTS,
      SHARD_STATISTICS_ARGUMENTS,
      NORMALIZE_WITH_ARGUMENTS,
      SHARD_GRADIENT_SUMS_ARGUMENTS,
      GRAD_INPUT_WITH_ARGUMENTS,
      NORMALIZE_BY_BLOCKS_ARGUMENTS,
      GRAD_INPUT_BY_BLOCKS_ARGUMENTS,
    };
    expect(readFileSync(file, 'utf8')).toBe(header(lists));
  });

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
    const body = new RegExp(`\\n  ${method}\\(([^)]*)\\): \\w+;`).exec(declarations)?.[1];
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
    ['NormalizeByBlocksArgument', 'normalizeByBlocks', NORMALIZE_BY_BLOCKS_ARGUMENTS, NormalizeByBlocksArgument, normalizeByBlocksArguments],
    ['GradInputByBlocksArgument', 'gradInputByBlocks', GRAD_INPUT_BY_BLOCKS_ARGUMENTS, GradInputByBlocksArgument, gradInputByBlocksArguments],
  ] as const)('%s: the C++ enum, binding.d.ts, lib/native-arguments.ts and its builder agree', (struct, method, names, positions, build) => {
    expect(enumNames(struct)).toEqual([...names]);
    expect(declaredNames(method)).toEqual([...names]);
    expect(names.map((n) => (positions as Record<string, number>)[n])).toEqual(names.map((_, i) => i));
    expect(builtOrder(build as (named: never) => unknown[], names)).toEqual([...names]);
  });
});
