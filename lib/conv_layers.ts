// Convolutional, pooling, resampling, normalization and dropout layers (the 2D-3D
// ConvNets and the encoder-decoders build on these). Output shapes follow
// PyTorch's formulas; a shape that does not fit is reported with the layer path.
import { SegvolError } from './errors';
import type { ForwardMode, Layer, LayerBuilder, Tape } from './layers';
import { ops, type PerAxis, type UpsampleMode } from './ops';
import { uniformArray } from './random';
import { Tensor } from './tensor';

function perAxis(value: PerAxis | undefined, n: number, fallback: number): number[] {
  if (value === undefined) return new Array<number>(n).fill(fallback);
  return typeof value === 'number' ? new Array<number>(n).fill(value) : [...value];
}

function shapeError(path: string, type: string, expected: string, shape: readonly number[]): SegvolError {
  return new SegvolError('ERR_SHAPE', `${path} (${type}): expected ${expected}, received (${shape.join(', ')})`);
}

function keep(...tensors: Tensor[]): Tape & { tensors: Tensor[] } {
  // The tensors belong to the model's forward pass; the tape only refers to them.
  return { tensors, dispose() {} };
}

export interface ConvLayerOptions {
  /** Output channels. */
  out: number;
  /** Kernel per spatial axis: 2 entries for 2D, 3 for 3D (a number means 3D cubes). */
  kernel: PerAxis;
  stride?: PerAxis;
  padding?: PerAxis | 'same';
  dilation?: PerAxis;
  groups?: number;
  bias?: boolean;
  /** 'uniform': U(-initScale, initScale); 'msra': He normal for ReLU nets (ZNN's VD2D). Default msra. */
  init?: 'uniform' | 'msra';
  initScale?: number;
}

class ConvLayer implements Layer {
  readonly type = 'conv';
  readonly parameters = new Map<string, Tensor>();
  private readonly rank: number;
  constructor(readonly inChannels: number, readonly outChannels: number, private readonly o: ConvLayerOptions, random: () => number) {
    const kernel = typeof o.kernel === 'number' ? [o.kernel, o.kernel, o.kernel] : [...o.kernel];
    this.rank = kernel.length;
    const groups = o.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new SegvolError('ERR_ARGUMENT', `conv: ${inChannels} input and ${outChannels} output channels must be divisible by groups ${groups}`);
    }
    const shape = [outChannels, inChannels / groups, ...kernel];
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const size = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if ((o.init ?? 'msra') === 'msra') {
      const std = Math.sqrt(2 / fanIn);
      data = new Float32Array(size);
      for (let i = 0; i < size; ++i) data[i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    } else {
      data = uniformArray(size, o.initScale ?? 0.1, random);
    }
    this.parameters.set('weight', Tensor.fromArray(data, shape));
    if (o.bias ?? true) this.parameters.set('bias', Tensor.zeros([outChannels]));
  }
  private options() {
    const bias = this.parameters.get('bias');
    return { stride: this.o.stride, padding: this.o.padding, dilation: this.o.dilation, groups: this.o.groups, ...(bias ? { bias } : {}) } as const;
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== this.rank + 2 || shape[1] !== this.inChannels) {
      throw shapeError(path, 'conv', `(N, ${this.inChannels}, ${this.rank === 3 ? 'D, H, W' : 'H, W'})`, shape);
    }
    const kernel = this.parameters.get('weight')!.shape.slice(2);
    const stride = perAxis(this.o.stride, this.rank, 1), dilation = perAxis(this.o.dilation, this.rank, 1);
    const padding = this.o.padding === 'same' ? kernel.map((k, a) => ((k - 1) * dilation[a]!) / 2) : perAxis(this.o.padding, this.rank, 0);
    const out = kernel.map((k, a) => Math.floor((shape[2 + a]! + 2 * padding[a]! - dilation[a]! * (k - 1) - 1) / stride[a]!) + 1);
    if (out.some((s) => s < 1)) {
      throw shapeError(path, 'conv', `a volume larger than the dilated kernel (${kernel.map((k, a) => (k - 1) * dilation[a]! + 1).join(', ')})`, shape);
    }
    return [shape[0]!, this.outChannels, ...out];
  }
  async forward(x: Tensor) {
    return { y: await ops.convAsync(x, this.parameters.get('weight')!, this.options()), tape: keep(x) };
  }
  async backward(tape: Tape, dy: Tensor) {
    const [x] = (tape as ReturnType<typeof keep>).tensors;
    const g = await ops.convBackwardAsync(x!, this.parameters.get('weight')!, dy, this.options(), { bias: this.parameters.has('bias') });
    const grads = new Map([['weight', g.dw!]]);
    if (g.db) grads.set('bias', g.db);
    return { dx: g.dx!, grads };
  }
  describe() {
    const k = this.parameters.get('weight')!.shape.slice(2).join('x');
    return `${this.inChannels} -> ${this.outChannels}, kernel ${k}${this.o.dilation ? `, dilation ${String(this.o.dilation)}` : ''}`;
  }
}

