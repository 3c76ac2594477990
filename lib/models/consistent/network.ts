// Gonda, Wei and Pfister, "Consistent recurrent neural networks for 3D neuron
// segmentation" (sections 2.1-2.4): a ResNet-50 encoder per frame, and a hierarchical
// decoder of CConvLSTMs over its five resolutions that produces one mask per object per
// frame, objects in sequence within a frame (spatial recurrence), frames in sequence
// (temporal recurrence), starting from a labelled reference frame.
import { describe, SegvolError } from '../../core/errors';
import { rejectUnknown } from '../../core/validate';
import { Tensor } from '../../core/tensor';
import type { ConsistencyVariant, ConsistentConvLstmLayer, DirectionStates } from './layer';
import { consistencyVariants } from './layer';
import type { ForwardMode } from '../../nn/layer';
import { layers } from '../../nn/layers';
import { consistentLayers } from './layer';
import { Model, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import { ops } from '../../ops';
import type { NamedArray } from '../../io/safetensors';
import { resnet50FeatureChannels, resnet50Layers, resnet50ReceptiveField, torchvisionResnet50State } from './resnet';

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

  /**
   * In-plane pixels one of the encoder's deepest features sees (ResNet-50's receptive field,
   * 427): the smallest tile propagation accepts. The decoder's convolutions widen what an
   * output sees, and its recurrences over frames and objects carry information further still.
   */
  receptiveField(): number {
    return resnet50ReceptiveField();
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
    const [, , T, H, W] = frames.shape as [number, number, number, number, number];
    const objects = masks.shape[0]!;
    const features = await this.encode(frames, { ...options, training: mode.training });
    const owned: Tensor[] = [];
    try {
      // (M, 1, T, H, W) -> (M * T, 1, H, W): object o's previous-frame masks are rows o*T .. o*T+T-1.
      const moved = ops.permute(masks, [0, 2, 1, 3, 4]);
      owned.push(moved);
      const objectMasks = moved.reshape([objects * T, 1, H, W]);
      owned.push(objectMasks);
      const outputs: Tensor[] = [];
      const maskOf = (o: number) => {
        const mask = ops.narrow(objectMasks, 0, o * T, T);
        owned.push(mask);
        return mask;
      };
      const result = await this.decode(features, objects, maskOf, {
        ...options, training: mode.training, onObject: (_, mask) => void outputs.push(mask),
      });
      disposeSpatial(result.spatial);
      owned.push(...outputs);
      // (M * T, 1, H, W) -> (M, 1, T, H, W)
      const stacked = ops.concat(outputs, 0);
      owned.push(stacked);
      const shaped = stacked.reshape([objects, T, 1, H, W]);
      owned.push(shaped);
      return ops.permute(shaped, [0, 2, 1, 3, 4]);
    } finally {
      for (const t of [...owned, ...features]) t.dispose();
    }
  }

  /**
   * The encoder's features of a sub-volume, projected: one (T, hidden_k, H / 2^(5-k), W / 2^(5-k))
   * tensor per level k, deepest first. They do not depend on the masks, so inference computes
   * them once for every pass and every group of objects. In training the T frames go through
   * ResNet-50 as one batch (batch normalization's statistics are the sub-volume's); otherwise
   * frame by frame, which gives the same values with one frame's activations alive at a time.
   * frames: (1, C, T, H, W).
   */
  async encode(frames: Tensor, options: RunOptions = {}): Promise<Tensor[]> {
    const mode = this.mode(options);
    if (frames.shape.length !== 5 || frames.shape[0] !== 1 || frames.shape[1] !== this.options.inChannels || frames.shape[3]! % 32 !== 0 || frames.shape[4]! % 32 !== 0) {
      throw new SegvolError('ERR_SHAPE', `consistentConvLstm: expected frames (1, ${this.options.inChannels}, T, H, W) with H and W multiples of 32, received (${frames.shape.join(', ')})`);
    }
    const [, c, T, H, W] = frames.shape as [number, number, number, number, number];
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    try {
      // (1, C, T, H, W) -> (T, C, H, W)
      const images = keep(keep(ops.permute(frames, [0, 2, 1, 3, 4])).reshape([T, c, H, W]));
      const batches = mode.training ? [images] : Array.from({ length: T }, (_, t) => keep(ops.narrow(images, 0, t, 1)));
      const perLevel: Tensor[][] = [[], [], [], [], []];
      for (const batch of batches) {
        const features = await this.encoder(batch, mode);
        try {
          for (let level = 0; level < 5; ++level) perLevel[level]!.push(await this.projections[level]!(features[4 - level]!, mode));
        } finally {
          for (const f of features) f.dispose();
        }
      }
      return perLevel.map((parts) => {
        if (parts.length === 1) return parts[0]!;
        const joined = ops.concat(parts, 0);
        for (const p of parts) p.dispose();
        return joined;
      });
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  /**
   * The decoder over `objects` objects in order, from encode()'s features. maskOf(o) gives object
   * o's previous-frame masks (T, 1, H, W) (the caller's tensor; decode does not dispose it).
   * Each object's output masks (T, 1, H, W) go to onObject, which owns them, as soon as they
   * exist; the object's other tensors are freed once the next object has used its states, so
   * memory holds one or two objects however many there are. `spatial` continues the sequence
   * from a previous group of objects (their last object's states, as returned here); the
   * result is then the same as decoding both groups in one call.
   */
  async decode(features: readonly Tensor[], objects: number, maskOf: (o: number) => Tensor, options: RunOptions & {
    spatial?: SpatialStates; onObject: (o: number, mask: Tensor) => void | Promise<void>;
  }): Promise<{ spatial: SpatialStates }> {
    const mode = this.mode(options);
    if (features.length !== 5) throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm.decode: expected the 5 levels encode() returns, received ${features.length}`);
    const [T, , h0, w0] = features[4]!.shape as [number, number, number, number];
    const H = 2 * h0, W = 2 * w0;
    let spatial: Array<{ forward: DirectionStates; backward?: DirectionStates } | undefined> = options.spatial ? [...options.spatial] : new Array(5).fill(undefined);
    // What object o-1 kept alive: freed once object o has read its states.
    let previousObject: Tensor[] = [];
    try {
      for (let o = 0; o < objects; ++o) {
        const owned: Tensor[] = [];
        const keep = (t: Tensor) => (owned.push(t), t);
        const masks = maskOf(o);
        if (masks.shape.join() !== [T, 1, H, W].join()) {
          throw new SegvolError('ERR_SHAPE', `consistentConvLstm.decode: object ${o}'s masks are (${masks.shape.join(', ')}), expected (${T}, 1, ${H}, ${W})`);
        }
        let previous: Tensor | undefined;
        const states: Array<{ forward: DirectionStates; backward?: DirectionStates }> = [];
        for (let level = 0; level < 5; ++level) {
          const f = 2 ** (5 - level);
          const mask = keep(ops.avgPool(masks, { kernel: [f, f], stride: [f, f] }));
          const parts = [features[level]!, mask];
          if (previous) parts.unshift(keep(ops.upsample(previous, { scale: [2, 2], mode: 'linear' })));
          const input = keep(ops.concat(parts, 1));
          const s = spatial[level];
          const r = await this.cconv[level]!.run(input, { ...(s ? { spatial: s } : {}), reference: 0, mode });
          previous = keep(r.output);
          states.push(r.backward ? { forward: r.forward, backward: r.backward } : { forward: r.forward });
        }
        const up = keep(ops.upsample(previous!, { scale: [2, 2], mode: 'linear' }));
        const mask = ops.sigmoid(keep(await this.head(up, mode)));  // (T, 1, H, W)
        // The states handed in by the caller stay the caller's; this call's own are freed as it goes.
        for (const t of previousObject) t.dispose();
        previousObject = [...owned, ...states.flatMap(spatialTensors)];
        spatial = states;
        await options.onObject(o, mask);
      }
      // The last object's states leave with the result: the caller frees them (disposeSpatial).
      const last = new Set<Tensor>(spatial.flatMap((s) => (s ? spatialTensors(s) : [])));
      previousObject = previousObject.filter((t) => !last.has(t));
      return { spatial: spatial as SpatialStates };
    } finally {
      for (const t of previousObject) t.dispose();
    }
  }
}

