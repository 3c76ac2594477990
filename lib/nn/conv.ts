// Convolutional layers: conv (2D/3D, dilated, grouped), transposed conv and the
// pixel-wise fully connected layer. Output shapes follow PyTorch's formulas; a
// shape that does not fit is reported with the layer path.
import { SegvolError } from '../core/errors';
import type { Tensor } from '../core/tensor';
import { ops, type PerAxis } from '../ops';
import type { Initializer } from './init';
import { initializerOption, parameter, shapeError, type Layer, type LayerBuilder } from './layer';
import { positiveIntegerField } from '../core/validate';

function perAxis(value: PerAxis | undefined, n: number, fallback: number): number[] {
  if (value === undefined) return new Array<number>(n).fill(fallback);
  return typeof value === 'number' ? new Array<number>(n).fill(value) : [...value];
}

/** 'uniform' with initScale keeps the U(-initScale, initScale) shorthand. */
function withScale(init: Initializer, initScale: number | undefined): Initializer {
  return init === 'uniform' && initScale !== undefined ? { kind: 'uniform', scale: initScale } : init;
}

/** How a layer's weight and bias start (each layer documents its defaults). */
export interface WeightOptions {
  /** Learn a bias (default true). */
  bias?: boolean;
  /** The weight's initialiser. */
  init?: Initializer;
  /** With init 'uniform': U(-initScale, initScale). */
  initScale?: number;
  /** The bias's initialiser; default 'zeros'. */
  biasInit?: Initializer;
}

export interface ConvLayerOptions extends WeightOptions {
  /** Output channels. */
  out: number;
  /** Kernel per spatial axis: 2 entries for 2D, 3 for 3D (a number means 3D cubes). The weight's default init is 'msra' (He normal, ZNN's VD2D). */
  kernel: PerAxis;
  stride?: PerAxis;
  padding?: PerAxis | 'same';
  dilation?: PerAxis;
  groups?: number;
}

export interface ConvTransposeLayerOptions extends WeightOptions {
  out: number;
  /** Kernel per spatial axis. The weight's default init is 'uniform' with initScale 0.1. */
  kernel: PerAxis;
  stride?: PerAxis;
  padding?: PerAxis;
  outputPadding?: PerAxis;
}

/** A convolution-like layer: a weight (..., ...kernel) over 2 or 3 spatial axes, and a bias. */
abstract class KernelLayer implements Layer {
  abstract readonly type: string;
  readonly parameters = new Map<string, Tensor>();
  protected readonly rank: number;
  constructor(readonly inChannels: number, readonly outChannels: number, options: WeightOptions & { kernel: PerAxis },
    weightShape: (kernel: number[]) => number[], defaultInit: Initializer, random: () => number) {
    const kernel = typeof options.kernel === 'number' ? [options.kernel, options.kernel, options.kernel] : [...options.kernel];
    this.rank = kernel.length;
    this.parameters.set('weight', parameter(weightShape(kernel), withScale(options.init ?? defaultInit, options.initScale), random));
    if (options.bias ?? true) this.parameters.set('bias', parameter([outChannels], options.biasInit ?? 'zeros', random));
  }
  protected get kernel(): number[] {
    return this.parameters.get('weight')!.shape.slice(2);
  }
  protected withBias<T extends object>(options: T): T & { bias?: Tensor } {
    const bias = this.parameters.get('bias');
    return { ...options, ...(bias ? { bias } : {}) };
  }
  /** Refuses an input of another rank or channel count, naming the layer path. */
  protected checkInput(shape: readonly number[], path: string): void {
    if (shape.length !== this.rank + 2 || shape[1] !== this.inChannels) {
      throw shapeError(path, this.type, `(N, ${this.inChannels}, ${this.rank === 3 ? 'D, H, W' : 'H, W'})`, shape);
    }
  }
  abstract outputShape(input: readonly number[], path: string): number[];
  abstract forward(x: Tensor): Promise<Tensor>;
  describe(): string {
    return `${this.inChannels} -> ${this.outChannels}, kernel ${this.kernel.join('x')}`;
  }
}