export interface ConvTransposeLayerOptions {
  out: number;
  kernel: PerAxis;
  stride?: PerAxis;
  padding?: PerAxis;
  outputPadding?: PerAxis;
  bias?: boolean;
  initScale?: number;
}

class ConvTransposeLayer implements Layer {
  readonly type = 'convTranspose';
  readonly parameters = new Map<string, Tensor>();
  private readonly rank: number;
  constructor(readonly inChannels: number, readonly outChannels: number, private readonly o: ConvTransposeLayerOptions, random: () => number) {
    const kernel = typeof o.kernel === 'number' ? [o.kernel, o.kernel, o.kernel] : [...o.kernel];
    this.rank = kernel.length;
    const shape = [inChannels, outChannels, ...kernel];
    this.parameters.set('weight', Tensor.fromArray(uniformArray(shape.reduce((a, b) => a * b, 1), o.initScale ?? 0.1, random), shape));
    if (o.bias ?? true) this.parameters.set('bias', Tensor.zeros([outChannels]));
  }
  private options() {
    const bias = this.parameters.get('bias');
    return { stride: this.o.stride, padding: this.o.padding, outputPadding: this.o.outputPadding, ...(bias ? { bias } : {}) };
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== this.rank + 2 || shape[1] !== this.inChannels) {
      throw shapeError(path, 'convTranspose', `(N, ${this.inChannels}, ${this.rank === 3 ? 'D, H, W' : 'H, W'})`, shape);
    }
    const kernel = this.parameters.get('weight')!.shape.slice(2);
    const stride = perAxis(this.o.stride, this.rank, 1), padding = perAxis(this.o.padding, this.rank, 0);
    const extra = perAxis(this.o.outputPadding, this.rank, 0);
    return [shape[0]!, this.outChannels, ...kernel.map((k, a) => (shape[2 + a]! - 1) * stride[a]! - 2 * padding[a]! + k + extra[a]!)];
  }
  async forward(x: Tensor) {
    return { y: ops.convTranspose(x, this.parameters.get('weight')!, this.options()), tape: keep(x) };
  }
  async backward(tape: Tape, dy: Tensor) {
    const [x] = (tape as ReturnType<typeof keep>).tensors;
    const g = ops.convTransposeBackward(x!, this.parameters.get('weight')!, dy, this.options(), { bias: this.parameters.has('bias') });
    const grads = new Map([['weight', g.dw!]]);
    if (g.db) grads.set('bias', g.db);
    return { dx: g.dx!, grads };
  }
  describe() {
    return `${this.inChannels} -> ${this.outChannels}, kernel ${this.parameters.get('weight')!.shape.slice(2).join('x')}`;
  }
}

type PoolKind = 'maxPool' | 'avgPool' | 'maxFilter';

