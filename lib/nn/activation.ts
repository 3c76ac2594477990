// Activation and softmax layers (no parameters).
import type { Tensor } from '../core/tensor';
import { ops } from '../ops';
import type { Layer, LayerBuilder, LayerMemory } from './layer';

type Kind = 'tanh' | 'sigmoid' | 'relu' | 'softmax';

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

const builder = (type: Kind): LayerBuilder => ({ type, options: {}, build: (c) => new ActivationLayer(type, c.inChannels) });

export const activationLayers = {
  tanh: (): LayerBuilder => builder('tanh'),
  sigmoid: (): LayerBuilder => builder('sigmoid'),
  relu: (): LayerBuilder => builder('relu'),
  /** Softmax over channels: per-voxel class probabilities. */
  softmax: (): LayerBuilder => builder('softmax'),
};