class ConvLayer extends KernelLayer {
  readonly type = 'conv';
  constructor(inChannels: number, outChannels: number, private readonly o: ConvLayerOptions, random: () => number) {
    const groups = o.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new SegvolError('ERR_ARGUMENT', `conv: ${inChannels} input and ${outChannels} output channels must be divisible by groups ${groups}`);
    }
    super(inChannels, outChannels, o, (kernel) => [outChannels, inChannels / groups, ...kernel], 'msra', random);
  }
  outputShape(shape: readonly number[], path: string): number[] {
    this.checkInput(shape, path);
    const kernel = this.kernel;
    const stride = perAxis(this.o.stride, this.rank, 1), dilation = perAxis(this.o.dilation, this.rank, 1);
    const padding = this.o.padding === 'same' ? kernel.map((k, a) => ((k - 1) * dilation[a]!) / 2) : perAxis(this.o.padding, this.rank, 0);
    const out = kernel.map((k, a) => Math.floor((shape[2 + a]! + 2 * padding[a]! - dilation[a]! * (k - 1) - 1) / stride[a]!) + 1);
    if (out.some((v) => v < 1)) {
      throw shapeError(path, 'conv', `a volume larger than the dilated kernel (${kernel.map((k, a) => (k - 1) * dilation[a]! + 1).join(', ')})`, shape);
    }
    return [shape[0]!, this.outChannels, ...out];
  }
  forward(x: Tensor): Promise<Tensor> {
    return ops.convAsync(x, this.parameters.get('weight')!, this.withBias({ stride: this.o.stride, padding: this.o.padding, dilation: this.o.dilation, groups: this.o.groups }));
  }
  override describe(): string {
    return `${super.describe()}${this.o.dilation ? `, dilation ${String(this.o.dilation)}` : ''}`;
  }
}

class ConvTransposeLayer extends KernelLayer {
  readonly type = 'convTranspose';
  constructor(inChannels: number, outChannels: number, private readonly o: ConvTransposeLayerOptions, random: () => number) {
    super(inChannels, outChannels, { ...o, initScale: o.initScale ?? 0.1 }, (kernel) => [inChannels, outChannels, ...kernel], 'uniform', random);
  }
  outputShape(shape: readonly number[], path: string): number[] {
    this.checkInput(shape, path);
    const stride = perAxis(this.o.stride, this.rank, 1), padding = perAxis(this.o.padding, this.rank, 0);
    const extra = perAxis(this.o.outputPadding, this.rank, 0);
    return [shape[0]!, this.outChannels, ...this.kernel.map((k, a) => (shape[2 + a]! - 1) * stride[a]! - 2 * padding[a]! + k + extra[a]!)];
  }
  async forward(x: Tensor): Promise<Tensor> {
    return ops.convTranspose(x, this.parameters.get('weight')!, this.withBias({ stride: this.o.stride, padding: this.o.padding, outputPadding: this.o.outputPadding }));
  }
}

export interface PixelwiseOptions {
  /** F, output channels. */
  units: number;
  /** Default 'uniform' with initScale 0.1 (the PyraMiD-LSTM paper), for the weight and the bias. */
  init?: Initializer;
  initScale?: number;
  biasInit?: Initializer;
}

class PixelwiseLayer implements Layer {
  readonly type = 'pixelwise';
  readonly parameters = new Map<string, Tensor>();
  constructor(readonly inChannels: number, readonly outChannels: number, o: PixelwiseOptions, random: () => number) {
    const init = withScale(o.init ?? 'uniform', o.initScale ?? 0.1);
    this.parameters.set('weight', parameter([outChannels, inChannels], init, random));
    this.parameters.set('bias', parameter([outChannels], o.biasInit ?? (o.init === undefined ? init : 'zeros'), random));
  }
  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length < 4 || shape[1] !== this.inChannels) {
      throw shapeError(path, 'pixelwise', `(N, ${this.inChannels}, [D,] H, W)`, shape);
    }
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }
  async forward(x: Tensor): Promise<Tensor> {
    return ops.pixelwise(x, this.parameters.get('weight')!, this.parameters.get('bias')!);
  }
  describe() {
    return `${this.inChannels} -> ${this.outChannels} per voxel`;
  }
}

export const convLayers = {
  /** 2D or 3D convolution (by the kernel's length); stride 1 and no padding ('valid', as ZNN) by default. */
  conv(options: ConvLayerOptions): LayerBuilder {
    const out = positiveIntegerField(options.out, 'conv', 'out');
    initializerOption(options.init, 'msra', 'conv');
    return { type: 'conv', options: { ...options }, build: (c) => new ConvLayer(c.inChannels, out, options, c.random) };
  },
  /** Transposed convolution (decoders). */
  convTranspose(options: ConvTransposeLayerOptions): LayerBuilder {
    const out = positiveIntegerField(options.out, 'convTranspose', 'out');
    initializerOption(options.init, 'uniform', 'convTranspose');
    return { type: 'convTranspose', options: { ...options }, build: (c) => new ConvTransposeLayer(c.inChannels, out, options, c.random) };
  },
  /** Pixel-wise fully connected layer (a 1x1x1 convolution). */
  pixelwise(options: PixelwiseOptions): LayerBuilder {
    const units = positiveIntegerField(options.units, 'pixelwise', 'units');
    initializerOption(options.init, 'uniform', 'pixelwise');
    return { type: 'pixelwise', options: { ...options }, build: (c) => new PixelwiseLayer(c.inChannels, units, options, c.random) };
  },
};
