// The U-Net baseline of Tseng et al.'s Tables 1, 3 and 4 (section 4.3): Ronneberger et
// al.'s U-Net on 4-channel slices (the four MR modalities stacked as channels), with a
// batch normalisation before every non-linearity (the authors found the original does not
// converge on BRATS without it) and orthogonal initialisation. The paper gives no depth or
// widths: segvol takes Ronneberger's (4 poolings, 64 channels doubling to 1024) with 'same'
// padding, so a whole 240x240 slice comes out at its own size. docs/mri.md lists the choices.
import { describe, SegvolError } from '../../core/errors';
import { rejectUnknown } from '../../core/validate';
import type { Tensor } from '../../core/tensor';
import type { Initializer } from '../../nn/init';
import { layers } from '../../nn/layers';
import { Model, type LayerCall, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import { ops } from '../../ops';

export interface Unet2dOptions {
  /** Input channels: the MR modalities stacked (default 4: flair, t1, t1ce, t2). */
  modalities?: number;
  /** Output classes (default 5: BRATS labels 0-4). */
  classes?: number;
  /** Poolings (default 4, Ronneberger's): H and W must be multiples of 2^levels. */
  levels?: number;
  /** Channels of the first level, doubled at each pooling (default 64: 64, 128, 256, 512, 1024); or one count per level, bottom included. */
  channels?: number | readonly number[];
  /** The odd kernel of the 2D convolutions (default 3). */
  kernel?: number;
  /** The weights' initialiser (default 'orthogonal', as the paper; biases start at zero). */
  init?: Initializer;
  seed?: number;
}

type Resolved = { modalities: number; classes: number; levels: number; channels: number[]; kernel: number; init: Initializer; seed: number };

const optionKeys = ['modalities', 'classes', 'levels', 'channels', 'kernel', 'init', 'seed'];

function resolve(o: Unet2dOptions): Resolved {
  if (o === null || typeof o !== 'object') throw new SegvolError('ERR_ARGUMENT', `unet2d: expected options as an object, received ${describe(o)}`);
  rejectUnknown(o, optionKeys, 'unet2d');
  const int = (v: unknown, name: string, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new SegvolError('ERR_ARGUMENT', `unet2d: expected ${name} as an integer >= ${min}, received ${describe(v)}`);
    }
    return v;
  };
  const levels = int(o.levels ?? 4, 'levels', 1);
  const raw = o.channels ?? 64;
  const channels = typeof raw === 'number' ? Array.from({ length: levels + 1 }, (_, l) => int(raw, 'channels', 1) * 2 ** l) : [...raw];
  if (channels.length !== levels + 1) {
    throw new SegvolError('ERR_ARGUMENT', `unet2d: expected ${levels + 1} channel counts (one per level and the bottom), received ${channels.length}; ` +
      'or give one number, doubled at each pooling');
  }
  channels.forEach((c, i) => int(c, `channels[${i}]`, 1));
  const kernel = int(o.kernel ?? 3, 'kernel', 1);
  if (kernel % 2 === 0) throw new SegvolError('ERR_ARGUMENT', `unet2d: expected an odd kernel ('same' padding), received ${kernel}`);
  return {
    modalities: int(o.modalities ?? 4, 'modalities', 1), classes: int(o.classes ?? 5, 'classes', 2), levels, channels, kernel,
    init: o.init ?? 'orthogonal', seed: o.seed ?? 0,
  };
}

type Block = { conv1: LayerCall; bn1: LayerCall; conv2: LayerCall; bn2: LayerCall };

/**
 * A 2D U-Net applied to every slice on its own. Input (N, modalities, D, H, W), output
 * (N, classes, D, H, W) class probabilities; every kernel is 1 x k x k, so D is a batch of
 * slices (the same input shape as crossModalityConvLstm, so the same data and inference serve
 * both). Parameters: down.{l}.conv1/bn1/conv2/bn2 (l = levels is the bottom), up.{l}.up (a
 * 2x2 transposed convolution halving the channels), up.{l}.conv1/bn1/conv2/bn2, classifier.
 */
export class Unet2d extends Model {
  readonly outChannels: number;
  readonly options: Readonly<Resolved>;
  private readonly down: Block[] = [];
  private readonly up: Array<Block & { up: LayerCall }> = [];
  private readonly classifier: LayerCall;

