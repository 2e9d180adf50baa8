// LazyBatchNorm1d/2d/3d and InstanceNorm1d/2d/3d against multi-step PyTorch sequences (forward,
// backward, accumulated gradients, state after each step; test/fixtures/generate_modules.py).
import { describe, expect, it } from 'vitest';

import {
  type BatchNormBase,
  InstanceNorm1d,
  InstanceNorm2d,
  InstanceNorm3d,
  LazyBatchNorm1d,
  LazyBatchNorm2d,
  LazyBatchNorm3d,
} from '../lib/index';
import { type FamilySequence, decodeState, loadModuleFixtures } from './helpers/fixtures';
import { replaySteps } from './helpers/sequences';

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
    const module = make(sequence);
    if (sequence.initialState !== null) module.loadStateDict(decodeState(sequence.initialState));
    else expect(module.numFeatures).toBe(0);
    replaySteps(module, sequence, () => expect(module.numFeatures).toBe(sequence.numFeatures));
  });
});
