// Replaying a PyTorch module sequence (test/fixtures/generate_modules.py) on one of our modules.
import { expect } from 'vitest';

import type { BatchNormBase, FloatArray, StateDict } from '../../lib/index';
import { expectClose, toleranceFor } from './compare';
import { type EncodedState, type ModuleStep, decode, decodeState } from './fixtures';

export interface Replay {
  dtype: 'float32' | 'float64';
  shape: number[];
  memoryFormat: 'contiguous' | 'channelsLast';
  /** The formats PyTorch returned the output and the input gradient in (default: the input's). */
  outputFormat?: 'contiguous' | 'channelsLast';
  gradInputFormat?: 'contiguous' | 'channelsLast';
  steps: ModuleStep[];
}

/** Our module's state dict against a recorded one, key by key. */
export function expectState(module: BatchNormBase, recorded: EncodedState, rtol: number, label: string): void {
  const expected = decodeState(recorded);
  const actual: StateDict = module.stateDict();
  expect(Object.keys(actual), `${label}: keys`).toEqual(Object.keys(expected));
  for (const [key, value] of Object.entries(expected)) {
    if (typeof value === 'number') expect(actual[key], `${label}: ${key}`).toEqual(BigInt64Array.of(BigInt(value)));
    else expectClose(actual[key] as FloatArray, value, rtol, `${label}: ${key}`);
  }
}

/** Every step: mode, zero_grad, forward, backward; outputs, gradients and the state after each. */
export function replaySteps(module: BatchNormBase, sequence: Replay, afterForward?: () => void): void {
  const rtol = toleranceFor(sequence.dtype);
  const format = sequence.memoryFormat;
  sequence.steps.forEach((step, index) => {
    const label = `step ${index} (${step.training ? 'train' : 'eval'})`;
    module.train(step.training);
    if (step.zeroGradBefore) module.zeroGrad();
    const output = module.forward({ data: decode(step.input)!, shape: sequence.shape, memoryFormat: format });
    afterForward?.();
    expect(output.shape).toEqual(sequence.shape);
    expect(output.memoryFormat).toBe(sequence.outputFormat ?? format);
    expectClose(output.data, decode(step.output), rtol, `${label}: output`);
    const gradInput = module.backward({ data: decode(step.gradOutput)!, shape: sequence.shape, memoryFormat: format });
    expect(gradInput.memoryFormat).toBe(sequence.gradInputFormat ?? format);
    expectClose(gradInput.data, decode(step.gradInput), rtol, `${label}: gradInput`);
    expectClose(module.weight?.grad ?? null, decode(step.weightGrad), rtol, `${label}: weight.grad`);
    expectClose(module.bias?.grad ?? null, decode(step.biasGrad), rtol, `${label}: bias.grad`);
    expectState(module, step.state, rtol, label);
  });
}
