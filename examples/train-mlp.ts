// `npm run demo`: trains a small MLP with BatchNorm1d layers on badly scaled features, next to the same
// network without batch norm from the same initialization, then saves the trained batch-norm layers as
// safetensors for PyTorch.
//
//   npm run demo -- [--epochs 20] [--seed 7] [--threads N] [--no-bn-baseline] [--out demo-output]
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { SingleBar } from 'cli-progress';

import { BatchNorm1d, type StateDict, cpuCapability, getNumThreads, saveSafetensors, setNumThreads } from 'batchnorm';

import { Linear, ReLU, SGD, createRandom, softmaxCrossEntropy } from './mlp';

const { values: options } = parseArgs({
  options: {
    epochs: { type: 'string', default: '20' },
    seed: { type: 'string', default: '7' },
    threads: { type: 'string' },
    'no-bn-baseline': { type: 'boolean', default: false },
    out: { type: 'string', default: 'demo-output' },
  },
});
const epochs = Number(options.epochs);
const seed = Number(options.seed);
if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`--epochs must be a positive integer, got ${options.epochs}`);
if (!Number.isInteger(seed)) throw new RangeError(`--seed must be an integer, got ${options.seed}`);
if (options.threads !== undefined) setNumThreads(Number(options.threads));

const CLASSES = 3;
const FEATURES = 8;
const HIDDEN = 64;
const BATCH = 64;
const LEARNING_RATE = 0.05;
const MOMENTUM = 0.9;
const TARGET_ACCURACY = 0.9;
// Each feature is a view of the 2-D point at its own scale, from 1e-3 to 1e3: the setting where
// normalizing activations lets one learning rate suit every direction.
const FEATURE_SCALES = [1e-3, 1e3, 1e-1, 1e2, 1e1, 1e-2, 1, 1e-3];

interface Dataset {
  x: Float32Array;
  labels: Int32Array;
  rows: number;
}

/** A 3-arm spiral with noise; each 2-D point is expanded into FEATURES badly scaled features. */
function spiral(pointsPerClass: number, random: ReturnType<typeof createRandom>): Dataset {
  const rows = pointsPerClass * CLASSES;
  const x = new Float32Array(rows * FEATURES);
  const labels = new Int32Array(rows);
  for (let k = 0; k < CLASSES; k++) {
    for (let i = 0; i < pointsPerClass; i++) {
      const row = k * pointsPerClass + i;
      const t = (i + random.uniform()) / pointsPerClass;
      const angle = (k * 2 * Math.PI) / CLASSES + t * 6 + random.normal() * 0.2;
      const px = t * Math.sin(angle);
      const py = t * Math.cos(angle);
      const raw = [px, py, px + py, px - py, px * py, px * px - py * py, Math.hypot(px, py), Math.atan2(py, px)];
      for (let f = 0; f < FEATURES; f++) x[row * FEATURES + f] = raw[f]! * FEATURE_SCALES[f]!;
      labels[row] = k;
    }
  }
  return { x, labels, rows };
}

/** The network: with batch norm, BN(input) -> [Linear -> BN -> ReLU] x 2 -> Linear; without, no BN. */
class Network {
  readonly layers: Linear[];
  readonly norms: BatchNorm1d[];
  private readonly relus = [new ReLU(), new ReLU()];

  constructor(layers: Linear[], withBatchNorm: boolean) {
    this.layers = layers;
    this.norms = withBatchNorm ? [new BatchNorm1d(FEATURES), new BatchNorm1d(HIDDEN), new BatchNorm1d(HIDDEN)] : [];
  }

  parameters() {
    return [...this.layers.flatMap((l) => l.parameters()), ...this.norms.flatMap((n) => n.parameters())];
  }

  train(mode: boolean): void {
    for (const norm of this.norms) norm.train(mode);
  }

  private normalize(index: number, h: Float32Array, rows: number, width: number): Float32Array {
    const norm = this.norms[index];
    return norm === undefined ? h : norm.forward({ data: h, shape: [rows, width] }).data;
  }

