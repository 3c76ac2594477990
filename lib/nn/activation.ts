// Activation and softmax layers (no parameters).
import type { Tensor } from '../core/tensor';
import { ops } from '../ops';
import type { Layer, LayerBuilder } from './layer';

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
}

const builder = (type: Kind): LayerBuilder => ({ type, options: {}, build: (c) => new ActivationLayer(type, c.inChannels) });

export const activationLayers = {
  tanh: (): LayerBuilder => builder('tanh'),
  sigmoid: (): LayerBuilder => builder('sigmoid'),
  relu: (): LayerBuilder => builder('relu'),
  /** Softmax over channels: per-voxel class probabilities. */
  softmax: (): LayerBuilder => builder('softmax'),
};
