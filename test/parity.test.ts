// Functional forward and backward against PyTorch fixtures (test/fixtures/generate.py).
import { describe, expect, it } from 'vitest';

import { batchNorm, batchNormBackward, cpuCapability, type FloatArray } from '../lib/index';
import { expectClose, maxError, scaleOf, toleranceFor } from './helpers/compare';
import { type FixtureCase, loadFunctionalCases } from './helpers/fixtures';

const cases = loadFunctionalCases();

/**
 * float32: our error against the exact answer is at most PyTorch's own float32 error, or `floor` (by
 * default half an ulp of the array's scale: statistics and gradients are rounded once from double). (In
 * float64 both are a few ulps and which is smaller is a coin toss; the 1e-10 bound is the contract.)
 */
function expectAtLeastAsAccurateAsTorch(
  ours: FloatArray | null,
  torch: FloatArray | null,
  expected: Float64Array | null,
  label: string,
  floor = expected === null ? 0 : 2 ** -24 * scaleOf(expected),
): void {
  if (ours === null || torch === null || expected === null) return;
  const ourError = maxError(ours, expected, label);
  const torchError = maxError(torch, expected, `${label} (torch)`);
  expect(ourError, `${label}: ours ${ourError} vs PyTorch ${torchError}`).toBeLessThanOrEqual(
    Math.max(torchError, floor) * 1.0001,
  );
}

/**
 * The error bound of the float32 normalized output where the SIMD paths compute it in float arithmetic
 * (native/kernel/cpu/batch_norm_kernel.cc, "float32 normalization in float arithmetic"):
 * d = x - mean_f is rounded unless x is within a factor of two of the mean, the shift t (the bias, with
 * the mean's rounding folded in) is rounded to float and the inner fma rounds about t, the outer fma
 * rounds about y. With u = 2^-24: |error| <= u (|x - mean| |alpha| + 2 |bias| + |y|), plus terms of order
 * u^2. The largest of that over the array (1% for the u^2 terms), or 0 where alpha is not finite (the
 * kernels then stay in double).
 */
function floatOutputBound(fixture: FixtureCase): number {
  const inputs = fixture.inputs();
  const x = inputs.input!;
  const y = fixture.expected.output!;
  const channels = fixture.shape[1]!;
  const spatial = fixture.shape.slice(2).reduce((a, b) => a * b, 1);
  let bound = 0;
  for (let i = 0; i < x.length; i++) {
    const c = fixture.memoryFormat === 'channelsLast' ? i % channels : Math.floor(i / spatial) % channels;
    const weight = inputs.weight?.[c] ?? 1;
    const mean = fixture.training ? fixture.expected.saveMean![c]! : inputs.runningMean![c]!;
    const invstd = fixture.training
      ? fixture.expected.saveInvstd![c]!
      : 1 / Math.sqrt(inputs.runningVar![c]! + fixture.eps);
    const alpha = weight * invstd;
    const terms = Math.abs(x[i]! - mean) * Math.abs(alpha) + 2 * Math.abs(inputs.bias?.[c] ?? 0) + Math.abs(y[i]!);
    if (!Number.isFinite(alpha)) return 0;
    if (Number.isFinite(terms)) bound = Math.max(bound, terms);
  }
  return 2 ** -24 * bound * 1.01;
}

/** `values` of a tensor of `shape` stored in `format`, in contiguous (N, C, spatial) order. */
function inContiguousOrder(values: ArrayLike<number>, shape: number[], format: 'contiguous' | 'channelsLast'): Float64Array {
  const result = Float64Array.from(values);
  if (format === 'contiguous') return result;
  const channels = shape[1]!;
  const spatial = shape.slice(2).reduce((a, b) => a * b, 1);
  for (let i = 0; i < values.length; i++) {
    const s = Math.floor(i / channels) % spatial, c = i % channels, n = Math.floor(i / (channels * spatial));
    result[(n * channels + c) * spatial + s] = values[i]!;
  }
  return result;
}

/**
 * The error bound of float32 grad_input where the SIMD paths compute it in float arithmetic
 * (native/kernel/cpu/parts/float_passes.h, GradientInFloats): with u = 2^-24, S = w invstd, P = the
 * projection sum((x - mean) dy) invstd^2 / n and K = mean(dy) S (sums in double over the same inputs),
 * |error| <= u (2 |dy S| + 2 |K| + 2 |(x - mean) P S| + |dx|), plus terms of order u^2 (1%, and the
 * center's own rounding, u^2 |mean P S|). Evaluation: dx = dy S in the normalization's form, within
 * u (|dy S| + |dx|), which the same formula covers with K = P = 0. The largest over the elements; 0
 * where a coefficient is not finite (the kernels then stay in double).
 */
