// BatchNorm1d/2d/3d against multi-step PyTorch training sequences and PyTorch-saved checkpoints.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  BatchNorm1d,
  BatchNorm2d,
  BatchNorm3d,
  type BatchNormBase,
  type StateDict,
  loadSafetensors,
  saveSafetensors,
} from '../lib/index';
import { expectClose, toleranceFor } from './helpers/compare';
import { decode, decodeState, fixturesDir, loadModuleFixtures } from './helpers/fixtures';
import { expectState, replaySteps } from './helpers/sequences';

const { sequences, checkpoints } = loadModuleFixtures();
const CLASSES = { BatchNorm1d, BatchNorm2d, BatchNorm3d };

describe(`module sequences from PyTorch (${sequences.length})`, () => {
  it('cover every class, dtype, momentum, affine and tracking option', () => {
    expect(new Set(sequences.map((s) => `${s.className}/${s.shape.length}`)).size).toBe(4);
    expect(new Set(sequences.map((s) => s.dtype)).size).toBe(2);
    expect(new Set(sequences.map((s) => String(s.options.momentum)))).toEqual(new Set(['0.1', '0.5', 'null']));
    expect(new Set(sequences.map((s) => s.options.affine)).size).toBe(2);
    expect(new Set(sequences.map((s) => s.options.trackRunningStats)).size).toBe(2);
    expect(sequences.filter((s) => s.memoryFormat === 'channelsLast').map((s) => s.className)).toEqual(
      expect.arrayContaining(['BatchNorm2d', 'BatchNorm3d']),
    );
  });

  it.each(sequences.map((s) => [s.name, s] as const))('%s', (_name, sequence) => {
    const module = new CLASSES[sequence.className](sequence.shape[1]!, { ...sequence.options, dtype: sequence.dtype });
    module.loadStateDict(decodeState(sequence.initialState));
    replaySteps(module, sequence);
  });
});

describe('checkpoints saved by PyTorch as safetensors', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'batchnorm-st-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.each(checkpoints.map((c) => [c.file, c] as const))('%s loads and reproduces the next steps', (_file, checkpoint) => {
    const rtol = toleranceFor(checkpoint.dtype);
    const stateDict = loadSafetensors(path.join(fixturesDir(), checkpoint.file));
    const module = new CLASSES[checkpoint.className](checkpoint.shape[1]!, {
      momentum: checkpoint.options.momentum,
      dtype: checkpoint.dtype,
    });
    module.loadStateDict(stateDict);
    expect(module.numBatchesTracked).toBe(3);
    const trained = module.forward({ data: decode(checkpoint.trainInput)!, shape: checkpoint.shape });
    expectClose(trained.data, decode(checkpoint.trainOutput), rtol, 'train output');
    expectState(module, checkpoint.stateAfterTrain, rtol, 'after train');
    const evaluated = module.eval().forward({ data: decode(checkpoint.evalInput)!, shape: checkpoint.shape });
    expectClose(evaluated.data, decode(checkpoint.evalOutput), rtol, 'eval output');
  });

  it.each(checkpoints.map((c) => [c.file, c] as const))(
    'a file we write from %s is read back by the generator reader with equal values',
    (_file, checkpoint) => {
      const module = new CLASSES[checkpoint.className](checkpoint.shape[1]!, { dtype: checkpoint.dtype });
      module.loadStateDict(loadSafetensors(path.join(fixturesDir(), checkpoint.file)));
      module.forward({ data: decode(checkpoint.trainInput)!, shape: checkpoint.shape });
      const file = path.join(scratch, checkpoint.file);
      const ours = module.stateDict();
      saveSafetensors(file, ours);
      const reader = path.join(__dirname, 'fixtures', 'safetensors_io.py');
      const dumped = JSON.parse(execFileSync('python3', [reader, 'dump', file], { encoding: 'utf8' })) as Record<
        string,
        { dtype: string; shape: number[]; values: number[] }
      >;
      expect(Object.keys(dumped)).toEqual(Object.keys(ours));
      for (const [key, value] of Object.entries(ours)) {
        const entry = dumped[key]!;
        if (value instanceof BigInt64Array) {
          expect(entry).toEqual({ dtype: 'I64', shape: [], values: [Number(value[0])] });
        } else {
          expect(entry.dtype).toBe(value instanceof Float32Array ? 'F32' : 'F64');
          expect(entry.shape).toEqual([value.length]);
          expect(entry.values).toEqual(Array.from(value));
        }
      }
    },
  );
});
