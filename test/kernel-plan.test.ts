// kernelPlan: the planner's answer for a call, as the public API reports it.
import { describe, expect, it } from 'vitest';

import { cpuCapability, getNumThreads, kernelPlan } from '../lib/index';

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

  it('streams outputs from a quarter of the last-level cache on, on one thread', () => {
    const { caches } = kernelPlan(tensor([1, 1]));
    expect(['sysfs', 'sysctl', 'cpuid', 'fallback']).toContain(caches.source);
    expect(caches.l2Bytes).toBeGreaterThanOrEqual(64 * 1024);
    expect(caches.lastLevelBytes).toBeGreaterThanOrEqual(caches.l2Bytes);
    const threshold = caches.lastLevelBytes / 4;
    // Rows of 4096 floats, as many as reach the threshold, and one fewer.
    const rows = Math.ceil(threshold / 4 / 4096);
    const one = { threads: 1 };
    expect(kernelPlan(tensor([rows, 1, 4096]), one).trainingForward.streamed).toBe(true);
    expect(kernelPlan(tensor([rows, 1, 4096]), one).backward.streamed).toBe(true);
    expect(kernelPlan(tensor([rows - 1, 1, 4096]), one).trainingForward.streamed).toBe(rows * 4096 * 4 - 4096 * 4 >= threshold);
  });

  it('on more threads, streams only where the tensors of a pass outgrow the caches that hold them', () => {
    const { lastLevelBytes, l2Bytes } = kernelPlan(tensor([1, 1])).caches;
    // Training and backward: seven eighths of the last level. Eval: the last level and every thread's L2.
    const room = lastLevelBytes - lastLevelBytes / 8;
    const evalRoom = lastLevelBytes + 2 * l2Bytes;
    // The largest tensors whose passes (input and output) fit, and the smallest ones whose do not.
    const fitting = Math.floor(room / 2 / 4 / 4096);
    const evalFitting = Math.floor(evalRoom / 2 / 4 / 4096);
    const two = { threads: 2 };
    const fits = kernelPlan(tensor([fitting, 1, 4096]), two);
    expect(fits.threads).toBe(Math.min(2, kernelPlan(tensor([1, 1]), { threads: 256 }).threads));
    if (fits.threads === 2) {
      expect(fits.trainingForward.streamed).toBe(false);
      // grad_input reads the input and gradOutput and writes gradInput: three tensors.
      expect(fits.backward.streamed).toBe(3 * fitting * 4096 * 4 > room);
      expect(kernelPlan(tensor([fitting + 1, 1, 4096]), two).trainingForward.streamed).toBe(true);
      expect(kernelPlan(tensor([evalFitting, 1, 4096]), two).evalForward.streamed).toBe(false);
      expect(kernelPlan(tensor([evalFitting + 1, 1, 4096]), two).evalForward.streamed).toBe(true);
      expect(fits.evalForward.ranges).toBe(2);
    } else {
      // A thread budget of 1 (BATCHNORM_NUM_THREADS=1) plans for one thread.
      expect(fits.evalForward.streamed).toBe(fitting * 4096 * 4 >= lastLevelBytes / 4);
    }
    expect(kernelPlan(tensor([2, 4]), two).evalForward.ranges).toBe(1);
  });

  it('plans for this thread\'s count unless told, and checks options.threads', () => {
    expect(kernelPlan(tensor([2, 4])).threads).toBe(getNumThreads());
    expect(() => kernelPlan(tensor([2, 4]), { threads: 0 })).toThrow('Expected an integer from 1 to 256 for options.threads but received 0');
    expect(() => kernelPlan(tensor([2, 4]), { threads: '2' as never })).toThrow(TypeError);
    expect(() => kernelPlan(tensor([2, 4]), { thread: 2 } as never)).toThrow("Unknown option 'thread' in options");
    expect(() => kernelPlan(tensor([2, 4]), { reference: 1 } as never)).toThrow(TypeError);
    // Options are read as own properties: a polluted prototype changes nothing.
    const proto = Object.prototype as Record<string, unknown>;
    proto.threads = getNumThreads() === 1 ? 2 : 1;
    proto.reference = true;
    try {
      const plan = kernelPlan(tensor([2, 4]));
      expect(plan.threads).toBe(getNumThreads());
      expect(plan.capability).toBe(cpuCapability());
    } finally {
      delete proto.threads;
      delete proto.reference;
    }
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