function floatGradInputBound(fixture: FixtureCase): number {
  const inputs = fixture.inputs();
  const { shape } = fixture;
  const x = inContiguousOrder(inputs.input!, shape, fixture.memoryFormat);
  const dy = inContiguousOrder(inputs.gradOutput!, shape, fixture.gradOutputFormat ?? fixture.memoryFormat);
  const dx = inContiguousOrder(fixture.expected.gradInput!, shape, fixture.memoryFormat);
  const channels = shape[1]!;
  const spatial = shape.slice(2).reduce((a, b) => a * b, 1);
  const n = x.length / channels;
  let bound = 0;
  for (let c = 0; c < channels; c++) {
    const center = fixture.training ? inputs.saveMean![c]! : inputs.runningMean![c]!;
    const invstd = fixture.training ? inputs.saveInvstd![c]! : 1 / Math.sqrt(inputs.runningVar![c]! + fixture.eps);
    const scale = invstd * (inputs.weight?.[c] ?? 1);
    const indices: number[] = [];
    for (let b = 0; b < shape[0]!; b++) for (let s = 0; s < spatial; s++) indices.push((b * channels + c) * spatial + s);
    let sumDy = 0;
    let dotp = 0;
    for (const i of indices) {
      sumDy += dy[i]!;
      dotp += (x[i]! - center) * dy[i]!;
    }
    const projection = fixture.training ? (dotp * invstd * invstd) / n : 0;
    const gradMean = fixture.training ? sumDy / n : 0;
    const fixed = 2 * Math.abs(gradMean * scale) + 2 ** -23 * Math.abs(center * projection * scale);
    for (const i of indices) {
      const terms =
        2 * Math.abs(dy[i]! * scale) + fixed + 2 * Math.abs((x[i]! - center) * projection * scale) + Math.abs(dx[i]!);
      if (!Number.isFinite(terms)) return 0;
      bound = Math.max(bound, terms);
    }
  }
  return 2 ** -24 * bound * 1.01;
}

/**
 * The size of the terms grad_input is a difference of: |dy| * invstd * |w|. With n = 2 values per channel,
 * for example, grad_input is zero in exact arithmetic and only rounding noise of that size remains.
 */
function gradInputTermScale(fixture: FixtureCase): number {
  const inputs = fixture.inputs();
  let largest = 0;
  for (let c = 0; c < fixture.shape[1]!; c++) {
    const invstd = fixture.training
      ? inputs.saveInvstd![c]!
      : 1 / Math.sqrt(inputs.runningVar![c]! + fixture.eps);
    largest = Math.max(largest, Math.abs(invstd * (inputs.weight?.[c] ?? 1)));
  }
  return scaleOf(inputs.gradOutput!) * (Number.isFinite(largest) ? largest : 0);
}

function runForward(fixture: FixtureCase) {
  const inputs = fixture.inputs();
  const result = batchNorm(
    { data: inputs.input!, shape: fixture.shape, memoryFormat: fixture.memoryFormat },
    {
      weight: inputs.weight,
      bias: inputs.bias,
      runningMean: inputs.runningMean,
      runningVar: inputs.runningVar,
      training: fixture.training,
      momentum: fixture.momentum,
      eps: fixture.eps,
    },
  );
  return { ...result, runningMean: inputs.runningMean, runningVar: inputs.runningVar };
}