/** Every level's states of one object (both directions): what the next object continues from. */
export type SpatialStates = ReadonlyArray<{ forward: DirectionStates; backward?: DirectionStates }>;

function spatialTensors(s: { forward: DirectionStates; backward?: DirectionStates }): Tensor[] {
  return [s.forward.h, s.forward.c, ...(s.backward ? [s.backward.h, s.backward.c] : [])];
}

/** Frees states decode() returned. */
export function disposeSpatial(spatial: SpatialStates | undefined): void {
  for (const s of spatial ?? []) for (const t of spatialTensors(s)) t.dispose();
}

/** Copies of states with no history on the tape: the next group of objects starts from their values, and no gradient flows back. */
export function detachSpatial(spatial: SpatialStates): SpatialStates {
  const copy = (t: Tensor) => Tensor.fromArray(t.toArray(), t.shape, { device: t.device });
  return spatial.map((s) => ({
    forward: { h: copy(s.forward.h), c: copy(s.forward.c) },
    ...(s.backward ? { backward: { h: copy(s.backward.h), c: copy(s.backward.c) } } : {}),
  }));
}

export const consistentPresets = {
  /** Gonda et al.'s consistent ConvLSTM network (see ConsistentConvLstmNet). */
  consistentConvLstm(options: ConsistentConvLstmNetOptions = {}): ConsistentConvLstmNet {
    return new ConsistentConvLstmNet(options);
  },
};
