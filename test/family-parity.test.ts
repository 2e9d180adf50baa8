// LazyBatchNorm1d/2d/3d and InstanceNorm1d/2d/3d against multi-step PyTorch sequences (forward,
// backward, accumulated gradients, state after each step; test/fixtures/generate_modules.py).
import { describe, expect, it } from 'vitest';

import {
  type BatchNormBase,
  type FloatArray,
  InstanceNorm1d,
  InstanceNorm2d,
  InstanceNorm3d,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  LazyBatchNorm3d,
  type StateDict,
} from '../lib/index';
import { expectClose, toleranceFor } from './helpers/compare';
import { type FamilySequence, decode, decodeState, loadModuleFixtures } from './helpers/fixtures';

const { family } = loadModuleFixtures();

function make(sequence: FamilySequence): BatchNormBase {
  const { momentum, affine, trackRunningStats, eps } = sequence.options;
  const options = { momentum, affine, trackRunningStats, eps, dtype: sequence.dtype };
  const lazy = { LazyBatchNorm1d, LazyBatchNorm2d, LazyBatchNorm3d }[sequence.className as 'LazyBatchNorm1d'];
  if (lazy !== undefined) return new lazy(options);
  const Instance = { InstanceNorm1d, InstanceNorm2d, InstanceNorm3d }[sequence.className as 'InstanceNorm1d'];
  return new Instance(sequence.numFeatures, { ...options, momentum: momentum ?? 0.1 });
}

describe(`LazyBatchNorm and InstanceNorm sequences from PyTorch (${family.length})`, () => {
  it('cover every class, both dtypes, unbatched and channels-last inputs, affine and tracking', () => {
    expect(new Set(family.map((s) => s.className)).size).toBe(6);
    expect(new Set(family.map((s) => s.dtype)).size).toBe(2);
    expect(family.some((s) => s.className.startsWith('Instance') && s.shape.length === 2)).toBe(true);
    expect(family.some((s) => s.memoryFormat === 'channelsLast' && s.className === 'InstanceNorm2d')).toBe(true);
    expect(new Set(family.map((s) => `${s.options.affine}/${s.options.trackRunningStats}`)).size).toBe(4);
  });

  it.each(family.map((s) => [s.name, s] as const))('%s', (_name, sequence) => {
    const rtol = toleranceFor(sequence.dtype);
    const module = make(sequence);
    if (sequence.initialState !== null) module.loadStateDict(decodeState(sequence.initialState));
    else expect(module.numFeatures).toBe(0);
    sequence.steps.forEach((step, index) => {
      const label = `step ${index} (${step.training ? 'train' : 'eval'})`;
      module.train(step.training);
      if (step.zeroGradBefore) module.zeroGrad();
      const format = sequence.memoryFormat;
      const output = module.forward({ data: decode(step.input)!, shape: sequence.shape, memoryFormat: format });
      expect(module.numFeatures).toBe(sequence.numFeatures);
      expect(output.shape).toEqual(sequence.shape);
      expect(output.memoryFormat).toBe(sequence.outputFormat);
      expectClose(output.data, decode(step.output), rtol, `${label}: output`);
      const gradInput = module.backward({ data: decode(step.gradOutput)!, shape: sequence.shape, memoryFormat: format });
      expect(gradInput.memoryFormat).toBe(sequence.gradInputFormat);
      expectClose(gradInput.data, decode(step.gradInput), rtol, `${label}: gradInput`);
      expectClose(module.weight?.grad ?? null, decode(step.weightGrad), rtol, `${label}: weight.grad`);
      expectClose(module.bias?.grad ?? null, decode(step.biasGrad), rtol, `${label}: bias.grad`);
      const expected = decodeState(step.state);
      const actual: StateDict = module.stateDict();
      expect(Object.keys(actual), `${label}: keys`).toEqual(Object.keys(expected));
      for (const [key, value] of Object.entries(expected)) {
        if (typeof value === 'number') expect(actual[key], `${label}: ${key}`).toEqual(BigInt64Array.of(BigInt(value)));
        else expectClose(actual[key] as FloatArray, value, rtol, `${label}: ${key}`);
      }
    });
  });
});