function runBackward(fixture: FixtureCase) {
  const inputs = fixture.inputs();
  return batchNormBackward(
    { data: inputs.gradOutput!, shape: fixture.shape, memoryFormat: fixture.gradOutputFormat ?? fixture.memoryFormat },
    { data: inputs.input!, shape: fixture.shape, memoryFormat: fixture.memoryFormat },
    {
      weight: inputs.weight,
      runningMean: inputs.runningMean,
      runningVar: inputs.runningVar,
      saveMean: inputs.saveMean,
      saveInvstd: inputs.saveInvstd,
      training: fixture.training,
      eps: fixture.eps,
      outputMask: fixture.outputMask,
    },
  );
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

/** Largest error of `values` against `expected`, in ulps of the largest |expected| (0 when it is 0). */
function errorInUlps(values: FloatArray, expected: Float64Array, label: string): number {
  const scale = scaleOf(expected);
  return scale > 0 ? maxError(values, expected, label) / (2 ** -23 * scale) : 0;
}

describe(`parity with PyTorch (${cases.length} cases, kernel path ${cpuCapability()})`, () => {
  it("has float32 output errors below PyTorch's: a smaller median over the fixtures", () => {
    const ours: number[] = [];
    const torch: number[] = [];
    for (const fixture of cases) {
      if (fixture.dtype !== 'float32' || fixture.expected.output === null || fixture.torch.output === null) continue;
      ours.push(errorInUlps(runForward(fixture).output.data, fixture.expected.output, `${fixture.name} output`));
      torch.push(errorInUlps(fixture.torch.output, fixture.expected.output, `${fixture.name} output (torch)`));
    }
    expect(ours.length).toBeGreaterThan(50);
    expect(median(ours), `median error: ours ${median(ours)} ulp, PyTorch ${median(torch)} ulp`).toBeLessThan(
      median(torch),
    );
  });

  it("has float32 grad_input errors no larger than PyTorch's over the fixtures (median)", () => {
    const ours: number[] = [];
    const torch: number[] = [];
    for (const fixture of cases) {
      const { gradInput } = fixture.expected;
      if (fixture.dtype !== 'float32' || gradInput === null || fixture.torch.gradInput === null) continue;
      ours.push(errorInUlps(runBackward(fixture).gradInput!.data, gradInput, `${fixture.name} gradInput`));
      torch.push(errorInUlps(fixture.torch.gradInput, gradInput, `${fixture.name} gradInput (torch)`));
    }
    expect(ours.length).toBeGreaterThan(50);
    expect(median(ours), `median error: ours ${median(ours)} ulp, PyTorch ${median(torch)} ulp`).toBeLessThanOrEqual(
      median(torch),
    );
  });

  it('has fixtures covering every rank, both dtypes, both modes and both memory formats (also mixed)', () => {
    expect(new Set(cases.map((c) => c.memoryFormat))).toEqual(new Set(['contiguous', 'channelsLast']));
    const mixed = cases.filter((c) => (c.gradOutputFormat ?? c.memoryFormat) !== c.memoryFormat);
    expect(new Set(mixed.map((c) => `${c.memoryFormat}/${c.gradOutputFormat}/${c.training}`)).size).toBe(4);
    const ranks = new Set(cases.map((c) => c.shape.length));
    expect([...ranks].sort()).toEqual([2, 3, 4, 5]);
    expect(new Set(cases.map((c) => c.dtype)).size).toBe(2);
    expect(new Set(cases.map((c) => c.training)).size).toBe(2);
  });

  describe.each(cases.map((c) => [c.name, c] as const))('%s', (_name, fixture) => {
    const rtol = toleranceFor(fixture.dtype);

    it('forward matches the float64 answer', () => {
      const result = runForward(fixture);
      expect(result.output.shape).toEqual(fixture.shape);
      expect(result.output.memoryFormat).toBe(fixture.memoryFormat);
      expect(result.output.data.constructor.name).toBe(fixture.dtype === 'float32' ? 'Float32Array' : 'Float64Array');
      expectClose(result.output.data, fixture.expected.output, rtol, 'output');
      expectClose(result.runningMean, fixture.expected.runningMean, rtol, 'runningMean');
      expectClose(result.runningVar, fixture.expected.runningVar, rtol, 'runningVar');
      expectClose(result.saveMean, fixture.expected.saveMean, rtol, 'saveMean');
      expectClose(result.saveInvstd, fixture.expected.saveInvstd, rtol, 'saveInvstd');
    });

    it('backward matches the float64 answer', () => {
      const result = runBackward(fixture);
      // grad_input takes the input's memory format, whatever the gradient's (PyTorch's rule).
      if (result.gradInput !== null) expect(result.gradInput.memoryFormat).toBe(fixture.memoryFormat);
      const termScale = gradInputTermScale(fixture);
      expectClose(result.gradInput?.data ?? null, fixture.expected.gradInput, rtol, 'gradInput', termScale);
      expectClose(result.gradWeight, fixture.expected.gradWeight, rtol, 'gradWeight');
      expectClose(result.gradBias, fixture.expected.gradBias, rtol, 'gradBias');
    });

    if (fixture.dtype === 'float32') {
      it('is as accurate as PyTorch in float32, or within the bound of the float formula', () => {
        const forward = runForward(fixture);
        const backward = runBackward(fixture);
        const { expected, torch } = fixture;
        expectAtLeastAsAccurateAsTorch(forward.output.data, torch.output, expected.output, 'output',
          Math.max(2 ** -24 * scaleOf(expected.output ?? []), floatOutputBound(fixture)));
        expectAtLeastAsAccurateAsTorch(forward.runningMean, torch.runningMean, expected.runningMean, 'runningMean');
        expectAtLeastAsAccurateAsTorch(forward.runningVar, torch.runningVar, expected.runningVar, 'runningVar');
        if (expected.gradInput !== null) {
          expectAtLeastAsAccurateAsTorch(backward.gradInput?.data ?? null, torch.gradInput, expected.gradInput, 'gradInput',
            Math.max(2 ** -24 * scaleOf(expected.gradInput), floatGradInputBound(fixture)));
        }
        expectAtLeastAsAccurateAsTorch(backward.gradWeight, torch.gradWeight, expected.gradWeight, 'gradWeight');
        expectAtLeastAsAccurateAsTorch(backward.gradBias, torch.gradBias, expected.gradBias, 'gradBias');
      });
    }
  });
});