class PoolLayer implements Layer {
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly type: PoolKind, readonly outChannels: number,
    private readonly o: { kernel: PerAxis; stride?: PerAxis; padding?: PerAxis; dilation?: PerAxis }) {}
  private geometry(rank: number) {
    const kernel = perAxis(this.o.kernel, rank, 1);
    return {
      kernel,
      stride: this.type === 'maxFilter' ? new Array<number>(rank).fill(1) : perAxis(this.o.stride, rank, 0).map((s, a) => s || kernel[a]!),
      padding: perAxis(this.o.padding, rank, 0),
      dilation: this.type === 'maxFilter' ? perAxis(this.o.dilation, rank, 1) : new Array<number>(rank).fill(1),
    };
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== 4 && shape.length !== 5) throw shapeError(path, this.type, '(N, C, [D,] H, W)', shape);
    const g = this.geometry(shape.length - 2);
    const out = g.kernel.map((k, a) => Math.floor((shape[2 + a]! + 2 * g.padding[a]! - g.dilation[a]! * (k - 1) - 1) / g.stride[a]!) + 1);
    if (out.some((s) => s < 1)) throw shapeError(path, this.type, `a volume larger than the window (${g.kernel.join(', ')})`, shape);
    return [shape[0]!, shape[1]!, ...out];
  }
  async forward(x: Tensor) {
    const g = this.geometry(x.rank - 2);
    const y = this.type === 'avgPool' ? ops.avgPool(x, g) : ops.maxPool(x, g);
    return { y, tape: keep(x) };
  }
  async backward(tape: Tape, dy: Tensor) {
    const [x] = (tape as ReturnType<typeof keep>).tensors;
    const g = this.geometry(x!.rank - 2);
    const dx = this.type === 'avgPool' ? ops.avgPoolBackward(x!, dy, g) : ops.maxPoolBackward(x!, dy, g);
    return { dx, grads: new Map<string, Tensor>() };
  }
  describe() {
    return `window ${String(this.o.kernel)}${this.type === 'maxFilter' && this.o.dilation ? `, dilation ${String(this.o.dilation)}` : ''}`;
  }
}

class UpsampleLayer implements Layer {
  readonly type = 'upsample';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly outChannels: number, private readonly o: { scale: PerAxis; mode?: UpsampleMode; alignCorners?: boolean }) {}
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== 4 && shape.length !== 5) throw shapeError(path, 'upsample', '(N, C, [D,] H, W)', shape);
    const scale = typeof this.o.scale === 'number' ? new Array<number>(shape.length - 2).fill(this.o.scale) : [...this.o.scale];
    return [shape[0]!, shape[1]!, ...shape.slice(2).map((s, a) => Math.max(1, Math.floor(s * scale[a]!)))];
  }
  private options() {
    return { mode: this.o.mode ?? 'nearest', ...(this.o.mode === 'linear' ? { alignCorners: this.o.alignCorners ?? false } : {}) } as const;
  }
  async forward(x: Tensor) {
    const size = this.outputShape(x.shape, 'upsample').slice(2);
    return { y: ops.upsample(x, { size, ...this.options() }), tape: keep(x) };
  }
  async backward(tape: Tape, dy: Tensor) {
    const [x] = (tape as ReturnType<typeof keep>).tensors;
    return { dx: ops.upsampleBackward(dy, x!.shape, this.options()), grads: new Map<string, Tensor>() };
  }
  describe() {
    return `x${String(this.o.scale)} ${this.o.mode ?? 'nearest'}`;
  }
}

