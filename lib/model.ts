// A sequential model: layers in order, parameters named "layers.{i}.{name}"
// (shared/specs/conventions.md), forward/backward with a tape, predict, and
// safetensors weights. The DAG container and the trainer build on this.
import { SegvolError } from './errors';
import type { Layer, LayerBuilder, Tape } from './layers';
import { Random, seededRandom } from './random';
import { readSafetensors, writeSafetensors, type NamedArray } from './safetensors';
import { Tensor, type Device } from './tensor';

export interface SequentialOptions {
  inChannels: number;
  /** Fixes the initial weights. */
  seed?: number;
}

/** What forward() keeps for backward(): every layer's tape and the intermediate activations. */
export class ModelTape {
  /** @internal */
  constructor(readonly tapes: Tape[], private readonly owned: Tensor[]) {}
  dispose(): void {
    for (const t of this.tapes) t.dispose();
    for (const t of this.owned) t.dispose();
    this.tapes.length = 0;
    this.owned.length = 0;
  }
}

/**
 * What every model container shares: parameters and buffers named by layer path,
 * safetensors weights, predict and segment. Sequential and Graph extend it.
 */
export abstract class ModelBase {
  abstract readonly inChannels: number;
  abstract readonly outChannels: number;
  /** Drives dropout; its state is saved in checkpoints. */
  abstract readonly random: Random;
  /** Every layer with its path ("layers.3", "nodes.encoder1"), in execution order. */
  protected abstract namedLayers(): Array<[string, Layer]>;
  abstract outputShape(inputShape: readonly number[]): number[];
  abstract forward(x: Tensor, options?: { keepTape?: boolean; training?: boolean }): Promise<{ y: Tensor; tape: ModelTape }>;
  abstract backward(tape: ModelTape, dy: Tensor): Promise<{ dx: Tensor; grads: Map<string, Tensor> }>;

  /** Every trainable parameter by its stable name, in layer order. */
  parameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, layer] of this.namedLayers()) {
      for (const [name, t] of layer.parameters) out.set(`${path}.${name}`, t);
    }
    return out;
  }

  /** Parameters and buffers (running statistics): everything saveWeights writes. */
  state(): Map<string, Tensor> {
    const out = this.parameters();
    for (const [path, layer] of this.namedLayers()) {
      for (const [name, t] of layer.buffers ?? []) out.set(`${path}.${name}`, t);
    }
    return out;
  }

  /** Where the parameters live ('cpu' for a model without any). */
  get device(): Device {
    for (const t of this.state().values()) return t.device;
    return 'cpu';
  }

  /**
   * Moves every parameter and buffer to a device (in place) and returns the model. Inputs
   * given to forward must then be on that device; the trainer and predictVolume move theirs.
   */
  to(device: Device): this {
    for (const [, layer] of this.namedLayers()) {
      for (const map of [layer.parameters, layer.buffers ?? new Map<string, Tensor>()]) {
        for (const [name, old] of [...map]) {
          if (old.device === device) continue;
          map.set(name, old.to(device));
          old.dispose();
        }
      }
    }
    return this;
  }

  paramCount(): number {
    let total = 0;
    for (const t of this.parameters().values()) total += t.size;
    return total;
  }

  /** Forward without a tape: class probabilities for a softmax-ended model. */
  async predict(x: Tensor): Promise<Tensor> {
    return (await this.forward(x)).y;
  }

  /** The most probable class per voxel: (N, ...spatial) class ids. */
  async segment(x: Tensor): Promise<Tensor> {
    const probs = await this.predict(x);
    const [n, c] = probs.shape as [number, number];
    const spatial = probs.shape.slice(2);
    const s = spatial.reduce((a, b) => a * b, 1);
    const p = probs.toArray();
    probs.dispose();
    const out = new Float32Array(n * s);
    for (let b = 0; b < n; ++b)
      for (let v = 0; v < s; ++v) {
        let best = 0;
        for (let k = 1; k < c; ++k) if (p[(b * c + k) * s + v]! > p[(b * c + best) * s + v]!) best = k;
        out[b * s + v] = best;
      }
    return Tensor.fromArray(out, [n, ...spatial]);
  }

  /** Replaces every parameter and buffer with the one of the same name in a safetensors file (PyTorch-compatible). */
  loadWeights(file: string): void {
    const loaded = readSafetensors(file).tensors;
    const own = this.state();
    const missing = [...own.keys()].filter((k) => !loaded.has(k));
    const unexpected = [...loaded.keys()].filter((k) => !own.has(k));
    const mismatched = [...own].filter(([k, t]) => loaded.has(k) && loaded.get(k)!.shape.join() !== t.shape.join())
      .map(([k, t]) => `${k}: model (${t.shape.join(', ')}) vs file (${loaded.get(k)!.shape.join(', ')})`);
    if (missing.length || unexpected.length || mismatched.length) {
      const parts = [
        missing.length ? `missing in the file: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}` : '',
        unexpected.length ? `not in the model: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}` : '',
        mismatched.length ? `shape differs: ${mismatched.slice(0, 8).join('; ')}` : '',
      ].filter(Boolean);
      throw new SegvolError('ERR_SHAPE', `loadWeights ${file}: the weights do not fit this model (${parts.join('; ')}); ` +
        'build the model with the configuration the weights were trained with');
    }
    for (const [path, layer] of this.namedLayers()) {
      for (const map of [layer.parameters, layer.buffers ?? new Map<string, Tensor>()]) {
        for (const [name, old] of [...map]) {
          const a = loaded.get(`${path}.${name}`)!;
          map.set(name, Tensor.fromArray(a.data, a.shape, { device: old.device }));
          old.dispose();
        }
      }
    }
  }

  /** Writes every parameter and buffer to a safetensors file (atomically). */
  saveWeights(file: string, metadata: Record<string, string> = {}): void {
    const out = new Map<string, NamedArray>();
    for (const [name, t] of this.state()) out.set(name, { shape: [...t.shape], data: t.toArray() });
    writeSafetensors(file, out, metadata);
  }

  /** A table of layers, output shapes and parameter counts, for a single-input model. */
  protected table(rows: Array<[string, Layer, readonly number[]]>): string {
    const out: string[][] = [['layer', 'type', 'output shape', 'parameters', 'options']];
    for (const [path, layer, shape] of rows) {
      let count = 0;
      for (const t of layer.parameters.values()) count += t.size;
      out.push([path, layer.type, `(${shape.join(', ')})`, count.toLocaleString('en-US'), layer.describe()]);
    }
    out.push(['total', '', '', this.paramCount().toLocaleString('en-US'), '']);
    const widths = out[0]!.map((_, c) => Math.max(...out.map((r) => r[c]!.length)));
    return out.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
  }

  dispose(): void {
    for (const t of this.state().values()) t.dispose();
  }
}

