// Layers as typed builders. A builder knows its options; build() sees the input
// channel count, allocates and initialises parameters, and returns a Layer that
// runs forward (keeping what backward needs) and backward. Containers (model.ts)
// name parameters by layer path, as shared/specs/conventions.md says.
import { SegvolError } from './errors';
import { ops } from './ops';
import type { SavedState } from './recurrent';
import { uniformArray } from './random';
import { Tensor } from './tensor';
import { convLayers } from './conv_layers';

export interface BuildContext {
  inChannels: number;
  random: () => number;
}

/** What a forward pass hands to its backward pass. */
export interface Tape {
  dispose(): void;
}

/** How a forward pass runs: training (batch statistics, dropout) or inference. */
export interface ForwardMode {
  training: boolean;
  /** Whether backward will follow: without it, layers may keep nothing (less memory). */
  keepTape: boolean;
  random: () => number;
}

export interface Layer {
  readonly type: string;
  readonly outChannels: number;
  /** Trainable parameters by name relative to the layer (e.g. "dir0.wx", "weight"). */
  readonly parameters: Map<string, Tensor>;
  /** State saved with the weights but not trained (batch norm's running statistics). */
  readonly buffers?: Map<string, Tensor>;
  /** The output shape for an input shape; throws ERR_SHAPE naming the layer path and both shapes. */
  outputShape(input: readonly number[], path: string): number[];
  forward(x: Tensor, mode: ForwardMode): Promise<{ y: Tensor; tape: Tape }>;
  backward(tape: Tape, dy: Tensor): Promise<{ dx: Tensor; grads: Map<string, Tensor> }>;
  /** One line for summary(): the options. */
  describe(): string;
}

export interface LayerBuilder {
  readonly type: string;
  build(context: BuildContext): Layer;
}


function tapeOf(...tensors: Tensor[]): Tape & { tensors: Tensor[] } {
  return { tensors, dispose: () => tensors.forEach((t) => t.dispose()) };
}

