// kernelPlan: the planner's answer for a call, as the public API reports it.
import { describe, expect, it } from 'vitest';

import { cpuCapability, kernelPlan } from '../lib/index';

const tensor = (
  shape: number[],
  memoryFormat: 'contiguous' | 'channelsLast' = 'contiguous',
  dtype: Float32ArrayConstructor | Float64ArrayConstructor = Float32Array,
) => ({
  data: new dtype(shape.reduce((a, b) => a * b, 1)),
  shape,
  memoryFormat,
});

describe('kernelPlan', () => {
  const inFloats = cpuCapability() !== 'default';

  it('walks a channel at a time when its rows are long, across channels when they are short', () => {
    const planar = kernelPlan(tensor([4, 3, 8, 8]));
    expect(planar.capability).toBe(cpuCapability());
    expect(planar.trainingForward).toMatchObject({ traversal: 'planar', reduction: 'planar-rows', elementwise: 'planar-rows', block: null });
    expect(planar.backward).toMatchObject({ traversal: 'planar', reduction: 'planar-rows', elementwise: 'planar-rows' });
    expect(planar.evalForward.reduction).toBeNull();
    expect(planar.evalForward.elementwise).toBe(inFloats ? 'flat-joined' : 'planar-rows');
    expect(planar.trainingForward.arithmetic).toBe(inFloats ? 'float' : 'double');

    const interleaved = kernelPlan(tensor([32, 64]));
    expect(interleaved.trainingForward.traversal).toBe('interleaved');
    expect(interleaved.trainingForward.block).toEqual({ channels: 64, rows: 32 });
    expect(interleaved.trainingForward.reduction).toBe('column-groups');
  });

  it('reports the kernel geometry of channels-last tensors and double arithmetic for float64', () => {
    // Channels-last (N, C, H, W) is a contiguous (N * H * W, C) matrix to the kernels: interleaved.
    expect(kernelPlan(tensor([2, 16, 16, 16], 'channelsLast')).trainingForward.traversal).toBe('interleaved');
    expect(kernelPlan(tensor([2, 16, 16, 16], 'contiguous')).trainingForward.traversal).toBe('planar');
    const double = kernelPlan(tensor([2, 16, 16, 16], 'contiguous', Float64Array));
    expect(double.evalForward).toMatchObject({ elementwise: 'planar-rows', arithmetic: 'double' });
  });

  it('streams outputs from a quarter of the last-level cache on', () => {
    const { caches } = kernelPlan(tensor([1, 1]));
    expect(['sysfs', 'sysctl', 'cpuid', 'fallback']).toContain(caches.source);
    expect(caches.l2Bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(caches.lastLevelBytes).toBeGreaterThanOrEqual(caches.l2Bytes);
    const threshold = caches.lastLevelBytes / 4;
    // Rows of 4096 floats, as many as reach the threshold, and one fewer.
    const rows = Math.ceil(threshold / 4 / 4096);
    expect(kernelPlan(tensor([rows, 1, 4096])).trainingForward.streamed).toBe(true);
    expect(kernelPlan(tensor([rows - 1, 1, 4096])).trainingForward.streamed).toBe(rows * 4096 * 4 - 4096 * 4 >= threshold);
  });

  it('describes the scalar oracle on request', () => {
    const plan = kernelPlan(tensor([4, 3, 8, 8]), { reference: true });
    expect(plan.capability).toBe('reference');
    expect(plan.backward).toMatchObject({ traversal: 'reference', reduction: null, elementwise: null, arithmetic: 'double' });
  });

  it('checks its input like a call does', () => {
    expect(() => kernelPlan({ data: new Float32Array(3), shape: [2, 2] })).toThrow(RangeError);
    expect(() => kernelPlan({ data: new Float32Array(3), shape: [2, 2] })).toThrow(/input/);
    expect(() => kernelPlan({ data: [1, 2, 3, 4], shape: [2, 2] } as never)).toThrow(TypeError);
  });
});