  private normalizeBackward(index: number, dy: Float32Array, rows: number, width: number): Float32Array {
    const norm = this.norms[index];
    return norm === undefined ? dy : norm.backward({ data: dy, shape: [rows, width] }).data;
  }

  forward(x: Float32Array, rows: number): Float32Array {
    let h = this.normalize(0, x, rows, FEATURES);
    h = this.layers[0]!.forward(h, rows);
    h = this.relus[0]!.forward(this.normalize(1, h, rows, HIDDEN));
    h = this.layers[1]!.forward(h, rows);
    h = this.relus[1]!.forward(this.normalize(2, h, rows, HIDDEN));
    return this.layers[2]!.forward(h, rows);
  }

  backward(dLogits: Float32Array, rows: number): void {
    let g = this.layers[2]!.backward(dLogits, rows);
    g = this.normalizeBackward(2, this.relus[1]!.backward(g), rows, HIDDEN);
    g = this.layers[1]!.backward(g, rows);
    g = this.normalizeBackward(1, this.relus[0]!.backward(g), rows, HIDDEN);
    g = this.layers[0]!.backward(g, rows);
    this.normalizeBackward(0, g, rows, FEATURES);
  }
}

interface EpochResult {
  loss: number;
  trainAccuracy: number;
  testAccuracy: number;
}

function batchOf(data: Dataset, order: Int32Array, start: number): Dataset {
  const rows = Math.min(BATCH, data.rows - start);
  const x = new Float32Array(rows * FEATURES);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const source = order[start + r]!;
    x.set(data.x.subarray(source * FEATURES, (source + 1) * FEATURES), r * FEATURES);
    labels[r] = data.labels[source]!;
  }
  return { x, labels, rows };
}

function accuracy(network: Network, data: Dataset): number {
  network.train(false);
  const logits = network.forward(data.x, data.rows);
  network.train(true);
  return softmaxCrossEntropy(logits, data.labels, CLASSES).correct / data.rows;
}

function trainEpoch(network: Network, optimizer: SGD, train: Dataset, test: Dataset, order: Int32Array, bar: SingleBar | null): EpochResult {
  let lossSum = 0;
  let correct = 0;
  let batches = 0;
  for (let start = 0; start + 1 < train.rows; start += BATCH) {
    const batch = batchOf(train, order, start);
    if (batch.rows < 2) break; // batch norm needs two values per channel
    optimizer.zeroGrad();
    const logits = network.forward(batch.x, batch.rows);
    const { loss, gradient, correct: hits } = softmaxCrossEntropy(logits, batch.labels, CLASSES);
    network.backward(gradient, batch.rows);
    optimizer.step();
    lossSum += loss;
    correct += hits;
    batches++;
    bar?.increment();
  }
  return { loss: lossSum / batches, trainAccuracy: correct / train.rows, testAccuracy: accuracy(network, test) };
}

