// Fusing the modalities of multi-modal MRI: Tseng et al.'s cross-modality convolution.
import { ops } from '../../ops';
import type { Tensor } from '../../core/tensor';
import { initializerOption, parameter, shapeError, type Layer, type LayerBuilder } from '../../nn/layer';
import type { Initializer } from '../../nn/init';
import { SegvolError } from '../../core/errors';
import { positiveIntegerField } from '../../core/validate';

export interface CrossModalityOptions {
  /** M, the modalities whose features the input holds one after another. */
  modalities: number;
  /** Output channels (default: the channels per modality, C). */
  out?: number;
  bias?: boolean;
  /** The weight's initialiser (default 'msra'). */
  init?: Initializer;
}

/**
 * Cross-modality convolution (CMC): the input is the M modalities' feature maps one
 * after another on the channel axis, (N, M*C, D, H, W), modality-major (what concat of
 * the per-modality encoders gives). The same channel of every modality is stacked and
 * a (M x 1 x 1) 3D convolution weights and sums them: exactly PyTorch's
 * Conv3d(C, out, kernel_size=(M, 1, 1)) on the stacked (N*D, C, M, H, W) features, with
 * its weight (out, C, M, 1, 1) and names. Computed as one 1x1x1 product over M*C
 * channels, so no stacked copy is made.
 */
class CrossModalityLayer implements Layer {
  readonly type = 'crossModality';
  readonly parameters = new Map<string, Tensor>();
  readonly outChannels: number;
  private readonly perModality: number;

  constructor(readonly inChannels: number, private readonly o: CrossModalityOptions, random: () => number) {
    const m = o.modalities;
    if (inChannels % m !== 0) {
      throw new SegvolError('ERR_ARGUMENT', `crossModality: the input has ${inChannels} channels, not a multiple of ${m} modalities ` +
        '(expected the modalities\' features concatenated on the channel axis, C channels each)');
    }
    this.perModality = inChannels / m;
    this.outChannels = o.out ?? this.perModality;
    this.parameters.set('weight', parameter([this.outChannels, this.perModality, m, 1, 1], o.init ?? 'msra', random));
    if (o.bias ?? true) this.parameters.set('bias', parameter([this.outChannels], 'zeros', random));
  }

  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== 5 || shape[1] !== this.inChannels) {
      throw shapeError(path, 'crossModality', `(N, ${this.inChannels}, D, H, W): ${this.o.modalities} modalities of ${this.perModality} channels`, shape);
    }
    return [shape[0]!, this.outChannels, ...shape.slice(2)];
  }

  async forward(x: Tensor): Promise<Tensor> {
    const weight = this.parameters.get('weight')!;
    const m = this.o.modalities, c = this.perModality;
    // weight (out, C, M, 1, 1) -> (out, M, C) -> (out, M*C, 1, 1, 1): input channel m*C + c meets weight[o, c, m].
    const permuted = ops.permute(weight, [0, 2, 1, 3, 4]);
    const flat = permuted.reshape([this.outChannels, m * c, 1, 1, 1]);
    const bias = this.parameters.get('bias');
    try {
      return await ops.convAsync(x, flat, bias ? { bias } : {});
    } finally {
      flat.dispose();
      permuted.dispose();
    }
  }

  describe(): string {
    return `${this.o.modalities} modalities x ${this.perModality} -> ${this.outChannels}, kernel ${this.o.modalities}x1x1`;
  }
}

export const crossModalityLayers = {
  /** Tseng et al.'s cross-modality convolution over modality-major concatenated features (see CrossModalityOptions). */
  crossModality(options: CrossModalityOptions): LayerBuilder {
    positiveIntegerField(options.modalities, 'crossModality', 'modalities');
    if (options.out !== undefined) positiveIntegerField(options.out, 'crossModality', 'out');
    initializerOption(options.init, 'msra', 'crossModality');
    return { type: 'crossModality', options: { ...options }, build: (ctx) => new CrossModalityLayer(ctx.inChannels, options, ctx.random) };
  },
};
