// A sequential model: layers in order, each feeding the next, parameters named
// "layers.{i}.{name}" (PyTorch's nn.Sequential inside a module called "layers").
import { seededRandom } from '../core/random';
import type { Tensor } from '../core/tensor';
import type { Layer, LayerBuilder } from './layer';
import { estimateLayerListMemory, formatBytes } from './memory';
import { ModelBase, type ModelInput, type ModelInputShape, type RunOptions } from './model';
import { positiveIntegerField } from '../core/validate';

export interface SequentialOptions {
  inChannels: number;
  /** Fixes the initial weights and dropout. */
  seed?: number;
}

export class Sequential extends ModelBase {
  readonly layers: Layer[] = [];
  readonly inputs: Readonly<Record<string, number>>;

  constructor(builders: readonly LayerBuilder[], options: SequentialOptions) {
    super(options.seed ?? 0);
    positiveIntegerField(options.inChannels, 'Sequential', 'inChannels');
    this.inputs = { input: options.inChannels };
    const random = seededRandom(options.seed ?? 0);
    let channels = options.inChannels;
    for (const builder of builders) {
      const layer = builder.build({ inChannels: channels, random });
      this.layers.push(layer);
      channels = layer.outChannels;
    }
    this.describedAs({ kind: 'sequential', inChannels: options.inChannels, seed: options.seed ?? 0,
      layers: builders.map((b) => ({ type: b.type, options: b.options })) });
  }

  protected namedLayers(): Array<[string, Layer]> {
    return this.layers.map((layer, i) => [`layers.${i}`, layer]);
  }

  get outChannels(): number {
    return this.layers.length ? this.layers[this.layers.length - 1]!.outChannels : this.inChannels;
  }

  outputShape(inputShape: ModelInputShape): number[] {
    let shape = this.inputShapes(inputShape).get('input')!;
    this.layers.forEach((layer, i) => {
      shape = layer.outputShape(shape, `layers.${i}`);
    });
    return shape;
  }

  /**
   * A table of layers, output shapes and parameter counts, then the predicted memory of
   * a training step on this input (RMSprop or Adam state included), with the gates of
   * recurrent layers kept and recomputed.
   */
  summary(inputShape: readonly number[] = [1, this.inChannels, 8, 64, 64]): string {
    let shape = this.inputShapes(inputShape).get('input')!;
    const table = this.table(this.layers.map((layer, i) => {
      shape = layer.outputShape(shape, `layers.${i}`);
      return [`layers.${i}`, layer, shape];
    }));
    const device = this.device;
    const kept = estimateLayerListMemory(this.layers, inputShape, { device });
    const lean = estimateLayerListMemory(this.layers, inputShape, { device, schedule: { recompute: true, scanGroups: 1 } });
    const lines = [`training step on (${inputShape.join(', ')}), ${device}: about ${formatBytes(kept.peakBytes)} at peak ` +
      `(${formatBytes(kept.keptBytes)} kept for backward, largest transient ${formatBytes(kept.transientBytes)})`];
    if (lean.peakBytes < kept.peakBytes) lines.push(`  with recomputed gates, one direction at a time: about ${formatBytes(lean.peakBytes)}`);
    return `${table}\n${lines.join('\n')}`;
  }

  async forward(x: ModelInput, options: RunOptions = {}): Promise<Tensor> {
    const input = this.inputMap(x).get('input')!;
    this.outputShape(input.shape);
    const mode = this.mode(options);
    let current = input;
    for (let i = 0; i < this.layers.length; ++i) {
      const next = await this.runLayer(`layers.${i}`, this.layers[i]!, current, mode);
      // A tape keeps its own views of what backward needs, so intermediates go now.
      if (current !== input) current.dispose();
      current = next;
    }
    // The caller owns the result, never the input itself.
    return current === input ? input.reshape(input.shape) : current;
  }
}

export function sequential(builders: readonly LayerBuilder[], options: SequentialOptions): Sequential {
  return new Sequential(builders, options);
}
