import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import type { FloatArray } from '../../lib/index';

export interface EncodedArray {
  dtype: 'float32' | 'float64';
  length: number;
  b64: string;
}

type EncodedSet<K extends string> = Record<K, EncodedArray | null>;

type InputKey = 'input' | 'gradOutput' | 'weight' | 'bias' | 'runningMean' | 'runningVar' | 'saveMean' | 'saveInvstd';
type ResultKey =
  | 'output'
  | 'runningMean'
  | 'runningVar'
  | 'saveMean'
  | 'saveInvstd'
  | 'gradInput'
  | 'gradWeight'
  | 'gradBias';

interface EncodedCase {
  name: string;
  dtype: 'float32' | 'float64';
  shape: number[];
  training: boolean;
  momentum: number;
  eps: number;
  outputMask: [boolean, boolean, boolean];
  memoryFormat: 'contiguous' | 'channelsLast';
  /** The gradient's own layout (the input's unless a mixed-format case). */
  gradOutputFormat?: 'contiguous' | 'channelsLast';
  inputs: EncodedSet<InputKey>;
  expected: EncodedSet<ResultKey>;
  torch: EncodedSet<ResultKey>;
}

/** One PyTorch-generated case; `inputs()` decodes fresh copies each call, so tests may mutate them. */
export interface FixtureCase extends Omit<EncodedCase, 'inputs' | 'expected' | 'torch'> {
  inputs(): Record<InputKey, FloatArray | null>;
  /** float64 results of PyTorch on the same inputs: the accurate answer. */
  expected: Record<ResultKey, Float64Array | null>;
  /** PyTorch's own results in the case's dtype. */
  torch: Record<ResultKey, FloatArray | null>;
}

/** Decodes one fixture array into a fresh, aligned typed array (null stays null). */
export function decode(encoded: EncodedArray | null): FloatArray | null {
  if (encoded === null) return null;
  const bytes = Buffer.from(encoded.b64, 'base64');
  // Copy into a fresh, aligned ArrayBuffer that belongs to this array alone.
  const buffer = new ArrayBuffer(bytes.length);
  new Uint8Array(buffer).set(bytes);
  const array = encoded.dtype === 'float32' ? new Float32Array(buffer) : new Float64Array(buffer);
  if (array.length !== encoded.length) throw new Error(`fixture array length mismatch (${encoded.length})`);
  return array;
}

function decodeSet<K extends string>(set: EncodedSet<K>): Record<K, FloatArray | null> {
  const result = {} as Record<K, FloatArray | null>;
  for (const key of Object.keys(set) as K[]) result[key] = decode(set[key]);
  return result;
}

/** Directory of the fixtures: BATCHNORM_FIXTURES_DIR (set by `npm run test:parity`) or the committed ones. */
export function fixturesDir(): string {
  return process.env.BATCHNORM_FIXTURES_DIR ?? path.join(__dirname, '..', 'fixtures');
}

export function loadFunctionalCases(): FixtureCase[] {
  const file = path.join(fixturesDir(), 'functional.json');
  const document = JSON.parse(readFileSync(file, 'utf8')) as { cases: EncodedCase[] };
  return document.cases.map((encoded) => ({
    ...encoded,
    inputs: () => decodeSet(encoded.inputs),
    expected: decodeSet(encoded.expected) as Record<ResultKey, Float64Array | null>,
    torch: decodeSet(encoded.torch),
  }));
}

/** A state dict as the module generator records it (num_batches_tracked as a plain number). */
export type EncodedState = Record<string, EncodedArray | number>;

export interface ModuleStep {
  training: boolean;
  zeroGradBefore: boolean;
  input: EncodedArray;
  gradOutput: EncodedArray;
  output: EncodedArray;
  gradInput: EncodedArray;
  weightGrad: EncodedArray | null;
  biasGrad: EncodedArray | null;
  state: EncodedState;
}

export interface ModuleSequence {
  name: string;
  className: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  dtype: 'float32' | 'float64';
  shape: number[];
  memoryFormat: 'contiguous' | 'channelsLast';
  options: { momentum: number | null; affine: boolean; trackRunningStats: boolean; eps: number };
  initialState: EncodedState;
  steps: ModuleStep[];
}

export interface Checkpoint {
  file: string;
  className: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  dtype: 'float32' | 'float64';
  shape: number[];
  options: { momentum: number | null };
  trainInput: EncodedArray;
  trainOutput: EncodedArray;
  stateAfterTrain: EncodedState;
  evalInput: EncodedArray;
  evalOutput: EncodedArray;
}

/** A whole model's checkpoint (nn.Sequential of BatchNorm2d, ReLU, BatchNorm2d) saved by PyTorch. */
export interface SequentialCheckpoint {
  file: string;
  shape: number[];
  prefixes: string[];
  momenta: (number | null)[];
  trainInput: EncodedArray;
  trainOutput: EncodedArray;
  stateAfterTrain: EncodedState;
  evalInput: EncodedArray;
  evalOutput: EncodedArray;
}

/** A LazyBatchNorm or InstanceNorm sequence; results in the formats PyTorch returned them. */
export interface FamilySequence extends Omit<ModuleSequence, 'className' | 'initialState'> {
  className: string;
  initialState: EncodedState | null;
  outputFormat: 'contiguous' | 'channelsLast';
  gradInputFormat: 'contiguous' | 'channelsLast';
  numFeatures: number;
}

/** PyTorch's repr() of a module made with these options (fixtures generate_modules.py reprs()). */
export interface ReprCase {
  className: string;
  numFeatures: number | null;
  options: { eps?: number; momentum?: number | null; affine?: boolean; trackRunningStats?: boolean };
  repr: string;
  /** A lazy module's repr after its first forward on a (2, 3, ...) input. */
  reprAfterForward?: string;
}

export function loadModuleFixtures(): {
  sequences: ModuleSequence[];
  checkpoints: Checkpoint[];
  sequential: SequentialCheckpoint;
  family: FamilySequence[];
  reprs: ReprCase[];
} {
  const file = path.join(fixturesDir(), 'modules.json');
  return JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof loadModuleFixtures>;
}

/** Decodes a recorded state dict into what loadStateDict accepts. */
export function decodeState(state: EncodedState): Record<string, FloatArray | number> {
  const result: Record<string, FloatArray | number> = {};
  for (const [key, value] of Object.entries(state)) result[key] = typeof value === 'number' ? value : decode(value)!;
  return result;
}
