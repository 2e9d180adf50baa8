// `npm run demo:distributed`: the demo's network trained data-parallel on 4 worker threads with 8
// samples per replica per step, three ways, from the same initialization and the same batches:
//   - one process with the whole batch of 32 (the reference);
//   - 4 workers, each with per-replica BatchNorm1d layers (each normalizes its 8 samples alone);
//   - 4 workers with SyncBatchNorm (normalizes with the statistics of all 32).
// The workers average every gradient over the replicas (allReduce / 4), as DistributedDataParallel
// does. Prints the loss and batch accuracy of each step, draws both as an SVG, and reports how far each
// data-parallel run strays from the reference.
//
//   npm run demo:distributed -- [--steps 150] [--seed 7] [--out demo-output]
//
// Across processes (or machines) instead of worker threads, each process one replica over MPI (after
// `npm run build:mpi`; rank 0 prints and writes the same report):
//   mpirun -np 4 node dist-examples/train-distributed.js --transport mpi
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import {
  BatchNorm1d,
  type ProcessGroup,
  SyncBatchNorm,
  type WorkerGroupMember,
  type WorkerProcessGroup,
  createWorkerGroup,
  joinWorkerGroup,
  setNumThreads,
} from 'batchnorm';

import { Linear, ReLU, SGD, createRandom, softmaxCrossEntropy } from './mlp';

const REPLICAS = 4;
const PER_REPLICA = 8;
const BATCH = REPLICAS * PER_REPLICA;
const CLASSES = 3;
const FEATURES = 8;
const HIDDEN = 32;
const LEARNING_RATE = 0.05;
const MOMENTUM = 0.9;
const FEATURE_SCALES = [1e-3, 1e3, 1e-1, 1e2, 1e1, 1e-2, 1, 1e-3];

type Mode = 'single' | 'per-replica' | 'sync';
interface Step {
  loss: number;
  accuracy: number;
}
interface Task {
  mode: Mode;
  steps: number;
  seed: number;
  member: WorkerGroupMember | null;
}

/** The i-th batch of BATCH points of a 3-arm spiral with badly scaled features (the same on every replica). */
function batch(seed: number, step: number): { x: Float32Array; labels: Int32Array } {
  const random = createRandom(seed * 100_003 + step);
  const x = new Float32Array(BATCH * FEATURES);
  const labels = new Int32Array(BATCH);
  for (let row = 0; row < BATCH; row++) {
    const k = Math.floor(random.uniform() * CLASSES);
    const t = random.uniform();
    const angle = (k * 2 * Math.PI) / CLASSES + t * 6 + random.normal() * 0.2;
    const px = t * Math.sin(angle);
    const py = t * Math.cos(angle);
    const raw = [px, py, px + py, px - py, px * py, px * px - py * py, Math.hypot(px, py), Math.atan2(py, px)];
    for (let f = 0; f < FEATURES; f++) x[row * FEATURES + f] = raw[f]! * FEATURE_SCALES[f]!;
    labels[row] = k;
  }
  return { x, labels };
}

type Norm = BatchNorm1d | SyncBatchNorm;
/** What a replica needs of its group: the exchange, and the in-place sum for the gradients. */
type ReplicaGroup = ProcessGroup & Pick<WorkerProcessGroup, 'allReduce'>;

/** BN(input) -> [Linear -> BN -> ReLU] x 2 -> Linear, with async batch norm calls (SyncBatchNorm exchanges). */
class Network {
  readonly layers: Linear[];
  readonly norms: Norm[];
  private readonly relus = [new ReLU(), new ReLU()];

  constructor(seed: number, makeNorm: (features: number) => Norm) {
    const random = createRandom(seed);
    this.layers = [new Linear(FEATURES, HIDDEN, random), new Linear(HIDDEN, HIDDEN, random), new Linear(HIDDEN, CLASSES, random)];
    this.norms = [makeNorm(FEATURES), makeNorm(HIDDEN), makeNorm(HIDDEN)];
  }

  parameters() {
    return [...this.layers.flatMap((l) => l.parameters()), ...this.norms.flatMap((n) => n.parameters())];
  }

  async forward(x: Float32Array, rows: number): Promise<Float32Array> {
    const norm = async (i: number, h: Float32Array, width: number) => (await this.norms[i]!.forwardAsync({ data: h, shape: [rows, width] })).data;
    let h = await norm(0, x, FEATURES);
    h = this.relus[0]!.forward(await norm(1, this.layers[0]!.forward(h, rows), HIDDEN));
    h = this.relus[1]!.forward(await norm(2, this.layers[1]!.forward(h, rows), HIDDEN));
    return this.layers[2]!.forward(h, rows);
  }