  constructor(options: Unet2dOptions = {}) {
    const o = resolve(options);
    super({ inputs: { input: o.modalities }, seed: o.seed });
    this.options = o;
    this.outChannels = o.classes;
    // Convolutions feed a batch norm, whose shift makes a bias redundant.
    const conv = (out: number) => layers.conv({ out, kernel: [1, o.kernel, o.kernel], padding: 'same', bias: false, init: o.init });
    const block = (prefix: string, cin: number, out: number): Block => ({
      conv1: this.layer(`${prefix}.conv1`, conv(out), cin), bn1: this.layer(`${prefix}.bn1`, layers.batchNorm(), out),
      conv2: this.layer(`${prefix}.conv2`, conv(out), out), bn2: this.layer(`${prefix}.bn2`, layers.batchNorm(), out),
    });
    for (let l = 0; l <= o.levels; ++l) this.down.push(block(`down.${l}`, l === 0 ? o.modalities : o.channels[l - 1]!, o.channels[l]!));
    for (let l = o.levels - 1; l >= 0; --l) {
      const c = o.channels[l]!;
      // No non-linearity follows the up-convolution (Ronneberger's), so it keeps its bias and has no batch norm.
      const up = this.layer(`up.${l}.up`, layers.convTranspose({ out: c, kernel: [1, 2, 2], stride: [1, 2, 2], init: o.init, biasInit: 'zeros' }), o.channels[l + 1]!);
      this.up.push({ up, ...block(`up.${l}`, 2 * c, c) });
    }
    this.classifier = this.layer('classifier', layers.conv({ out: o.classes, kernel: [1, 1, 1], init: o.init, biasInit: 'zeros' }), o.channels[0]!);
    this.describedAs({ kind: 'preset', preset: 'unet2d', options: { ...options } });
  }

  private checkShape(shape: readonly number[]): void {
    const factor = 2 ** this.options.levels;
    if (shape.length !== 5 || shape[1] !== this.options.modalities) {
      throw new SegvolError('ERR_SHAPE', `unet2d: expected (N, ${this.options.modalities}, D, H, W): D slices of ${this.options.modalities} stacked modalities, ` +
        `received (${shape.join(', ')})${shape.length === 4 ? '; the batch axis is missing: reshape to (1, ...)' : ''}`);
    }
    if (shape[3]! % factor !== 0 || shape[4]! % factor !== 0) {
      throw new SegvolError('ERR_SHAPE', `unet2d: the plane ${shape[3]}x${shape[4]} must be a multiple of ${factor} on each axis ` +
        `(${this.options.levels} poolings by 2); pad or crop the slices (240x240 BRATS slices work as they are)`);
    }
  }

  outputShape(inputShape: ModelInputShape): number[] {
    const shape = this.inputShapes(inputShape).get('input')!;
    this.checkShape(shape);
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const mode = this.mode(options);
    const input = this.single(x);
    this.checkShape(input.shape);
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    // conv, batch norm, ReLU, twice: the batch norm sits before every non-linearity.
    const run = async (b: Block, t: Tensor) => {
      const a = keep(ops.relu(keep(await b.bn1(keep(await b.conv1(t, mode)), mode))));
      return keep(ops.relu(keep(await b.bn2(keep(await b.conv2(a, mode)), mode))));
    };
    try {
      const skips: Tensor[] = [];
      let t = input;
      for (let l = 0; l < this.options.levels; ++l) {
        const features = await run(this.down[l]!, t);
        skips.push(features);
        t = keep(ops.maxPool(features, { kernel: [1, 2, 2], stride: [1, 2, 2] }));
      }
      t = await run(this.down[this.options.levels]!, t);
      for (const stage of this.up) {
        const skip = skips.pop()!;
        const up = keep(await stage.up(t, mode));
        // The contracting path's features first, then the upsampled ones (the order of Ronneberger's figure).
        t = await run(stage, keep(ops.concat([skip, up], 1)));
      }
      return ops.softmax(keep(await this.classifier(t, mode)));
    } finally {
      for (const o of owned) o.dispose();
    }
  }
}
