// The public types follow the dtype (issue 14). These assertions are checked by `npm run typecheck`
// (tsc, part of `npm test`): a regressed type fails the type check, not the run below.
import { describe, expect, expectTypeOf, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  type BatchNormStateDict,
  InstanceNorm1d,
  LazyBatchNorm2d,
  type Parameter,
  type StateDict,
  type Tensor,
  batchNorm,
  batchNormBackward,
  toChannelsLast,
} from '../lib/index';

describe('types by dtype', () => {
  it('a module is float32 by default and float64 when asked', () => {
    const m = new BatchNorm2d(8);
    expectTypeOf(m).toEqualTypeOf<BatchNorm2d<'float32'>>();
    expectTypeOf(m.forward({ data: new Float32Array(16), shape: [2, 8, 1, 1] }).data).toEqualTypeOf<Float32Array>();
    expectTypeOf(m.weight).toEqualTypeOf<Parameter<Float32Array> | null>();
    expectTypeOf(m.runningVar).toEqualTypeOf<Float32Array | null>();

    const d = new BatchNorm2d(8, { dtype: 'float64', eps: 1e-3 });
    expectTypeOf(d).toEqualTypeOf<BatchNorm2d<'float64'>>();
    const y = d.forward({ data: new Float64Array(16), shape: [2, 8, 1, 1] });
    expectTypeOf(y.data).toEqualTypeOf<Float64Array>();
    expectTypeOf(d.backward(y).data).toEqualTypeOf<Float64Array>();
    expectTypeOf(d.toAffine().scale).toEqualTypeOf<Float64Array>();
    // What the types refuse, the runtime refuses too.
    // @ts-expect-error a Float32Array input for a float64 module
    expect(() => d.forward({ data: new Float32Array(16), shape: [2, 8, 1, 1] })).toThrow(TypeError);
    // @ts-expect-error out of the other dtype
    expect(() => new BatchNorm1d(8).forward({ data: new Float32Array(16), shape: [2, 8] }, { out: new Float64Array(16) })).toThrow(
      TypeError,
    );
  });

  it('the lazy and instance classes follow the dtype too', () => {
    expectTypeOf(new LazyBatchNorm2d()).toEqualTypeOf<LazyBatchNorm2d<'float32'>>();
    expectTypeOf(new LazyBatchNorm2d({ dtype: 'float64' }).runningMean).toEqualTypeOf<Float64Array | null>();
    const instance = new InstanceNorm1d(4, { dtype: 'float64' });
    expectTypeOf(instance.forward({ data: new Float64Array(8), shape: [4, 2] }).data).toEqualTypeOf<Float64Array>();
  });

  it('state dicts type each key', () => {
    const sd = new BatchNorm1d(4).stateDict();
    expectTypeOf(sd).toEqualTypeOf<BatchNormStateDict<'float32'>>();
    expectTypeOf(sd.num_batches_tracked).toEqualTypeOf<BigInt64Array | undefined>();
    expectTypeOf(sd.running_mean).toEqualTypeOf<Float32Array | undefined>();
    expectTypeOf(new BatchNorm1d(4).stateDict({ prefix: 'bn1.' })).toEqualTypeOf<StateDict>();
    // A module's state dict is a StateDict (for saveSafetensors and friends).
    expectTypeOf(sd).toMatchTypeOf<StateDict>();
  });

  it('the functional API infers from the input', () => {
    const r = batchNorm({ data: new Float64Array(4), shape: [2, 2] }, { training: true });
    expectTypeOf(r.output.data).toEqualTypeOf<Float64Array>();
    expectTypeOf(r.saveMean).toEqualTypeOf<Float64Array>();
    const g = batchNormBackward({ data: new Float32Array(4), shape: [2, 2] }, { data: new Float32Array(4), shape: [2, 2] }, {
      training: false,
      runningMean: new Float32Array(2),
      runningVar: new Float32Array(2),
    });
    expectTypeOf(g.gradInput).toEqualTypeOf<Tensor<Float32Array> | null>();
    // @ts-expect-error a weight of the other dtype
    expect(() => batchNorm({ data: new Float64Array(4), shape: [2, 2] }, { training: true, weight: new Float32Array(2) })).toThrow(
      TypeError,
    );
    expectTypeOf(toChannelsLast({ data: new Float64Array(16), shape: [1, 4, 2, 2] }).data).toEqualTypeOf<Float64Array>();
  });
});
