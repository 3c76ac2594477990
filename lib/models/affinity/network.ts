// The 3D U-Net of the MALA pipeline (Funke et al., TPAMI 2018): per level a pass of
// convolutions with ReLU, max-pooling between levels, up-sampling by transposed
// convolution back up, the encoder's feature maps cropped and concatenated, and a
// 1x1x1 convolution to three sigmoid channels: the affinities of each voxel to its
// predecessor along z, y and x. With 'valid' convolutions (MALA's) the output is the
// input less a fixed context; the input sizes that fit repeat with the product of the
// downsampling factors (geometry.ts).
import { describe, SegvolError } from '../../core/errors';
import type { Tensor } from '../../core/tensor';
import { checkObject, oneOf, positiveInteger, rejectUnknown } from '../../core/validate';
import type { Initializer } from '../../nn/init';
import { layers } from '../../nn/layers';
import { Model, type LayerCall, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import { ops } from '../../ops';
import { nearestFits, smallestFit, traceAxis, type AxisLayout } from './geometry';

type Triple = [number, number, number];

export interface AffinityUNetOptions {
  /** Input channels (default 1, an EM stack). */
  inChannels?: number;
  /** Feature maps of the first level (default 6; MALA: 12). */
  fmaps?: number;
  /** Level l has fmaps * fmapIncFactor^l feature maps (default 2; MALA: 5 for CREMI). */
  fmapIncFactor?: number;
  /** Max-pooling factors (z, y, x) between levels, one triple per downsampling (default [[1, 2, 2]]: two levels). */
  downsample?: Triple[];
  /** Odd kernel size of every convolution: a number (a cube), (z, y, x), or one triple per level (default 3). */
  kernel?: number | Triple | Triple[];
  /** Convolutions per level on each side (default 2). */
  convsPerLevel?: number;
  /** 'valid' (default, MALA's): no padding, the output is smaller than the input; 'same': zero padding, the output is the input's size. */
  padding?: 'valid' | 'same';
  /** After every convolution and up-sampling (default 'relu', MALA's). */
  activation?: 'relu' | 'tanh';
  /** 'transposedConv' (default, MALA's): kernel and stride the factor; 'nearest': nearest-neighbour repetition, then a 1x1x1 convolution. */
  upsample?: 'transposedConv' | 'nearest';
  /** The weights' initialiser (default 'msra', He normal; MALA's TensorFlow code used 'xavier'). Biases start at 0. */
  init?: Initializer;
  /** Fixes the initial weights. */
  seed?: number;
}

const optionKeys = ['inChannels', 'fmaps', 'fmapIncFactor', 'downsample', 'kernel', 'convsPerLevel', 'padding', 'activation', 'upsample', 'init', 'seed'];

interface Resolved {
  inChannels: number;
  channels: number[];
  kernels: Triple[];
  factors: Triple[];
  convsPerLevel: number;
  padding: 'valid' | 'same';
  activation: 'relu' | 'tanh';
  upsample: 'transposedConv' | 'nearest';
  init: Initializer;
}

function triple(value: unknown, what: string, check: (v: number) => boolean, rule: string): Triple {
  const t = typeof value === 'number' ? [value, value, value] : value;
  if (!Array.isArray(t) || t.length !== 3 || t.some((v) => typeof v !== 'number' || !check(v))) {
    throw new SegvolError('ERR_ARGUMENT', `affinityUNet: expected ${what} as ${rule}, received ${describe(value)}`);
  }
  return [t[0], t[1], t[2]] as Triple;
}

function resolve(options: AffinityUNetOptions): Resolved {
  checkObject(options, 'affinityUNet');
  rejectUnknown(options, optionKeys, 'affinityUNet');
  const inChannels = positiveInteger(options.inChannels ?? 1, 'affinityUNet: inChannels');
  const fmaps = positiveInteger(options.fmaps ?? 6, 'affinityUNet: fmaps');
  const inc = positiveInteger(options.fmapIncFactor ?? 2, 'affinityUNet: fmapIncFactor');
  const downsample = options.downsample ?? [[1, 2, 2]];
  if (!Array.isArray(downsample)) {
    throw new SegvolError('ERR_ARGUMENT', `affinityUNet: expected downsample as a list of (z, y, x) factors, one per level below the first, received ${describe(downsample)}`);
  }
  const factors = downsample.map((f, l) => triple(f, `downsample[${l}]`, (v) => Number.isInteger(v) && v >= 1, 'three integers >= 1 (z, y, x)'));
  const levels = factors.length + 1;
  const odd = (v: number) => Number.isInteger(v) && v >= 1 && v % 2 === 1;
  const oddRule = 'odd integers >= 1 (a number, or z, y, x)';
  const k = options.kernel ?? 3;
  const perLevel = Array.isArray(k) && k.length > 0 && k.every((e) => Array.isArray(e));
  if (perLevel && (k as unknown[]).length !== levels) {
    throw new SegvolError('ERR_ARGUMENT', `affinityUNet: kernel lists one (z, y, x) kernel per level: expected ${levels} (${factors.length} downsamplings + 1), ` +
      `received ${(k as unknown[]).length}`);
  }
  const kernels = perLevel ? (k as unknown[]).map((e, l) => triple(e, `kernel[${l}]`, odd, oddRule))
    : new Array<Triple>(levels).fill(triple(k, 'kernel', odd, `${oddRule}, or one triple per level`));
  return {
    inChannels, factors, kernels,
    channels: Array.from({ length: levels }, (_, l) => fmaps * inc ** l),
    convsPerLevel: positiveInteger(options.convsPerLevel ?? 2, 'affinityUNet: convsPerLevel'),
    padding: oneOf(options.padding ?? 'valid', ['valid', 'same'] as const, 'affinityUNet: padding'),
    activation: oneOf(options.activation ?? 'relu', ['relu', 'tanh'] as const, 'affinityUNet: activation'),
    upsample: oneOf(options.upsample ?? 'transposedConv', ['transposedConv', 'nearest'] as const, 'affinityUNet: upsample'),
    init: options.init ?? 'msra',
  };
}

/**
 * The affinity U-Net: input (N, C, D, H, W), output (N, 3, d, h, w) affinities in [0, 1],
 * channel a in (z, y, x) the affinity of each voxel to its predecessor along a. Parameters,
 * named as a torch.nn module would be: encoder.{l}.convs.{j}, decoder.{l}.up (a
 * ConvTranspose3d, or the 1x1x1 Conv3d after nearest up-sampling), decoder.{l}.convs.{j}, head.
 */
export class AffinityUNet extends Model {
  readonly outChannels = 3;
  private readonly o: Resolved;
  private readonly encoder: LayerCall[][] = [];
  private readonly decoder: Array<{ up: LayerCall; convs: LayerCall[] }> = [];
  private readonly head: LayerCall;

  constructor(options: AffinityUNetOptions = {}) {
    const o = resolve(options);
    super({ inputs: { input: o.inChannels }, seed: options.seed ?? 0 });
    this.o = o;
    const levels = o.channels.length;
    const conv = (name: string, out: number, kernel: Triple, inChannels: number) => {
      return this.layer(name, layers.conv({ out, kernel, ...(o.padding === 'same' ? { padding: 'same' as const } : {}), init: o.init }), inChannels);
    };
    let c = o.inChannels;
    for (let l = 0; l < levels; ++l) {
      this.encoder.push(Array.from({ length: o.convsPerLevel }, (_, j) => {
        const call = conv(`encoder.${l}.convs.${j}`, o.channels[l]!, o.kernels[l]!, c);
        c = o.channels[l]!;
        return call;
      }));
    }
    const up = new Array<{ up: LayerCall; convs: LayerCall[] }>(levels - 1);
    for (let l = levels - 2; l >= 0; --l) {
      const name = `decoder.${l}.up`;
      const f = o.factors[l]!;
      const upLayer = o.upsample === 'transposedConv'
        ? this.layer(name, layers.convTranspose({ out: o.channels[l]!, kernel: f, stride: f, init: o.init }), c)
        : this.layer(name, layers.conv({ out: o.channels[l]!, kernel: [1, 1, 1], init: o.init }), c);
      // The encoder's feature maps and the up-sampled ones, concatenated.
      c = 2 * o.channels[l]!;
      const convs = Array.from({ length: o.convsPerLevel }, (_, j) => {
        const call = conv(`decoder.${l}.convs.${j}`, o.channels[l]!, o.kernels[l]!, c);
        c = o.channels[l]!;
        return call;
      });
      up[l] = { up: upLayer, convs };
    }
    this.decoder.push(...up);
    this.head = this.layer('head', layers.conv({ out: 3, kernel: [1, 1, 1], init: o.init }), c);
    this.describedAs({ kind: 'preset', preset: 'affinityUNet', options: { ...options } });
  }

  /** The levels' layout along axis a (0: z, 1: y, 2: x). */
  private axis(a: number): AxisLayout {
    return { kernels: this.o.kernels.map((k) => k[a]!), convsPerLevel: this.o.convsPerLevel, factors: this.o.factors.map((f) => f[a]!), padding: this.o.padding };
  }

  /** The spatial size after every layer (in registration order) for an input window, or the error naming the sizes that fit. */
  private trace(spatial: readonly number[]): number[][] {
    const names = ['z', 'y', 'x'];
    const traces = [0, 1, 2].map((a) => traceAxis(spatial[a]!, this.axis(a)));
    const problems = traces.flatMap((t, a) => {
      if (!('failure' in t)) return [];
      const near = nearestFits(spatial[a]!, this.axis(a)).map((n) => `${n.input} (output ${n.output})`);
      return [`along ${names[a]}, ${spatial[a]} ${t.failure} (the nearest sizes that fit: ${near.join(' and ') || 'none'})`];
    });
    if (problems.length) {
      const context = this.o.padding === 'valid' ? `; the output is the input less ${this.fieldOfView().map((f) => f - 1).join(', ')} voxels ('valid' convolutions)` : '';
      throw new SegvolError('ERR_SHAPE', `affinityUNet: an input window (${spatial.join(', ')}) does not fit the U-Net: ${problems.join('; ')}. ` +
        `The sizes that fit repeat every ${this.o.factors.reduce<number[]>((p, f) => p.map((v, a) => v * f[a]!), [1, 1, 1]).join(', ')} voxels ` +
        `(the products of the downsampling factors)${context}`);
    }
    const sizes = traces.map((t) => (t as { sizes: number[] }).sizes);
    return sizes[0]!.map((_, i) => [sizes[0]![i]!, sizes[1]![i]!, sizes[2]![i]!]);
  }

  private checkInput(shape: readonly number[]): void {
    if (shape.length !== 5) {
      throw new SegvolError('ERR_SHAPE', `affinityUNet: expected a volume (N, ${this.o.inChannels}, D, H, W), received (${shape.join(', ')})` +
        (shape.length === 4 ? '; a (C, D, H, W) volume lacks its batch axis: reshape it to (1, C, D, H, W)' : ''));
    }
  }

  outputShape(inputShape: ModelInputShape): number[] {
    const shape = this.inputShapes(inputShape).get('input')!;
    this.checkInput(shape);
    const sizes = this.trace(shape.slice(2));
    return [shape[0]!, 3, ...sizes[sizes.length - 1]!];
  }

  /**
   * The field of view: with 'valid' padding every output voxel sees exactly the input less
   * the output plus one voxel per axis (the same for every window that fits); with 'same'
   * padding the output is the window itself, as for any 'same' network ([1, 1, 1]).
   */
  override fieldOfView(): number[] {
    if (this.o.padding === 'same') return [1, 1, 1];
    return [0, 1, 2].map((a) => {
      const layout = this.axis(a);
      const s = smallestFit(layout);
      return s - (traceAxis(s, layout) as { output: number }).output + 1;
    });
  }

  /** Layers, their output shapes and parameter counts for an input shape (N, C, D, H, W). */
  summary(inputShape: readonly number[] = [1, this.o.inChannels, ...this.fittingWindow()]): string {
    this.inputShapes(inputShape);
    this.checkInput(inputShape);
    const sizes = this.trace(inputShape.slice(2));
    // The trace lists sizes in the order the layers were registered.
    return this.table(this.namedLayers().map(([path, layer], i) => [path, layer, [inputShape[0]!, layer.outChannels, ...sizes[i]!]]));
  }

  /** The smallest input window that fits. */
  private fittingWindow(): Triple {
    return [0, 1, 2].map((a) => smallestFit(this.axis(a))) as Triple;
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const mode = this.mode(options);
    const input = this.single(x);
    this.outputShape(input.shape);
    const o = this.o;
    const activate = (t: Tensor) => (o.activation === 'relu' ? ops.relu(t) : ops.tanh(t));
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    // One convolution and its activation; the pre-activation is not needed afterwards (the tape keeps its own views).
    const convolve = async (call: LayerCall, t: Tensor) => {
      const pre = await call(t, mode);
      const y = activate(pre);
      pre.dispose();
      return keep(y);
    };
    try {
      const skips: Tensor[] = [];
      let h = input;
      for (let l = 0; l < o.channels.length; ++l) {
        for (const call of this.encoder[l]!) h = await convolve(call, h);
        if (l < o.channels.length - 1) {
          skips.push(h);
          h = keep(ops.maxPool(h, { kernel: o.factors[l]!, stride: o.factors[l]! }));
        }
      }
      for (let l = o.channels.length - 2; l >= 0; --l) {
        const stage = this.decoder[l]!;
        const f = o.factors[l]!;
        const upsampled = o.upsample === 'transposedConv' ? h : keep(ops.upsample(h, { scale: f, mode: 'nearest' }));
        const g = await convolve(stage.up, upsampled);
        const skip = crop(skips[l]!, g.shape.slice(2), keep);
        h = keep(ops.concat([skip, g], 1));
        for (const call of stage.convs) h = await convolve(call, h);
      }
      const logits = await this.head(h, mode);
      const affinities = ops.sigmoid(logits);
      logits.dispose();
      return affinities;
    } finally {
      for (const t of owned) t.dispose();
    }
  }
}

/** The centre of a (N, C, d, h, w) tensor cut to a spatial size (the encoder's maps to the decoder's); the tensor itself when it already fits. */
function crop(t: Tensor, size: readonly number[], keep: (t: Tensor) => Tensor): Tensor {
  let out = t;
  for (let a = 0; a < 3; ++a) {
    const from = out.shape[2 + a]!;
    if (from === size[a]) continue;
    out = keep(ops.narrow(out, 2 + a, Math.floor((from - size[a]!) / 2), size[a]!));
  }
  return out;
}

export const affinityPresets = {
  /**
   * The MALA U-Net predicting affinities (Funke et al. 2018): small by default (6 feature
   * maps, two levels); `affinitySettings().network` is the paper's CREMI network.
   */
  affinityUNet(options: AffinityUNetOptions = {}): AffinityUNet {
    return new AffinityUNet(options);
  },
};

/** The preset's option keys (train.json's model keys). */
export const affinityUNetKeys: readonly string[] = optionKeys;