  async backward(dLogits: Float32Array, rows: number): Promise<void> {
    const norm = async (i: number, g: Float32Array, width: number) => (await this.norms[i]!.backwardAsync({ data: g, shape: [rows, width] })).data;
    let g = this.layers[2]!.backward(dLogits, rows);
    g = this.layers[1]!.backward(await norm(2, this.relus[1]!.backward(g), HIDDEN), rows);
    g = this.layers[0]!.backward(await norm(1, this.relus[0]!.backward(g), HIDDEN), rows);
    await norm(0, g, FEATURES);
  }
}

/** One run's training loop: on the main thread (single), in a worker or an MPI process (one replica of a group). */
async function train(task: Task, processGroup?: ReplicaGroup): Promise<Step[]> {
  setNumThreads(1);
  const group: ReplicaGroup | null = processGroup ?? (task.member === null ? null : joinWorkerGroup(task.member));
  const rank = group?.rank ?? 0;
  const makeNorm = (features: number): Norm =>
    task.mode === 'sync' ? new SyncBatchNorm(features, { processGroup: group as ProcessGroup }) : new BatchNorm1d(features);
  const network = new Network(task.seed, makeNorm);
  const optimizer = new SGD(network.parameters(), LEARNING_RATE, MOMENTUM);
  const rows = group === null ? BATCH : PER_REPLICA;
  const steps: Step[] = [];
  for (let step = 0; step < task.steps; step++) {
    const whole = batch(task.seed, step);
    const x = whole.x.subarray(rank * rows * FEATURES, (rank + 1) * rows * FEATURES);
    const labels = whole.labels.subarray(rank * rows, (rank + 1) * rows);
    optimizer.zeroGrad();
    const logits = await network.forward(x, rows);
    const { loss, gradient, correct } = softmaxCrossEntropy(logits, labels, CLASSES);
    await network.backward(gradient, rows);
    const metrics = Float64Array.of(loss, correct);
    if (group !== null) {
      // DistributedDataParallel's average of every gradient, and the step's loss and accuracy over all replicas.
      for (const p of network.parameters()) {
        if (p.grad === null) continue;
        await group.allReduce(p.grad);
        for (let i = 0; i < p.grad.length; i++) p.grad[i]! /= REPLICAS;
      }
      await group.allReduce(metrics);
      metrics[0]! /= REPLICAS;
    }
    optimizer.step();
    steps.push({ loss: metrics[0]!, accuracy: metrics[1]! / BATCH });
  }
  return steps;
}

