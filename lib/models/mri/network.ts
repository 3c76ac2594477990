// Tseng et al. (CVPR 2017), "Joint sequence learning and cross-modality convolution
// for 3D biomedical segmentation": a multi-modal encoder (one SegNet-like encoder
// per MR modality), cross-modality convolution (CMC) after every pooling, a ConvLSTM
// over consecutive axial slices on the deepest fused features, and a decoder whose
// levels are multiplied with the CMC features of the same resolution (multi-
// resolution fusion, MRF). docs/mri.md has the figure-by-figure reading.
import { describe, SegvolError } from '../../core/errors';
import { rejectUnknown } from '../../core/validate';
import type { Tensor } from '../../core/tensor';
import type { ForwardMode, LayerBuilder } from '../../nn/layer';
import { layers } from '../../nn/layers';
import { crossModalityLayers } from './cross_modality';
import { Model, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import type { ConvLstmLayer } from '../../nn/conv_lstm';
import { ops } from '../../ops';
import { Unet2d, type Unet2dOptions } from './unet';

export interface CrossModalityConvLstmOptions {
  /** MR modalities, the input's channels (default 4: flair, t1, t1ce, t2). */
  modalities?: number;
  /** Output classes (default 5: BRATS labels 0-4). */
  classes?: number;
  /** Feature channels of each encoder level (one number for all; default 64, SegNet-Basic's width). */
  channels?: number | readonly number[];
  /** Encoder levels, each halving the plane (default 4, as the paper): H and W must be multiples of 2^levels. */
  levels?: number;
  /** The encoder and decoder convolutions' odd kernel (default 3). */
  kernel?: number;
  /** The ConvLSTM's odd kernel (default 3). */
  lstmKernel?: number;
  /**
   * true (default): one encoder per modality fused by cross-modality convolution (MME + CMC);
   * false: one encoder on the modalities stacked as channels (the paper's encoder-decoder baseline).
   */
  multiModal?: boolean;
  /** Multi-resolution fusion: decoder features times the (fused) encoder features of the same level (default 'multiply'), or none. */
  fusion?: 'multiply' | 'none';
  /** A ConvLSTM over the slices of the sequence on the deepest features (default true); false: every slice on its own. */
  convLstm?: boolean;
  /** The decoder's non-linearity after each batch norm (default 'none': conv + batch norm, as the paper's SegNet decoder). */
  decoderActivation?: 'none' | 'relu';
  /** Fixes the initial weights (encoder and decoder He-normal, ConvLSTM orthogonal with zero biases). */
  seed?: number;
}

type Resolved = Required<Omit<CrossModalityConvLstmOptions, 'channels' | 'seed'>> & { channels: number[]; seed: number };

const optionKeys = ['modalities', 'classes', 'channels', 'levels', 'kernel', 'lstmKernel', 'multiModal', 'fusion', 'convLstm', 'decoderActivation', 'seed'];

function resolve(o: CrossModalityConvLstmOptions): Resolved {
  if (o === null || typeof o !== 'object') throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected options as an object, received ${describe(o)}`);
  rejectUnknown(o, optionKeys, 'crossModalityConvLstm');
  const int = (v: unknown, name: string, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected ${name} as an integer >= ${min}, received ${describe(v)}`);
    }
    return v;
  };
  const levels = int(o.levels ?? 4, 'levels', 1);
  const raw = o.channels ?? 64;
  const channels = typeof raw === 'number' ? new Array<number>(levels).fill(raw) : [...raw];
  if (channels.length !== levels) {
    throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected ${levels} channel counts (one per level), received ${channels.length}`);
  }
  channels.forEach((c, i) => int(c, `channels[${i}]`, 1));
  const odd = (v: unknown, name: string) => {
    const k = int(v, name, 1);
    if (k % 2 === 0) throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected an odd ${name} ('same' padding), received ${k}`);
    return k;
  };
  const fusion = o.fusion ?? 'multiply';
  if (fusion !== 'multiply' && fusion !== 'none') throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected fusion 'multiply' or 'none', received ${describe(fusion)}`);
  const decoderActivation = o.decoderActivation ?? 'none';
  if (decoderActivation !== 'none' && decoderActivation !== 'relu') {
    throw new SegvolError('ERR_ARGUMENT', `crossModalityConvLstm: expected decoderActivation 'none' or 'relu', received ${describe(decoderActivation)}`);
  }
  return {
    modalities: int(o.modalities ?? 4, 'modalities', 1), classes: int(o.classes ?? 5, 'classes', 2), channels, levels,
    kernel: odd(o.kernel ?? 3, 'kernel'), lstmKernel: odd(o.lstmKernel ?? 3, 'lstmKernel'),
    multiModal: o.multiModal ?? true, fusion, convLstm: o.convLstm ?? true, decoderActivation, seed: o.seed ?? 0,
  };
}

type Call = (x: Tensor, mode: ForwardMode) => Promise<Tensor>;

/**
 * The network of Tseng et al. Input (N, M, D, H, W): N sequences of D consecutive axial
 * slices of M modalities; output (N, classes, D, H, W) class probabilities (softmax over
 * channels). Every convolution is 2D (a 1 x k x k kernel): slices meet only in the ConvLSTM.
 * Parameter names: encoders.{m}.{level}.conv / .bn, cmc.{level}, convlstm, decoder.{level}.up /
 * .conv / .bn, classifier (docs/mri.md lists them with their shapes).
 */
export class CrossModalityConvLstm extends Model {
  readonly outChannels: number;
  readonly options: Readonly<Resolved>;
  private readonly encoders: Array<Array<{ conv: Call; bn: Call }>> = [];
  private readonly cmc: Call[] = [];
  private readonly lstm: ConvLstmLayer | undefined;
  private readonly decoder: Array<{ up: Call; conv: Call; bn: Call }> = [];
  private readonly classifier: Call;

  constructor(options: CrossModalityConvLstmOptions = {}) {
    const o = resolve(options);
    super({ inputs: { input: o.modalities }, seed: o.seed });
    this.options = o;
    this.outChannels = o.classes;
    const plane = (k: number) => [1, k, k];
    const conv = (out: number, k: number): LayerBuilder => layers.conv({ out, kernel: plane(k), padding: 'same', bias: false, init: 'msra' });
    const streams = o.multiModal ? o.modalities : 1;
    for (let m = 0; m < streams; ++m) {
      const levels: Array<{ conv: Call; bn: Call }> = [];
      for (let l = 0; l < o.levels; ++l) {
        const cin = l === 0 ? (o.multiModal ? 1 : o.modalities) : o.channels[l - 1]!;
        levels.push({
          conv: this.layer(`encoders.${m}.${l}.conv`, conv(o.channels[l]!, o.kernel), cin),
          bn: this.layer(`encoders.${m}.${l}.bn`, layers.batchNorm(), o.channels[l]!),
        });
      }
      this.encoders.push(levels);
    }
    if (o.multiModal) {
      for (let l = 0; l < o.levels; ++l) {
        this.cmc.push(this.layer(`cmc.${l}`, crossModalityLayers.crossModality({ modalities: o.modalities }), o.modalities * o.channels[l]!));
      }
    }
    const deepest = o.channels[o.levels - 1]!;
    if (o.convLstm) {
      this.lstm = this.sublayer('convlstm', layers.convLstm({ hidden: deepest, kernel: o.lstmKernel, init: 'orthogonal', biasInit: 'zeros' }), deepest);
    }
    // Decoder level l brings level l's features (channels[l], plane / 2^(l+1)) up to level l-1's
    // resolution and width, where they meet that level's fused encoder features.
    for (let l = o.levels - 1; l >= 0; --l) {
      const out = o.channels[Math.max(0, l - 1)]!;
      this.decoder.push({
        up: this.layer(`decoder.${l}.up`, layers.convTranspose({ out, kernel: [1, 2, 2], stride: [1, 2, 2], bias: false, init: 'msra' }), o.channels[l]!),
        conv: this.layer(`decoder.${l}.conv`, conv(out, o.kernel), out),
        bn: this.layer(`decoder.${l}.bn`, layers.batchNorm(), out),
      });
    }
    this.classifier = this.layer('classifier', layers.conv({ out: o.classes, kernel: [1, 1, 1], init: 'msra' }), o.channels[0]!);
    this.describedAs({ kind: 'preset', preset: 'crossModalityConvLstm', options: { ...options } });
  }

  /** The plane must halve evenly at every level. */
  private checkPlane(shape: readonly number[]): void {
    const factor = 2 ** this.options.levels;
    if (shape.length !== 5 || shape[1] !== this.options.modalities) {
      throw new SegvolError('ERR_SHAPE', `crossModalityConvLstm: expected (N, ${this.options.modalities}, D, H, W): sequences of D slices of ` +
        `${this.options.modalities} modalities, received (${shape.join(', ')})${shape.length === 4 ? '; the batch axis is missing: reshape to (1, ...)' : ''}`);
    }
    if (shape[3]! % factor !== 0 || shape[4]! % factor !== 0) {
      throw new SegvolError('ERR_SHAPE', `crossModalityConvLstm: the plane ${shape[3]}x${shape[4]} must be a multiple of ${factor} on each axis ` +
        `(${this.options.levels} poolings by 2); pad or crop the slices (240x240 BRATS slices work as they are)`);
    }
    const k = this.options.lstmKernel;
    if (this.options.convLstm && (shape[3]! / factor < k || shape[4]! / factor < k)) {
      throw new SegvolError('ERR_SHAPE', `crossModalityConvLstm: the plane ${shape[3]}x${shape[4]} leaves ${shape[3]! / factor}x${shape[4]! / factor} ` +
        `after ${this.options.levels} poolings, smaller than the ConvLSTM's ${k}x${k} kernel; use planes of at least ${k * factor}x${k * factor} or fewer levels`);
    }
  }

  outputShape(inputShape: ModelInputShape): number[] {
    const shape = this.inputShapes(inputShape).get('input')!;
    this.checkPlane(shape);
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const mode = this.mode(options);
    const input = this.single(x);
    this.checkPlane(input.shape);
    const o = this.options;
    const pool = { kernel: [1, 2, 2], stride: [1, 2, 2] };
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    try {
      let streams = o.multiModal ? Array.from({ length: o.modalities }, (_, m) => keep(ops.narrow(input, 1, m, 1))) : [input];
      const fused: Tensor[] = [];
      for (let l = 0; l < o.levels; ++l) {
        const next: Tensor[] = [];
        for (let m = 0; m < streams.length; ++m) {
          const stage = this.encoders[m]![l]!;
          const y = keep(await stage.conv(streams[m]!, mode));
          const z = keep(await stage.bn(y, mode));
          const r = keep(ops.relu(z));
          next.push(keep(ops.maxPool(r, pool)));
        }
        streams = next;
        fused.push(o.multiModal ? keep(await this.cmc[l]!(keep(ops.concat(next, 1)), mode)) : next[0]!);
      }
      let d = fused[o.levels - 1]!;
      if (this.lstm) d = keep(await this.runLayer('convlstm', this.lstm, d, mode));
      for (let i = 0; i < this.decoder.length; ++i) {
        const l = o.levels - 1 - i;
        const stage = this.decoder[i]!;
        d = keep(await stage.up(d, mode));
        d = keep(await stage.conv(d, mode));
        d = keep(await stage.bn(d, mode));
        if (o.decoderActivation === 'relu') d = keep(ops.relu(d));
        if (l > 0 && o.fusion === 'multiply') d = keep(ops.mul(d, fused[l - 1]!));
      }
      const logits = keep(await this.classifier(d, mode));
      return ops.softmax(logits);
    } finally {
      for (const t of owned) t.dispose();
    }
  }
}

export const mriPresets = {
  /**
   * Tseng et al.'s cross-modality ConvLSTM encoder-decoder for multi-modal MRI (BRATS):
   * input (N, modalities, D, H, W) sequences of axial slices, output class probabilities.
   * Options give the paper's variants (multiModal, fusion, convLstm).
   */
  crossModalityConvLstm(options: CrossModalityConvLstmOptions = {}): CrossModalityConvLstm {
    return new CrossModalityConvLstm(options);
  },
  /**
   * The paper's baseline (section 4.3): a 2D U-Net on the four modalities stacked as
   * channels, batch norm before every ReLU, orthogonal initialisation; input and output
   * as crossModalityConvLstm's, every slice on its own.
   */
  unet2d(options: Unet2dOptions = {}): Unet2d {
    return new Unet2d(options);
  },
};
