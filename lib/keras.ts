// Keras / TensorFlow.js BatchNormalization interchange. Keras keeps the same four arrays under other
// names, and its momentum is the weight of the *old* running value: Keras momentum m = PyTorch 1 - m.
import type { BatchNormBase, BatchNormModuleOptions, DType } from './batchnorm';
import { BatchNormStateError, describeValue } from './errors';
import { elementCount, typedArrayKind } from './intrinsics';
import { type FloatArray, dtypeName, isFloatArray } from './tensor';
import { checkEps, checkFiniteNumber, checkOptions } from './validate';

/** A Keras BatchNormalization layer's weights, in Keras' names. */
export interface KerasBatchNormWeights {
  /** Scale; absent when the layer has `scale: false` (then 1). */
  gamma?: FloatArray | null;
  /** Offset; absent when the layer has `center: false` (then 0). */
  beta?: FloatArray | null;
  movingMean: FloatArray;
  movingVariance: FloatArray;
}

/** The Keras layer config values that matter here. */
export interface KerasBatchNormConfig {
  /** Keras momentum (weight of the old moving value). Default 0.99. */
  momentum?: number;
  /** Keras epsilon. Default 1e-3. */
  epsilon?: number;
}

const CONFIG_KEYS = ['momentum', 'epsilon'] as const;
const WEIGHT_KEYS = ['gamma', 'beta', 'movingMean', 'movingVariance'] as const;

export const KERAS_DEFAULT_MOMENTUM = 0.99;
export const KERAS_DEFAULT_EPSILON = 1e-3;

type ModuleClass<M extends BatchNormBase> = new (numFeatures: number, options?: BatchNormModuleOptions) => M;

/**
 * Builds a module of class `Module` (e.g. `BatchNorm2d`) from Keras weights: eps = epsilon,
 * momentum = 1 - keras momentum, affine with gamma/beta (1/0 where Keras has none), running stats from the
 * moving mean/variance. The dtype follows the arrays, which must all share it.
 */
export function fromKerasWeights<M extends BatchNormBase>(
  Module: ModuleClass<M>,
  weights: KerasBatchNormWeights,
  config?: KerasBatchNormConfig,
): M {
  const opts = checkOptions(config, 'config', CONFIG_KEYS);
  const momentum = checkFiniteNumber(opts.momentum, 'config.momentum', KERAS_DEFAULT_MOMENTUM);
  const epsilon = checkEps(opts.epsilon, 'config.epsilon', KERAS_DEFAULT_EPSILON);
  const w = checkOptions(weights, 'weights', WEIGHT_KEYS, true);
  const movingMean = w.movingMean;
  if (!isFloatArray(movingMean)) {
    throw new TypeError(`Expected a Float32Array or Float64Array for weights.movingMean but received ${describeValue(movingMean)}`);
  }
  const channels = elementCount(movingMean);
  const dtype: DType = dtypeName(movingMean);
  const checked: Record<string, FloatArray | null> = {};
  for (const key of ['gamma', 'beta', 'movingVariance'] as const) {
    const value = w[key];
    if ((value === undefined || value === null) && key !== 'movingVariance') {
      checked[key] = null;
      continue;
    }
    if (!isFloatArray(value) || typedArrayKind(value) !== typedArrayKind(movingMean)) {
      throw new TypeError(
        `Expected a ${typedArrayKind(movingMean)} (like weights.movingMean) for weights.${key} but received ${describeValue(value)}`,
      );
    }
    const length = elementCount(value);
    if (length !== channels) {
      throw new RangeError(`weights.${key} should contain ${channels} elements (like weights.movingMean) not ${length}`);
    }
    checked[key] = value;
  }
  const module = new Module(channels, { eps: epsilon, momentum: 1 - momentum, affine: true, dtype });
  if (checked.gamma) module.weight!.data.set(checked.gamma);
  if (checked.beta) module.bias!.data.set(checked.beta);
  module.runningMean!.set(movingMean);
  module.runningVar!.set(checked.movingVariance!);
  return module;
}

/**
 * The Keras weights and config equivalent to `module` (copies). Needs running statistics and a numeric
 * momentum (Keras has no cumulative moving average); a module without affine parameters exports
 * gamma = 1 and beta = 0.
 */
export function toKerasWeights(module: BatchNormBase): {
  weights: Required<{ [K in keyof KerasBatchNormWeights]: FloatArray }>;
  config: Required<KerasBatchNormConfig>;
} {
  const state = module.stateDict(); // copies; throws while async calls on the module are pending
  const { weight, bias, running_mean: movingMean, running_var: movingVariance } = state as Record<string, FloatArray>;
  if (movingMean === undefined || movingVariance === undefined) {
    throw new BatchNormStateError('Keras BatchNormalization needs moving statistics, but the module has trackRunningStats: false');
  }
  if (module.momentum === null) {
    throw new BatchNormStateError('Keras BatchNormalization has no cumulative moving average (the module has momentum: null)');
  }
  return {
    weights: {
      gamma: weight ?? movingMean.slice().fill(1),
      beta: bias ?? movingMean.slice().fill(0),
      movingMean,
      movingVariance,
    },
    config: { momentum: 1 - module.momentum, epsilon: module.eps },
  };
}
