// The pieces of a small multilayer perceptron that the demo needs around batchnorm's BatchNorm1d:
// a seeded random source, a linear layer, ReLU, softmax cross-entropy and SGD with momentum.
// Written for clarity, not speed; none of this is part of the library's API.
import type { Parameter } from 'batchnorm';

/** Mulberry32: a small, fast, seedable generator (deterministic runs from --seed). */
export function createRandom(seed: number): { uniform(): number; normal(): number } {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
  return { uniform, normal };
}

/** y = x W^T + b for a batch x of shape (N, inputs); He-initialized from the given random source. */
export class Linear {
  readonly weight: Parameter;
  readonly bias: Parameter;
  private lastInput: Float32Array | null = null;

  constructor(
    readonly inputs: number,
    readonly outputs: number,
    random: { normal(): number },
  ) {
    const scale = Math.sqrt(2 / inputs);
    this.weight = { data: Float32Array.from({ length: outputs * inputs }, () => random.normal() * scale), grad: null, requiresGrad: true };
    this.bias = { data: new Float32Array(outputs), grad: null, requiresGrad: true };
  }

  /** A copy with the same weights (so two networks start from the same initialization). */
  clone(): Linear {
    const copy = new Linear(this.inputs, this.outputs, { normal: () => 0 });
    copy.weight.data.set(this.weight.data);
    copy.bias.data.set(this.bias.data);
    return copy;
  }

  forward(x: Float32Array, rows: number): Float32Array {
    const { inputs, outputs } = this;
    const w = this.weight.data;
    const y = new Float32Array(rows * outputs);
    for (let n = 0; n < rows; n++) {
      for (let o = 0; o < outputs; o++) {
        let sum = this.bias.data[o]!;
        for (let i = 0; i < inputs; i++) sum += x[n * inputs + i]! * w[o * inputs + i]!;
        y[n * outputs + o] = sum;
      }
    }
    this.lastInput = x;
    return y;
  }

  /** Accumulates weight/bias gradients and returns the gradient with respect to the input. */
  backward(dy: Float32Array, rows: number): Float32Array {
    const { inputs, outputs } = this;
    const x = this.lastInput!;
    const w = this.weight.data;
    const dw = (this.weight.grad ??= new Float32Array(w.length));
    const db = (this.bias.grad ??= new Float32Array(outputs));
    const dx = new Float32Array(rows * inputs);
    for (let n = 0; n < rows; n++) {
      for (let o = 0; o < outputs; o++) {
        const g = dy[n * outputs + o]!;
        if (g === 0) continue;
        db[o]! += g;
        for (let i = 0; i < inputs; i++) {
          dw[o * inputs + i]! += g * x[n * inputs + i]!;
          dx[n * inputs + i]! += g * w[o * inputs + i]!;
        }
      }
    }
    return dx;
  }

  parameters(): Parameter[] {
    return [this.weight, this.bias];
  }
}

/** ReLU that remembers its mask for the backward pass. */
export class ReLU {
  private mask: Uint8Array | null = null;

  forward(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    const mask = new Uint8Array(x.length);
    for (let i = 0; i < x.length; i++) {
      if (x[i]! > 0) {
        y[i] = x[i]!;
        mask[i] = 1;
      }
    }
    this.mask = mask;
    return y;
  }

  backward(dy: Float32Array): Float32Array {
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) if (this.mask![i]) dx[i] = dy[i]!;
    return dx;
  }
}

/** Mean softmax cross-entropy over a batch, its gradient with respect to the logits, and hits. */
export function softmaxCrossEntropy(
  logits: Float32Array,
  labels: Int32Array,
  classes: number,
): { loss: number; gradient: Float32Array; correct: number } {
  const rows = labels.length;
  const gradient = new Float32Array(logits.length);
  let loss = 0;
  let correct = 0;
  for (let n = 0; n < rows; n++) {
    let max = -Infinity;
    let best = 0;
    for (let k = 0; k < classes; k++) {
      const v = logits[n * classes + k]!;
      if (v > max) {
        max = v;
        best = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(logits[n * classes + k]! - max);
    const label = labels[n]!;
    loss += -(logits[n * classes + label]! - max - Math.log(sum));
    if (best === label) correct++;
    for (let k = 0; k < classes; k++) {
      const p = Math.exp(logits[n * classes + k]! - max) / sum;
      gradient[n * classes + k] = (p - (k === label ? 1 : 0)) / rows;
    }
  }
  return { loss: loss / rows, gradient, correct };
}

/** SGD with momentum (PyTorch's formulation: v = mu v + g; p -= lr v). */
export class SGD {
  private readonly velocity = new Map<Parameter, Float32Array | Float64Array>();

  constructor(
    private readonly parameters: Parameter[],
    private readonly learningRate: number,
    private readonly momentum: number,
  ) {}

  step(): void {
    for (const p of this.parameters) {
      if (p.grad === null) continue;
      let v = this.velocity.get(p);
      if (v === undefined) {
        v = p.grad.slice();
        this.velocity.set(p, v);
      } else {
        for (let i = 0; i < v.length; i++) v[i] = this.momentum * v[i]! + p.grad[i]!;
      }
      for (let i = 0; i < v.length; i++) p.data[i]! -= this.learningRate * v[i]!;
    }
  }

  zeroGrad(): void {
    for (const p of this.parameters) p.grad = null;
  }
}
