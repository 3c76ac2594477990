// Batch normalization and dropout: layers whose behaviour depends on the mode.
import { SegvolError } from '../core/errors';
import { keep, Tensor } from '../core/tensor';
import { ops } from '../ops';
import { parameter, shapeError, type ForwardMode, type Layer, type LayerBuilder, type LayerMemory } from './layer';

class BatchNormLayer implements Layer {
  readonly type = 'batchNorm';
  readonly parameters = new Map<string, Tensor>();
  readonly buffers = new Map<string, Tensor>();
  constructor(readonly outChannels: number, private readonly o: { momentum?: number; eps?: number }) {
    const none = () => 0;
    this.parameters.set('weight', parameter([outChannels], 'ones', none)).set('bias', parameter([outChannels], 'zeros', none));
    // Buffers outlive any tidy() scope a model is built in (parameters do by requiresGrad).
    this.buffers.set('running_mean', keep(Tensor.zeros([outChannels]))).set('running_var', keep(Tensor.full([outChannels], 1)));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length < 2 || shape[1] !== this.outChannels) throw shapeError(path, 'batchNorm', `(N, ${this.outChannels}, ...)`, shape);
    return [...shape];
  }
  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    const r = ops.batchNorm(x, {
      gamma: this.parameters.get('weight')!, beta: this.parameters.get('bias')!, runningMean: this.buffers.get('running_mean')!,
      runningVar: this.buffers.get('running_var')!, training: mode.training, momentum: this.o.momentum ?? 0.1, eps: this.o.eps ?? 1e-5,
    });
    // The tape keeps its own views of the statistics.
    r.mean.dispose();
    r.invStd.dispose();
    return r.y;
  }
  describe() {
    return `${this.outChannels} channels`;
  }
}

class DropoutLayer implements Layer {
  readonly type = 'dropout';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly outChannels: number, private readonly p: number) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    if (!mode.training || this.p === 0) return x.reshape(x.shape);
    return ops.dropout(x, this.p, mode.random);
  }
  describe() {
    return `p ${this.p}`;
  }
  memory(input: readonly number[]): LayerMemory {
    // The product with the mask keeps both factors: the input and the mask.
    return { keepsInput: true, keepsOutput: false, saved: input.reduce((a, b) => a * b, 1), forward: 0, backward: 0 };
  }
}

export const normalizationLayers = {
  /** Batch normalization; its running statistics are saved with the weights (running_mean, running_var). */
  batchNorm(options: { momentum?: number; eps?: number } = {}): LayerBuilder {
    return { type: 'batchNorm', options: { ...options }, build: (c) => new BatchNormLayer(c.inChannels, options) };
  },
  /** Dropout with probability p in training; identity in inference. */
  dropout(options: { p: number }): LayerBuilder {
    if (!(options.p >= 0 && options.p < 1)) throw new SegvolError('ERR_ARGUMENT', `dropout: expected 0 <= p < 1, received ${options.p}`);
    return { type: 'dropout', options: { ...options }, build: (c) => new DropoutLayer(c.inChannels, options.p) };
  },
};
