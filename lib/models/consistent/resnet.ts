// ResNet-50 (He et al. 2015) truncated at its last convolution, as torchvision builds
// it (the stride on each bottleneck's 3x3 convolution, "v1.5"), with torchvision's
// parameter names, so a torchvision state_dict saved as safetensors loads unchanged.
// The consistent ConvLSTM's encoder: the outputs of its five blocks are the features.
import { SegvolError } from '../../core/errors';
import type { Tensor } from '../../core/tensor';
import type { ForwardMode, LayerBuilder } from '../../nn/layer';
import { layers } from '../../nn/layers';
import { Model, type ModelInput, type ModelInputShape, type RunOptions } from '../../nn/model';
import { readSafetensors, type NamedArray } from '../../io/safetensors';
import { ops } from '../../ops';

type Call = (x: Tensor, mode: ForwardMode) => Promise<Tensor>;
type Register = (name: string, builder: LayerBuilder, inChannels: number) => Call;

/** ResNet-50's stages: blocks, bottleneck width, stride of the first block. */
const stages = [
  { blocks: 3, planes: 64, stride: 1 },
  { blocks: 4, planes: 128, stride: 2 },
  { blocks: 6, planes: 256, stride: 2 },
  { blocks: 3, planes: 512, stride: 2 },
] as const;

/** Channels of the five features, shallowest first: conv1 (1/2), layer1 (1/4), layer2 (1/8), layer3 (1/16), layer4 (1/32). */
export const resnet50FeatureChannels = [64, 256, 512, 1024, 2048] as const;

/**
 * The receptive field of one of ResNet-50's deepest (1/32) features, in input pixels along
 * each axis: computed from the layers (conv1 7x7/2, max-pool 3x3/2, each bottleneck's 3x3
 * convolution at its stride); the 1x1 convolutions add nothing. 427 for torchvision's v1.5.
 */
export function resnet50ReceptiveField(): number {
  let field = 7, jump = 2;  // conv1
  field += 2 * jump;        // max-pool 3x3
  jump *= 2;
  for (const stage of stages) {
    for (let b = 0; b < stage.blocks; ++b) {
      field += 2 * jump;    // the 3x3 convolution, at the input's spacing
      if (b === 0) jump *= stage.stride;
    }
  }
  return field;
}

/**
 * Builds ResNet-50's layers through `register` (a Model's layer()) under `prefix`, and
 * returns the function that computes the five features of (N, C, H, W) images.
 */
export function resnet50Layers(register: Register, prefix: string, inChannels: number): (x: Tensor, mode: ForwardMode) => Promise<Tensor[]> {
  const conv = (out: number, k: number, stride: number, padding: number): LayerBuilder =>
    layers.conv({ out, kernel: [k, k], stride: [stride, stride], padding: [padding, padding], bias: false, init: 'msra' });
  const bn = () => layers.batchNorm();
  const stem = { conv: register(`${prefix}conv1`, conv(64, 7, 2, 3), inChannels), bn: register(`${prefix}bn1`, bn(), 64) };
  let channels = 64;
  const blocks = stages.map((stage, s) => Array.from({ length: stage.blocks }, (_, b) => {
    const name = `${prefix}layer${s + 1}.${b}.`;
    const stride = b === 0 ? stage.stride : 1;
    const out = stage.planes * 4;
    const block = {
      conv1: register(`${name}conv1`, conv(stage.planes, 1, 1, 0), channels), bn1: register(`${name}bn1`, bn(), stage.planes),
      conv2: register(`${name}conv2`, conv(stage.planes, 3, stride, 1), stage.planes), bn2: register(`${name}bn2`, bn(), stage.planes),
      conv3: register(`${name}conv3`, conv(out, 1, 1, 0), stage.planes), bn3: register(`${name}bn3`, bn(), out),
      downsample: b === 0 ? { conv: register(`${name}downsample.0`, conv(out, 1, stride, 0), channels), bn: register(`${name}downsample.1`, bn(), out) } : undefined,
    };
    channels = out;
    return block;
  }));
  return async (x, mode) => {
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    try {
      const features: Tensor[] = [];
      const stemOut = ops.relu(keep(await stem.bn(keep(await stem.conv(x, mode)), mode)));
      features.push(stemOut);
      let y = keep(ops.maxPool(stemOut, { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }));
      for (const stage of blocks) {
        for (const block of stage) {
          const a = keep(ops.relu(keep(await block.bn1(keep(await block.conv1(y, mode)), mode))));
          const b = keep(ops.relu(keep(await block.bn2(keep(await block.conv2(a, mode)), mode))));
          const c = keep(await block.bn3(keep(await block.conv3(b, mode)), mode));
          const identity = block.downsample ? keep(await block.downsample.bn(keep(await block.downsample.conv(y, mode)), mode)) : y;
          y = ops.relu(keep(ops.add(c, identity)));
          if (block === stage[stage.length - 1]) features.push(y);
          else keep(y);
        }
      }
      return features;
    } finally {
      for (const t of owned) t.dispose();
    }
  };
}