class BatchNormLayer implements Layer {
  readonly type = 'batchNorm';
  readonly parameters = new Map<string, Tensor>();
  readonly buffers = new Map<string, Tensor>();
  constructor(readonly outChannels: number, private readonly o: { momentum?: number; eps?: number }) {
    this.parameters.set('weight', Tensor.full([outChannels], 1)).set('bias', Tensor.zeros([outChannels]));
    this.buffers.set('running_mean', Tensor.zeros([outChannels])).set('running_var', Tensor.full([outChannels], 1));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length < 2 || shape[1] !== this.outChannels) throw shapeError(path, 'batchNorm', `(N, ${this.outChannels}, ...)`, shape);
    return [...shape];
  }
  async forward(x: Tensor, mode: ForwardMode) {
    const r = ops.batchNorm(x, {
      gamma: this.parameters.get('weight')!, beta: this.parameters.get('bias')!, runningMean: this.buffers.get('running_mean')!,
      runningVar: this.buffers.get('running_var')!, training: mode.training, momentum: this.o.momentum ?? 0.1, eps: this.o.eps ?? 1e-5,
    });
    const tape = { tensors: [x, r.mean, r.invStd], training: mode.training, dispose: () => { r.mean.dispose(); r.invStd.dispose(); } };
    return { y: r.y, tape };
  }
  async backward(tape: Tape, dy: Tensor) {
    const t = tape as unknown as { tensors: Tensor[]; training: boolean };
    const [x, mean, invStd] = t.tensors;
    const g = ops.batchNormBackward(x!, dy, { gamma: this.parameters.get('weight')!, mean: mean!, invStd: invStd!, training: t.training });
    return { dx: g.dx, grads: new Map([['weight', g.dgamma], ['bias', g.dbeta]]) };
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
  async forward(x: Tensor, mode: ForwardMode) {
    if (!mode.training || this.p === 0) return { y: x.reshape(x.shape), tape: { mask: null, dispose() {} } as Tape };
    // Inverted dropout: kept voxels scaled by 1 / (1 - p), so inference needs no change.
    const scale = 1 / (1 - this.p);
    const maskData = new Float32Array(x.size);
    for (let i = 0; i < maskData.length; ++i) maskData[i] = mode.random() < this.p ? 0 : scale;
    const mask = Tensor.fromArray(maskData, x.shape, { device: x.device });
    return { y: ops.mul(x, mask), tape: { mask, dispose: () => mask.dispose() } as Tape };
  }
  async backward(tape: Tape, dy: Tensor) {
    const mask = (tape as unknown as { mask: Tensor | null }).mask;
    return { dx: mask ? ops.mul(dy, mask) : dy.reshape(dy.shape), grads: new Map<string, Tensor>() };
  }
  describe() {
    return `p ${this.p}`;
  }
}

function positive(value: unknown, layer: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as a positive integer, received ${String(value)}`);
  }
  return value;
}

/** Builders of the convolutional family (spread into `layers`). */
export const convLayers = {
  /** 2D or 3D convolution (by the kernel's length); stride 1 and no padding ('valid', as ZNN) by default. */
  conv(options: ConvLayerOptions): LayerBuilder {
    const out = positive(options.out, 'conv', 'out');
    return { type: 'conv', build: (c) => new ConvLayer(c.inChannels, out, options, c.random) };
  },
  /** Transposed convolution (decoders). */
  convTranspose(options: ConvTransposeLayerOptions): LayerBuilder {
    const out = positive(options.out, 'convTranspose', 'out');
    return { type: 'convTranspose', build: (c) => new ConvTransposeLayer(c.inChannels, out, options, c.random) };
  },
  /** Max-filtering: a stride-1 (dilated) max window that keeps the output dense (N4, VD2D, VD2D3D). */
  maxFilter(options: { kernel: PerAxis; dilation?: PerAxis }): LayerBuilder {
    return { type: 'maxFilter', build: (c) => new PoolLayer('maxFilter', c.inChannels, options) };
  },
  maxPool(options: { kernel: PerAxis; stride?: PerAxis; padding?: PerAxis }): LayerBuilder {
    return { type: 'maxPool', build: (c) => new PoolLayer('maxPool', c.inChannels, options) };
  },
  avgPool(options: { kernel: PerAxis; stride?: PerAxis; padding?: PerAxis }): LayerBuilder {
    return { type: 'avgPool', build: (c) => new PoolLayer('avgPool', c.inChannels, options) };
  },
  upsample(options: { scale: PerAxis; mode?: UpsampleMode; alignCorners?: boolean }): LayerBuilder {
    return { type: 'upsample', build: (c) => new UpsampleLayer(c.inChannels, options) };
  },
  /** Batch normalization; its running statistics are saved with the weights (running_mean, running_var). */
  batchNorm(options: { momentum?: number; eps?: number } = {}): LayerBuilder {
    return { type: 'batchNorm', build: (c) => new BatchNormLayer(c.inChannels, options) };
  },
  /** Dropout with probability p in training; identity in inference. */
  dropout(options: { p: number }): LayerBuilder {
    if (!(options.p >= 0 && options.p < 1)) throw new SegvolError('ERR_ARGUMENT', `dropout: expected 0 <= p < 1, received ${options.p}`);
    return { type: 'dropout', build: (c) => new DropoutLayer(c.inChannels, options.p) };
  },
};