async function runReplicas(mode: Mode, steps: number, seed: number): Promise<Step[]> {
  const group = createWorkerGroup(REPLICAS);
  const results = await Promise.all(
    Array.from({ length: REPLICAS }, (_, rank) => {
      const task: Task = { mode, steps, seed, member: group.member(rank) };
      const worker = new Worker(__filename, { workerData: task });
      group.watch(worker, rank);
      return new Promise<Step[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  return results[0]!;
}

/** Loss and accuracy per step of the three runs, as two line charts side by side. */
function svg(curves: { name: string; color: string; steps: Step[] }[]): string {
  const width = 420, height = 260, pad = 40;
  const panel = (offset: number, title: string, value: (s: Step) => number, top: number) => {
    const count = curves[0]!.steps.length;
    const x = (i: number) => offset + pad + (i / Math.max(1, count - 1)) * (width - 2 * pad);
    const y = (v: number) => height - pad - (Math.min(v, top) / top) * (height - 2 * pad);
    const lines = curves.map(({ color, steps }) =>
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${steps.map((s, i) => `${x(i).toFixed(1)},${y(value(s)).toFixed(1)}`).join(' ')}"/>`,
    );
    return [
      `<text x="${offset + width / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
      `<line x1="${offset + pad}" y1="${height - pad}" x2="${offset + width - pad}" y2="${height - pad}" stroke="#888"/>`,
      `<line x1="${offset + pad}" y1="${pad}" x2="${offset + pad}" y2="${height - pad}" stroke="#888"/>`,
      `<text x="${offset + width / 2}" y="${height - 10}" text-anchor="middle" font-size="11">step</text>`,
      `<text x="${offset + pad - 4}" y="${pad + 4}" text-anchor="end" font-size="10">${top}</text>`,
      `<text x="${offset + pad - 4}" y="${height - pad}" text-anchor="end" font-size="10">0</text>`,
      ...lines,
    ].join('\n');
  };
  const maxLoss = Math.ceil(Math.max(...curves.flatMap((c) => c.steps.map((s) => s.loss))));
  // The legend under the charts; the one-process line is drawn first, so SyncBatchNorm's covers it where they agree.
  const legend = curves.map(
    (c, i) => `<text x="${pad + i * ((2 * width - 2 * pad) / curves.length)}" y="${height + 20}" font-size="12" fill="${c.color}">— ${c.name}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * width}" height="${height + 34}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(0, 'training loss', (s) => s.loss, maxLoss),
    panel(width, 'batch accuracy', (s) => s.accuracy, 1),
    ...legend,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '150' },
      seed: { type: 'string', default: '7' },
      out: { type: 'string', default: 'demo-output' },
      transport: { type: 'string', default: 'workers' },
    },
  });
  if (values.transport !== 'workers' && values.transport !== 'mpi') throw new RangeError(`--transport must be workers or mpi, got ${values.transport}`);
  const steps = Number(values.steps);
  const seed = Number(values.seed);
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`--steps must be a positive integer, got ${values.steps}`);
  if (!Number.isInteger(seed)) throw new RangeError(`--seed must be an integer, got ${values.seed}`);
  console.log(
    `batchnorm distributed demo: MLP ${FEATURES}-${HIDDEN}-${HIDDEN}-${CLASSES} with batch norm, ${REPLICAS} worker threads x ` +
      `${PER_REPLICA} samples per step against one process with the batch of ${BATCH}; SGD lr ${LEARNING_RATE} momentum ${MOMENTUM}, seed ${seed}\n`,
  );
  let world: ReplicaGroup | null = null;
  if (values.transport === 'mpi') {
    // batchnorm/mpi is loaded only here: a plain run needs neither MPI nor its addon.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { mpiWorld } = require('batchnorm/mpi') as typeof import('batchnorm/mpi');
    world = mpiWorld();
    if (world.size !== REPLICAS) throw new RangeError(`--transport mpi needs ${REPLICAS} processes (mpirun -np ${REPLICAS}), got ${world.size}`);
  }
  const single = await train({ mode: 'single', steps, seed, member: null });
  const perReplica = world === null ? await runReplicas('per-replica', steps, seed) : await train({ mode: 'per-replica', steps, seed, member: null }, world);
  const sync = world === null ? await runReplicas('sync', steps, seed) : await train({ mode: 'sync', steps, seed, member: null }, world);
  if (world !== null && world.rank !== 0) return;
  const runs = [
    { name: `one process, batch ${BATCH}`, color: '#222222', steps: single },
    { name: `${REPLICAS} ${world === null ? 'workers' : 'processes'}, per-replica BatchNorm1d`, color: '#d62728', steps: perReplica },
    { name: `${REPLICAS} ${world === null ? 'workers' : 'processes'}, SyncBatchNorm`, color: '#1f77b4', steps: sync },
  ];
  console.log(`step | ${runs.map((r) => r.name.padEnd(34)).join(' | ')}`);
  for (let i = 0; i < steps; i++) {
    if (i % 10 !== 0 && i !== steps - 1) continue;
    const cells = runs.map((r) => `loss ${r.steps[i]!.loss.toFixed(4)}  accuracy ${(r.steps[i]!.accuracy * 100).toFixed(1).padStart(5)}%`.padEnd(34));
    console.log(`${String(i + 1).padStart(4)} | ${cells.join(' | ')}`);
  }
  const strayed = (other: Step[]) => Math.max(...other.map((s, i) => Math.abs(s.loss - single[i]!.loss)));
  const report = {
    steps,
    seed,
    maxLossDifference: { perReplica: strayed(perReplica), sync: strayed(sync) },
    runs: runs.map((r) => ({ name: r.name, losses: r.steps.map((s) => s.loss), accuracies: r.steps.map((s) => s.accuracy) })),
  };
  console.log(
    `\nlargest loss difference from the one-process run over ${steps} steps: SyncBatchNorm ${report.maxLossDifference.sync.toExponential(2)}, ` +
      `per-replica BatchNorm1d ${report.maxLossDifference.perReplica.toExponential(2)}`,
  );
  mkdirSync(values.out, { recursive: true });
  writeFileSync(path.join(values.out, 'distributed.svg'), svg(runs));
  writeFileSync(path.join(values.out, 'distributed.json'), JSON.stringify(report));
  console.log(`wrote ${path.join(values.out, 'distributed.svg')} and distributed.json`);
}

if (isMainThread) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  train(workerData as Task).then(
    (steps) => parentPort!.postMessage(steps),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