function shuffled(rows: number, random: ReturnType<typeof createRandom>): Int32Array {
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function main(): void {
  const random = createRandom(seed);
  const train = spiral(1000, random);
  const test = spiral(200, random);
  const initial = [new Linear(FEATURES, HIDDEN, random), new Linear(HIDDEN, HIDDEN, random), new Linear(HIDDEN, CLASSES, random)];
  const runs = [{ name: 'with BatchNorm1d', network: new Network(initial.map((l) => l.clone()), true) }];
  if (!options['no-bn-baseline']) runs.push({ name: 'without', network: new Network(initial.map((l) => l.clone()), false) });
  const optimizers = runs.map((run) => new SGD(run.network.parameters(), LEARNING_RATE, MOMENTUM));
  const history: EpochResult[][] = runs.map(() => []);

  console.log(
    `batchnorm demo: 3-class spiral, ${FEATURES} features scaled 1e-3..1e3, MLP ${FEATURES}-${HIDDEN}-${HIDDEN}-${CLASSES}, ` +
      `SGD lr ${LEARNING_RATE} momentum ${MOMENTUM}, batch ${BATCH}, seed ${seed}`,
  );
  console.log(`kernel path ${cpuCapability()}, ${getNumThreads()} thread(s); target test accuracy ${TARGET_ACCURACY * 100}%\n`);
  const started = Date.now();
  const batchesPerEpoch = Math.ceil(train.rows / BATCH);
  const header = runs.map((r) => `${r.name.padEnd(16)}     loss  train   test`).join(' | ');
  console.log(`epoch | ${header}`);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffled(train.rows, random);
    const bar = process.stdout.isTTY
      ? new SingleBar({ format: `epoch ${epoch}/${epochs} [{bar}] {value}/{total} batches`, clearOnComplete: true, hideCursor: true })
      : null;
    bar?.start(batchesPerEpoch * runs.length, 0);
    const results = runs.map((run, i) => trainEpoch(run.network, optimizers[i]!, train, test, order, bar));
    bar?.stop();
    results.forEach((result, i) => history[i]!.push(result));
    const cells = results.map((r) => {
      const loss = !Number.isFinite(r.loss) ? 'diverged' : r.loss < 1000 ? r.loss.toFixed(4) : r.loss.toExponential(2);
      const percent = (value: number) => `${(value * 100).toFixed(1)}%`.padStart(6);
      return `${''.padEnd(16)} ${loss.padStart(8)} ${percent(r.trainAccuracy)} ${percent(r.testAccuracy)}`;
    });
    console.log(`${String(epoch).padStart(5)} | ${cells.join(' | ')}`);
  }

  const summary = runs.map((run, i) => {
    const reached = history[i]!.findIndex((r) => r.testAccuracy >= TARGET_ACCURACY);
    const last = history[i]!.at(-1)!;
    return {
      name: run.name,
      epochsToTarget: reached >= 0 ? reached + 1 : null,
      finalTestAccuracy: last.testAccuracy,
      finalLoss: Number.isFinite(last.loss) ? last.loss : null,
    };
  });
  console.log(`\nsummary (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log('| network              | epochs to reach target | final test accuracy | final loss |');
  console.log('|----------------------|------------------------|---------------------|------------|');
  for (const s of summary) {
    const epochsText = s.epochsToTarget === null ? `not in ${epochs}` : String(s.epochsToTarget);
    const loss = s.finalLoss === null ? 'diverged' : s.finalLoss.toFixed(4);
    console.log(
      `| ${s.name.padEnd(20)} | ${epochsText.padEnd(22)} | ${`${(s.finalTestAccuracy * 100).toFixed(1)}%`.padEnd(19)} | ${loss.padEnd(10)} |`,
    );
  }

  // The trained batch-norm layers, under PyTorch-style prefixed keys ("bn0.running_mean", ...).
  const norms = runs[0]!.network.norms;
  const state: StateDict = Object.assign({}, ...norms.map((norm, i) => norm.stateDict({ prefix: `bn${i}.` })));
  mkdirSync(options.out, { recursive: true });
  const file = path.join(options.out, 'batchnorm_layers.safetensors');
  saveSafetensors(file, state, { format: 'pt' });
  const plainState = Object.fromEntries(
    Object.entries(state).map(([k, v]) => [k, v instanceof BigInt64Array ? Array.from(v, Number) : Array.from(v)]),
  );
  writeFileSync(
    path.join(options.out, 'summary.json'),
    `${JSON.stringify({ seed, epochs, targetAccuracy: TARGET_ACCURACY, runs: summary, layers: norms.map((n) => n.numFeatures), state: plainState }, null, 2)}\n`,
  );
  console.log(`\nsaved ${norms.length} BatchNorm1d layers to ${file}; in PyTorch:\n`);
  console.log(`  import torch
  from safetensors.torch import load_file
  state = load_file("${file}")
  layers = [torch.nn.BatchNorm1d(n) for n in (${norms.map((n) => n.numFeatures).join(', ')})]
  for i, bn in enumerate(layers):
      bn.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"bn{i}.")})
      bn.eval()`);
}

main();