/** Layers in order, each feeding the next. */
export class Sequential extends ModelBase {
  readonly layers: Layer[] = [];
  readonly inChannels: number;
  readonly random: Random;

  constructor(builders: readonly LayerBuilder[], options: SequentialOptions) {
    super();
    if (!Number.isInteger(options.inChannels) || options.inChannels < 1) {
      throw new SegvolError('ERR_ARGUMENT', `Sequential: expected inChannels as a positive integer, received ${options.inChannels}`);
    }
    this.inChannels = options.inChannels;
    this.random = new Random((options.seed ?? 0) ^ 0x5eed);
    const random = seededRandom(options.seed ?? 0);
    let channels = options.inChannels;
    for (const builder of builders) {
      const layer = builder.build({ inChannels: channels, random });
      this.layers.push(layer);
      channels = layer.outChannels;
    }
  }

  protected namedLayers(): Array<[string, Layer]> {
    return this.layers.map((layer, i) => [`layers.${i}`, layer]);
  }

  get outChannels(): number {
    return this.layers.length ? this.layers[this.layers.length - 1]!.outChannels : this.inChannels;
  }

  /** Output shape for an input shape, checking every layer (errors name the layer path). */
  outputShape(inputShape: readonly number[]): number[] {
    if (inputShape[1] !== this.inChannels) {
      throw new SegvolError('ERR_SHAPE', `model: expected ${this.inChannels} input channels, received (${inputShape.join(', ')})`);
    }
    let shape = [...inputShape];
    this.layers.forEach((layer, i) => {
      shape = layer.outputShape(shape, `layers.${i}`);
    });
    return shape;
  }

  /** A table of layers, output shapes and parameter counts. */
  summary(inputShape: readonly number[] = [1, this.inChannels, 8, 64, 64]): string {
    let shape = [...inputShape];
    return this.table(this.layers.map((layer, i) => {
      shape = layer.outputShape(shape, `layers.${i}`);
      return [`layers.${i}`, layer, shape];
    }));
  }

  /** Runs every layer. With keepTape, returns what backward() needs; dispose it after. */
  async forward(x: Tensor, options: { keepTape?: boolean; training?: boolean } = {}): Promise<{ y: Tensor; tape: ModelTape }> {
    this.outputShape(x.shape);
    const tapes: Tape[] = [];
    const owned: Tensor[] = [];
    const mode = { training: options.training ?? options.keepTape ?? false, keepTape: options.keepTape ?? false, random: () => this.random.next() };
    let current = x;
    for (const layer of this.layers) {
      const { y, tape } = await layer.forward(current, mode);
      tapes.push(tape);
      if (current !== x) owned.push(current);
      current = y;
    }
    // The caller gets its own handle on the output (a view): disposing it leaves the
    // layers' tapes, which may hold the original (softmax does), intact.
    if (current !== x) owned.push(current);
    const y = current.reshape(current.shape);
    const modelTape = new ModelTape(tapes, owned);
    if (!options.keepTape) {
      modelTape.dispose();
    }
    return { y, tape: modelTape };
  }

  /** Gradients of the input and of every parameter (by name) for dy, the gradient of forward's output. */
  async backward(tape: ModelTape, dy: Tensor): Promise<{ dx: Tensor; grads: Map<string, Tensor> }> {
    if (tape.tapes.length !== this.layers.length) {
      throw new SegvolError('ERR_ARGUMENT', 'model.backward: expected the tape of forward(x, { keepTape: true }) that was not disposed');
    }
    const grads = new Map<string, Tensor>();
    let gradient = dy;
    for (let i = this.layers.length - 1; i >= 0; --i) {
      const { dx, grads: layerGrads } = await this.layers[i]!.backward(tape.tapes[i]!, gradient);
      if (gradient !== dy) gradient.dispose();
      gradient = dx;
      for (const [name, g] of layerGrads) grads.set(`layers.${i}.${name}`, g);
    }
    return { dx: gradient, grads };
  }
}

export function sequential(builders: readonly LayerBuilder[], options: SequentialOptions): Sequential {
  return new Sequential(builders, options);
}
