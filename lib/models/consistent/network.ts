// Gonda, Wei and Pfister, "Consistent recurrent neural networks for 3D neuron
// segmentation" (sections 2.1-2.4): a ResNet-50 encoder per frame, and a hierarchical
// decoder of CConvLSTMs over its five resolutions that produces one mask per object per
// frame, objects in sequence within a frame (spatial recurrence), frames in sequence
// (temporal recurrence), starting from a labelled reference frame.
import { describe, SegvolError } from '../../core/errors';
import { rejectUnknown } from '../../core/validate';
import type { Tensor } from '../../core/tensor';
import type { ConsistencyVariant, ConsistentConvLstmLayer, DirectionStates } from './layer';
import { consistencyVariants } from './layer';
import type { ForwardMode } from '../../nn/layer';
import { layers } from '../../nn/layers';
import { consistentLayers } from './layer';
import { Model, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import { ops } from '../../ops';
import type { NamedArray } from '../../io/safetensors';
import { resnet50FeatureChannels, resnet50Layers, torchvisionResnet50State } from './resnet';

export interface ConsistentConvLstmNetOptions {
  /** Image channels of the frames (default 1: EM; 3 for RGB as torchvision's weights expect). */
  inChannels?: number;
  /** Hidden channels of the five CConvLSTMs, deepest (1/32) first (default [64, 64, 32, 32, 16]). */
  hidden?: readonly number[];
  /** Default 'STC' (local and non-local consistency). */
  variant?: ConsistencyVariant;
  /** The CConvLSTMs' odd kernel (default 3). */
  kernel?: number;
  seed?: number;
}

type Call = (x: Tensor, mode: ForwardMode) => Promise<Tensor>;
const optionKeys = ['inChannels', 'hidden', 'variant', 'kernel', 'seed'];

/**
 * Inputs: frames (1, C, T, H, W), a sub-volume of T frames (H and W multiples of 32), and
 * masks (M, 1, T, H, W): for each of M objects and each frame t, the estimate of the object's
 * mask in the previous frame, S_{t-1,o} (frame 0, the reference: its labelled mask). Output
 * (M, 1, T, H, W): the objects' mask probabilities. Parameter names: encoder.* (torchvision's
 * ResNet-50 names), proj.{level}, cconv.{level}.fwd / .bwd / .out, head; level 0 is the deepest.
 */
export class ConsistentConvLstmNet extends Model {
  readonly outChannels = 1;
  readonly options: Readonly<Required<Omit<ConsistentConvLstmNetOptions, 'seed'>>> & { hidden: readonly number[] };
  private readonly encoder: (x: Tensor, mode: ForwardMode) => Promise<Tensor[]>;
  private readonly projections: Call[] = [];
  private readonly cconv: ConsistentConvLstmLayer[] = [];
  private readonly head: Call;

  constructor(options: ConsistentConvLstmNetOptions = {}) {
    if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected options, received ${describe(options)}`);
    rejectUnknown(options, optionKeys, 'consistentConvLstm');
    const hidden = [...(options.hidden ?? [64, 64, 32, 32, 16])];
    if (hidden.length !== 5 || !hidden.every((h) => Number.isInteger(h) && h > 0)) {
      throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected hidden as 5 positive channel counts (one per resolution, deepest first), received ${describe(options.hidden)}`);
    }
    const variant = options.variant ?? 'STC';
    if (!consistencyVariants.includes(variant)) throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected variant ${consistencyVariants.join(', ')}, received ${describe(variant)}`);
    const inChannels = options.inChannels ?? 1;
    super({ inputs: { frames: inChannels, masks: 1 }, seed: options.seed ?? 0 });
    this.options = { inChannels, hidden, variant, kernel: options.kernel ?? 3 };
    this.encoder = resnet50Layers((n, b, c) => this.layer(n, b, c), 'encoder.', inChannels);
    for (let level = 0; level < 5; ++level) {
      const features = resnet50FeatureChannels[4 - level]!;
      this.projections.push(this.layer(`proj.${level}`, layers.conv({ out: hidden[level]!, kernel: [1, 1], init: 'msra' }), features));
      const input = (level > 0 ? hidden[level - 1]! : 0) + hidden[level]! + 1;
      this.cconv.push(this.sublayer(`cconv.${level}`, consistentLayers.consistentConvLstm({ hidden: hidden[level]!, kernel: this.options.kernel, variant }), input));
    }
    this.head = this.layer('head', layers.conv({ out: 1, kernel: [1, 1], init: 'xavier' }), hidden[4]!);
    this.describedAs({ kind: 'preset', preset: 'consistentConvLstm', options: { ...options } });
  }

  /**
   * Starts the encoder from a torchvision ResNet-50 state_dict (a safetensors file or a map
   * with torchvision's names; fc is ignored, RGB conv1 summed for grey frames). Everything
   * else keeps its values. Returns how many tensors were loaded.
   */
  loadEncoderWeights(source: string | ReadonlyMap<string, NamedArray>): number {
    const encoder = torchvisionResnet50State(source, 'encoder.', this.options.inChannels);
    const state = new Map<string, NamedArray>();
    for (const [name, t] of this.stateDict()) state.set(name, encoder.get(name) ?? { shape: [...t.shape], data: t.toArray() });
    const missing = [...this.stateDict().keys()].filter((k) => k.startsWith('encoder.') && !encoder.has(k));
    if (missing.length) {
      throw new SegvolError('ERR_SHAPE', `loadEncoderWeights: the ResNet-50 weights lack ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''}; expected torchvision's resnet50 state_dict`);
    }
    const extra = [...encoder.keys()].filter((k) => !state.has(k));
    if (extra.length) throw new SegvolError('ERR_SHAPE', `loadEncoderWeights: not ResNet-50 weights (${extra.slice(0, 3).join(', ')} has no place in the encoder)`);
    this.loadStateDict(state, 'loadEncoderWeights');
    return encoder.size;
  }

  private check(frames: readonly number[], masks: readonly number[]): void {
    if (frames.length !== 5 || frames[0] !== 1 || frames[1] !== this.options.inChannels) {
      throw new SegvolError('ERR_SHAPE', `consistentConvLstm: expected frames (1, ${this.options.inChannels}, T, H, W), one sub-volume, received (${frames.join(', ')})`);
    }
    if (frames[3]! % 32 !== 0 || frames[4]! % 32 !== 0) {
      throw new SegvolError('ERR_SHAPE', `consistentConvLstm: the frames are ${frames[3]}x${frames[4]}; ResNet-50 halves them five times: use multiples of 32 (pad the frames)`);
    }
    if (masks.length !== 5 || masks[1] !== 1 || masks.slice(2).join() !== frames.slice(2).join() || masks[0]! < 1) {
      throw new SegvolError('ERR_SHAPE', `consistentConvLstm: expected masks (M, 1, ${frames.slice(2).join(', ')}), one previous-frame mask per object and frame, received (${masks.join(', ')})`);
    }
  }

  outputShape(inputShape: ModelInputShape): number[] {
    const shapes = this.inputShapes(inputShape);
    const frames = shapes.get('frames')!, masks = shapes.get('masks')!;
    this.check(frames, masks);
    return [...masks];
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const mode = this.mode(options);
    const inputs = this.inputMap(x);
    const frames = inputs.get('frames')!, masks = inputs.get('masks')!;
    this.check(frames.shape, masks.shape);
    const [, c, T, H, W] = frames.shape as [number, number, number, number, number];
    const objects = masks.shape[0]!;
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    try {
      // Frames as a batch of images: (1, C, T, H, W) -> (T, C, H, W).
      const images = keep(keep(ops.permute(frames, [0, 2, 1, 3, 4])).reshape([T, c, H, W]));
      const features = await this.encoder(images, mode);
      features.forEach((f) => keep(f));
      const projected: Tensor[] = [];
      for (let level = 0; level < 5; ++level) projected.push(keep(await this.projections[level]!(features[4 - level]!, mode)));
      // Each object's previous-frame masks (T, 1, H, W), down-sampled to every level's resolution.
      const objectMasks = keep(keep(ops.permute(masks, [0, 2, 1, 3, 4])).reshape([objects * T, 1, H, W]));
      const pyramid: Tensor[] = [];
      for (let level = 0; level < 5; ++level) {
        const f = 2 ** (5 - level);
        pyramid.push(keep(ops.avgPool(objectMasks, { kernel: [f, f], stride: [f, f] })));
      }
      let spatial: Array<{ forward: DirectionStates; backward?: DirectionStates } | undefined> = new Array(5).fill(undefined);
      const outputs: Tensor[] = [];
      for (let o = 0; o < objects; ++o) {
        let previous: Tensor | undefined;
        const states: typeof spatial = [];
        for (let level = 0; level < 5; ++level) {
          const mask = keep(ops.narrow(pyramid[level]!, 0, o * T, T));
          const parts = [projected[level]!, mask];
          if (previous) parts.unshift(keep(ops.upsample(previous, { scale: [2, 2], mode: 'linear' })));
          const input = keep(ops.concat(parts, 1));
          const s = spatial[level];
          const r = await this.cconv[level]!.run(input, { ...(s ? { spatial: s } : {}), reference: 0, mode });
          previous = keep(r.output);
          for (const d of [r.forward, r.backward]) if (d) keep(d.h), keep(d.c);
          states.push(r.backward ? { forward: r.forward, backward: r.backward } : { forward: r.forward });
        }
        spatial = states;
        const up = keep(ops.upsample(previous!, { scale: [2, 2], mode: 'linear' }));
        outputs.push(keep(ops.sigmoid(keep(await this.head(up, mode)))));  // (T, 1, H, W)
      }
      // (M * T, 1, H, W) -> (M, 1, T, H, W)
      const stacked = keep(ops.concat(outputs, 0));
      return ops.permute(keep(stacked.reshape([objects, T, 1, H, W])), [0, 2, 1, 3, 4]);
    } finally {
      for (const t of owned) t.dispose();
    }
  }
}

export const consistentPresets = {
  /** Gonda et al.'s consistent ConvLSTM network (see ConsistentConvLstmNet). */
  consistentConvLstm(options: ConsistentConvLstmNetOptions = {}): ConsistentConvLstmNet {
    return new ConsistentConvLstmNet(options);
  },
};
