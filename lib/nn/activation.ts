// Activation and softmax layers (no parameters).
import type { Tensor } from '../core/tensor';
import { checkObject, positiveNumber, rejectUnknown } from '../core/validate';
import { ops } from '../ops';
import type { Layer, LayerBuilder, LayerMemory } from './layer';

type Kind = 'tanh' | 'sigmoid' | 'relu' | 'softmax';

/** amplitude * tanh(slope * x); LeCun's scaled tanh is amplitude 1.7159, slope 2/3 (ZNN writes 0.6666). */
export interface TanhOptions {
  /** The output's scale (default 1). */
  amplitude?: number;
  /** The input's scale (default 1). */
  slope?: number;
}

class ActivationLayer implements Layer {
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly type: Kind, readonly outChannels: number) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  async forward(x: Tensor): Promise<Tensor> {
    return ops[this.type](x);
  }
  describe() {
    return this.type === 'softmax' ? 'over channels' : '';
  }
  memory(): LayerMemory {
    // The gradient needs the output only (the optimized kernels derive every slope from it).
    return { keepsInput: false, keepsOutput: true, saved: 0, forward: 0, backward: 0 };
  }
}

/**
 * A scaled tanh as three taped ops (scale, tanh, scale): no kernel of its own, and its
 * gradient is the ops' gradients chained.
 */
class ScaledTanhLayer implements Layer {
  readonly type = 'tanh';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly outChannels: number, private readonly amplitude: number, private readonly slope: number) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  async forward(x: Tensor): Promise<Tensor> {
    // The tape keeps views of what tanh's gradient needs, so the intermediates can go.
    const inner = this.slope === 1 ? x : ops.scale(x, this.slope);
    const t = ops.tanh(inner);
    if (inner !== x) inner.dispose();
    if (this.amplitude === 1) return t;
    try {
      return ops.scale(t, this.amplitude);
    } finally {
      t.dispose();
    }
  }
  describe() {
    return `${this.amplitude} tanh(${this.slope} x)`;
  }
  memory(input: readonly number[]): LayerMemory {
    // tanh's own output stays on the tape (not this layer's, which the outer scale does not need);
    // one intermediate of the input's size lives at a time.
    const size = input.reduce((a, b) => a * b, 1);
    return { keepsInput: false, keepsOutput: this.amplitude === 1, saved: this.amplitude === 1 ? 0 : size, forward: size, backward: size };
  }
}

const builder = (type: Kind): LayerBuilder => ({ type, options: {}, build: (c) => new ActivationLayer(type, c.inChannels) });

function tanhBuilder(options: TanhOptions = {}): LayerBuilder {
  checkObject(options, 'tanh');
  rejectUnknown(options, ['amplitude', 'slope'], 'tanh');
  const amplitude = options.amplitude === undefined ? 1 : positiveNumber(options.amplitude, 'tanh: amplitude');
  const slope = options.slope === undefined ? 1 : positiveNumber(options.slope, 'tanh: slope');
  if (amplitude === 1 && slope === 1) return builder('tanh');
  return { type: 'tanh', options: { amplitude, slope }, build: (c) => new ScaledTanhLayer(c.inChannels, amplitude, slope) };
}

export const activationLayers = {
  /** tanh, or amplitude * tanh(slope * x) with options (LeCun's: { amplitude: 1.7159, slope: 2 / 3 }). */
  tanh: (options?: TanhOptions): LayerBuilder => tanhBuilder(options),
  sigmoid: (): LayerBuilder => builder('sigmoid'),
  relu: (): LayerBuilder => builder('relu'),
  /** Softmax over channels: per-voxel class probabilities. */
  softmax: (): LayerBuilder => builder('softmax'),
};