function positiveInteger(value: unknown, layer: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as a positive integer, received ${String(value)}`);
  }
  return value;
}

function uniformTensor(shape: number[], scale: number, random: () => number): Tensor {
  return Tensor.fromArray(uniformArray(shape.reduce((a, b) => a * b, 1), scale, random), shape);
}

export interface PyramidLstmOptions {
  /** O, hidden units per direction. */
  hidden: number;
  /** Odd filter size of the 2D convolutions (the paper: 7). */
  kernel?: number;
  /** Weights start as U(-initScale, initScale) (the paper: 0.1). */
  initScale?: number;
}

class PyramidLstmLayer implements Layer {
  readonly type = 'pyramidLstm';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, random: () => number,
    scale: number) {
    const o4 = 4 * outChannels;
    for (let d = 0; d < 6; ++d) {
      this.parameters.set(`dir${d}.wx`, uniformTensor([o4, inChannels, kernel, kernel], scale, random));
      this.parameters.set(`dir${d}.bx`, uniformTensor([o4], scale, random));
      this.parameters.set(`dir${d}.wh`, uniformTensor([o4, outChannels, kernel, kernel], scale, random));
      this.parameters.set(`dir${d}.bh`, uniformTensor([o4], scale, random));
    }
  }
  private weights() {
    return [0, 1, 2, 3, 4, 5].map((d) => ({
      wx: this.parameters.get(`dir${d}.wx`)!, bx: this.parameters.get(`dir${d}.bx`)!,
      wh: this.parameters.get(`dir${d}.wh`)!, bh: this.parameters.get(`dir${d}.bh`)!,
    }));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    const small = shape.slice(2).filter((s) => s < this.kernel);
    if (shape.length !== 5 || small.length > 0 || shape[1] !== this.inChannels) {
      throw new SegvolError('ERR_SHAPE', `${path} (pyramidLstm): expected a volume (N, ${this.inChannels}, D, H, W) with every ` +
        `spatial axis >= the kernel ${this.kernel}, received (${shape.join(', ')})`);
    }
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }
  async forward(x: Tensor, mode: ForwardMode) {
    const r = await ops.pyramidLstmAsync(x, this.weights(), { keepForBackward: mode.keepTape });
    return { y: r.y, tape: r.saved };
  }
  async backward(tape: Tape, dy: Tensor) {
    const g = await ops.pyramidLstmBackwardAsync(tape as SavedState, dy);
    const grads = new Map<string, Tensor>();
    g.grads.forEach((d, i) => {
      grads.set(`dir${i}.wx`, d.dwx).set(`dir${i}.bx`, d.dbx).set(`dir${i}.wh`, d.dwh).set(`dir${i}.bh`, d.dbh);
    });
    return { dx: g.dx, grads };
  }
  describe() {
    return `hidden ${this.outChannels}, kernel ${this.kernel}x${this.kernel}, 6 directions`;
  }
}

export interface PixelwiseOptions {
  /** F, output channels. */
  units: number;
  initScale?: number;
}

class PixelwiseLayer implements Layer {
  readonly type = 'pixelwise';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly inChannels: number, readonly outChannels: number, random: () => number, scale: number) {
    this.parameters.set('weight', uniformTensor([outChannels, inChannels], scale, random));
    this.parameters.set('bias', uniformTensor([outChannels], scale, random));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length < 4 || shape[1] !== this.inChannels) {
      throw new SegvolError('ERR_SHAPE', `${path} (pixelwise): expected (N, ${this.inChannels}, [D,] H, W), received (${shape.join(', ')})`);
    }
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }
  async forward(x: Tensor) {
    return { y: ops.pixelwise(x, this.parameters.get('weight')!, this.parameters.get('bias')!), tape: tapeOf(x) };
  }
  async backward(tape: Tape, dy: Tensor) {
    const [x] = (tape as ReturnType<typeof tapeOf>).tensors;
    const g = ops.pixelwiseBackward(x!, this.parameters.get('weight')!, dy);
    return { dx: g.dx!, grads: new Map([['weight', g.dw!], ['bias', g.db!]]) };
  }
  describe() {
    return `${this.inChannels} -> ${this.outChannels} per voxel`;
  }
}

type ActivationName = 'tanh' | 'sigmoid' | 'relu';

class ActivationLayer implements Layer {
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly type: ActivationName, readonly outChannels: number) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  async forward(x: Tensor) {
    const y = ops[this.type](x);
    // The tape shares x and y; they stay owned by the model's forward pass.
    return { y, tape: { x, y, dispose() {} } as Tape };
  }
  async backward(tape: Tape, dy: Tensor) {
    const { x, y } = tape as unknown as { x: Tensor; y: Tensor };
    return { dx: ops.activationBackward(this.type, x, y, dy), grads: new Map<string, Tensor>() };
  }
  describe() {
    return '';
  }
}

class SoftmaxLayer implements Layer {
  readonly type = 'softmax';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly outChannels: number) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  async forward(x: Tensor) {
    const y = ops.softmax(x);
    return { y, tape: { y, dispose() {} } as Tape };
  }
  async backward(tape: Tape, dy: Tensor) {
    return { dx: ops.softmaxBackward((tape as unknown as { y: Tensor }).y, dy), grads: new Map<string, Tensor>() };
  }
  describe() {
    return 'over channels';
  }
}

/** The layer builders. */
export const layers = {
  ...convLayers,
  /** PyraMiD-LSTM: six C-LSTMs (+/- D, H, W), outputs summed. */
  pyramidLstm(options: PyramidLstmOptions): LayerBuilder {
    const hidden = positiveInteger(options.hidden, 'pyramidLstm', 'hidden');
    const kernel = positiveInteger(options.kernel ?? 7, 'pyramidLstm', 'kernel');
    if (kernel % 2 === 0) {
      throw new SegvolError('ERR_ARGUMENT', `pyramidLstm: expected an odd kernel ('same' padding), received ${kernel}`);
    }
    return {
      type: 'pyramidLstm',
      build: (c) => new PyramidLstmLayer(c.inChannels, hidden, kernel, c.random, options.initScale ?? 0.1),
    };
  },
  /** Pixel-wise fully connected layer (a 1x1x1 convolution). */
  pixelwise(options: PixelwiseOptions): LayerBuilder {
    const units = positiveInteger(options.units, 'pixelwise', 'units');
    return { type: 'pixelwise', build: (c) => new PixelwiseLayer(c.inChannels, units, c.random, options.initScale ?? 0.1) };
  },
  tanh(): LayerBuilder {
    return { type: 'tanh', build: (c) => new ActivationLayer('tanh', c.inChannels) };
  },
  sigmoid(): LayerBuilder {
    return { type: 'sigmoid', build: (c) => new ActivationLayer('sigmoid', c.inChannels) };
  },
  relu(): LayerBuilder {
    return { type: 'relu', build: (c) => new ActivationLayer('relu', c.inChannels) };
  },
  /** Softmax over channels: per-voxel class probabilities. */
  softmax(): LayerBuilder {
    return { type: 'softmax', build: (c) => new SoftmaxLayer(c.inChannels) };
  },
};