/**
 * The torchvision state_dict of a ResNet-50 as this encoder's state: the fc layer and
 * num_batches_tracked dropped, names given `prefix`. With one input channel, conv1's RGB
 * filters are summed (a grey image seen as equal R, G and B).
 */
export function torchvisionResnet50State(source: string | ReadonlyMap<string, NamedArray>, prefix = '', inChannels = 3): Map<string, NamedArray> {
  const loaded = typeof source === 'string' ? readSafetensors(source).tensors : source;
  const out = new Map<string, NamedArray>();
  for (const [name, value] of loaded) {
    if (name.startsWith('fc.') || name.endsWith('num_batches_tracked')) continue;
    if (name === 'conv1.weight' && inChannels !== value.shape[1]) {
      if (inChannels !== 1 || value.shape[1] !== 3) {
        throw new SegvolError('ERR_SHAPE', `ResNet-50 weights: conv1 takes ${value.shape[1]} channels, the encoder ${inChannels}; only RGB -> grey (1) is converted`);
      }
      const [o, , kh, kw] = value.shape as [number, number, number, number];
      const grey = new Float32Array(o * kh * kw);
      for (let i = 0; i < o; ++i) for (let c = 0; c < 3; ++c) for (let k = 0; k < kh * kw; ++k) grey[i * kh * kw + k] += value.data[(i * 3 + c) * kh * kw + k]!;
      out.set(`${prefix}${name}`, { shape: [o, 1, kh, kw], data: grey });
      continue;
    }
    out.set(`${prefix}${name}`, value);
  }
  return out;
}

export interface Resnet50EncoderOptions {
  /** Image channels (default 3; 1 for EM, see torchvisionResnet50State). */
  inChannels?: number;
  seed?: number;
}

/** ResNet-50 without its pooling and fc layer, on its own: forward gives layer4's features, features() all five. */
export class Resnet50Encoder extends Model {
  readonly outChannels = 2048;
  private readonly run: (x: Tensor, mode: ForwardMode) => Promise<Tensor[]>;

  constructor(options: Resnet50EncoderOptions = {}) {
    super({ inputs: { input: options.inChannels ?? 3 }, seed: options.seed ?? 0 });
    this.run = resnet50Layers((n, b, c) => this.layer(n, b, c), '', options.inChannels ?? 3);
    this.describedAs({ kind: 'preset', preset: 'resnet50Encoder', options: { ...options } });
  }

  outputShape(inputShape: ModelInputShape): number[] {
    const s = this.inputShapes(inputShape).get('input')!;
    if (s.length !== 4) throw new SegvolError('ERR_SHAPE', `resnet50Encoder: expected images (N, C, H, W), received (${s.join(', ')})`);
    let [h, w] = [s[2]!, s[3]!];
    for (let k = 0; k < 5; ++k) [h, w] = [Math.floor((h - 1) / 2) + 1, Math.floor((w - 1) / 2) + 1];
    return [s[0]!, 2048, h, w];
  }

  /** The five block outputs, shallowest first (channels 64, 256, 512, 1024, 2048 at 1/2 .. 1/32). */
  async features(x: ModelInput, options: RunOptions = {}): Promise<Tensor[]> {
    const input = this.single(x);
    this.outputShape([...input.shape]);
    return this.run(input, this.mode(options));
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const f = await this.features(x, options);
    for (const t of f.slice(0, 4)) t.dispose();
    return f[4]!;
  }
}
