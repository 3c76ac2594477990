// Pooling, max-filtering and resampling layers (no parameters).
import type { Tensor } from '../core/tensor';
import { ops, type PerAxis, type UpsampleMode } from '../ops';
import { shapeError, type Layer, type LayerBuilder, type LayerMemory } from './layer';

function perAxis(value: PerAxis | undefined, n: number, fallback: number): number[] {
  if (value === undefined) return new Array<number>(n).fill(fallback);
  return typeof value === 'number' ? new Array<number>(n).fill(value) : [...value];
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
  async forward(x: Tensor): Promise<Tensor> {
    const g = this.geometry(x.rank - 2);
    if (this.type === 'avgPool') return ops.avgPool(x, g);
    if (this.type === 'maxFilter') return ops.maxFilter(x, { kernel: g.kernel, dilation: g.dilation });
    return ops.maxPool(x, g);
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
  async forward(x: Tensor): Promise<Tensor> {
    const size = this.outputShape(x.shape, 'upsample').slice(2);
    const mode = this.o.mode ?? 'nearest';
    return ops.upsample(x, { size, mode, ...(mode === 'linear' ? { alignCorners: this.o.alignCorners ?? false } : {}) });
  }
  describe() {
    return `x${String(this.o.scale)} ${this.o.mode ?? 'nearest'}`;
  }
  memory(): LayerMemory {
    return { keepsInput: false, keepsOutput: false, saved: 0, forward: 0, backward: 0 };
  }
}

export const poolingLayers = {
  /** Max-filtering: a stride-1 (dilated) max window that keeps the output dense (N4, VD2D, VD2D3D). */
  maxFilter(options: { kernel: PerAxis; dilation?: PerAxis }): LayerBuilder {
    return { type: 'maxFilter', options: { ...options }, build: (c) => new PoolLayer('maxFilter', c.inChannels, options) };
  },
  maxPool(options: { kernel: PerAxis; stride?: PerAxis; padding?: PerAxis }): LayerBuilder {
    return { type: 'maxPool', options: { ...options }, build: (c) => new PoolLayer('maxPool', c.inChannels, options) };
  },
  avgPool(options: { kernel: PerAxis; stride?: PerAxis; padding?: PerAxis }): LayerBuilder {
    return { type: 'avgPool', options: { ...options }, build: (c) => new PoolLayer('avgPool', c.inChannels, options) };
  },
  upsample(options: { scale: PerAxis; mode?: UpsampleMode; alignCorners?: boolean }): LayerBuilder {
    return { type: 'upsample', options: { ...options }, build: (c) => new UpsampleLayer(c.inChannels, options) };
  },
};
