// Models written as a forward function (Model), on ModelBase; and the types every
// model shares, re-exported for the callers of lib/nn/model.
import { SegvolError } from '../core/errors';
import { seededRandom } from '../core/random';
import type { Tensor } from '../core/tensor';
import type { ForwardMode, Layer, LayerBuilder } from './layer';
import { ModelBase } from './model_base';
import type { ModelInput } from './model_types';
import { positiveIntegerField } from '../core/validate';

export { ModelBase } from './model_base';
export * from './model_types';

/** A layer of a Model, called like a function; its ops are named by the layer's name in errors. */
export type LayerCall = (x: Tensor, mode: ForwardMode) => Promise<Tensor>;

export interface ModelOptions {
  /** Input names and channel counts, e.g. { image: 1, boundary: 1 }. */
  inputs: Record<string, number>;
  /** Fixes the initial weights and dropout. */
  seed?: number;
}

/**
 * A model written as a forward function. Declare layers as fields with
 * this.layer(name, builder, inChannels) and implement forward() with them and
 * any ops; gradients come from the ops.
 *
 *   class TwoStream extends Model {
 *     readonly outChannels = 2;
 *     private readonly a = this.layer('a', layers.conv({ out: 2, kernel: [1, 3, 3] }), 1);
 *     constructor() { super({ inputs: { image: 1 }, seed: 1 }); }
 *     async forward(x: ModelInput, options?: RunOptions) { return this.a(this.single(x), this.mode(options)); }
 *     outputShape(shape: ModelInputShape) { ... }
 *   }
 */
export abstract class Model extends ModelBase {
  readonly inputs: Readonly<Record<string, number>>;
  private readonly registered: Array<[string, Layer]> = [];
  private readonly initRandom: () => number;

  protected constructor(options: ModelOptions) {
    super(options.seed ?? 0);
    for (const [name, c] of Object.entries(options.inputs)) positiveIntegerField(c, `model: input '${name}'`, 'its channel count');
    this.inputs = { ...options.inputs };
    this.initRandom = seededRandom(options.seed ?? 0);
  }

  /** Builds a layer for inChannels input channels, names its parameters "{name}.{param}", and returns it as a function. */
  protected layer(name: string, builder: LayerBuilder, inChannels: number): LayerCall {
    if (this.registered.some(([n]) => n === name)) throw new SegvolError('ERR_ARGUMENT', `model: the layer name '${name}' is used twice`);
    const layer = builder.build({ inChannels, random: this.initRandom });
    this.registered.push([name, layer]);
    return (x, mode) => this.runLayer(name, layer, x, mode);
  }

  /**
   * Builds a layer like layer() but returns the layer object itself, for layers with
   * more than one result: `this.lstm.run(x, { h0, lengths })` gives output, hN and cN.
   */
  protected sublayer<L extends Layer>(name: string, builder: LayerBuilder<L>, inChannels: number): L {
    if (this.registered.some(([n]) => n === name)) throw new SegvolError('ERR_ARGUMENT', `model: the layer name '${name}' is used twice`);
    const layer = builder.build({ inChannels, random: this.initRandom });
    this.registered.push([name, layer]);
    return layer;
  }

  /** The one input of a single-input model. */
  protected single(x: ModelInput): Tensor {
    return this.inputMap(x).values().next().value!;
  }

  protected namedLayers(): Array<[string, Layer]> {
    return this.registered;
  }
}
