// What every model shares: named inputs, parameters and buffers named by layer
// path (PyTorch's names), weights files, devices, predict and segment, and the
// field of view of dense ('valid') networks. Gradients come from the ops the
// forward function calls.
import { noGrad, scope } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { NonFiniteScan, nonFinitePolicy } from '../core/non_finite';
import type { Normalization } from '../core/normalization';
import { Random } from '../core/random';
import { Tensor, type Device } from '../core/tensor';
import { segvolVersion } from '../core/version';
import { ops } from '../ops';
import type { ForwardMode, Layer } from './layer';
import { checkStateFits, replaceLayerTensors, tensorFromState } from './state';
import {
  modelFileFormat, modelServices, normalizationOf, type Architecture, type ModelInfo, type ModelInput, type ModelInputShape, type OutputWindow,
  type PredictOptions, type RunOptions, type StateArray,
} from './model_types';

/**
 * The base of every model container (Sequential, Graph, Model). A subclass names
 * its inputs, lists its layers and defines forward().
 */
export abstract class ModelBase {
  /** Input names and channel counts, e.g. { input: 1 } or { image: 1, boundary: 1 }. */
  abstract readonly inputs: Readonly<Record<string, number>>;
  abstract readonly outChannels: number;
  /** Drives dropout; its state is saved in checkpoints. */
  readonly random: Random;
  /** Names of the outputs forwardOutputs() returns; the first is forward()'s. */
  readonly outputNames: readonly string[] = ['output'];
  /** What applying the model needs besides its weights (saved in model files). */
  info: ModelInfo = {};
  /** Training mode by default (forward's training option overrides it); predict always runs in inference mode. */
  training = false;
  private declared: Architecture | undefined;

  protected constructor(seed: number) {
    this.random = new Random(seed ^ 0x5eed);
  }

  /** Forward passes run in training mode by default (batch statistics, dropout). Returns the model. */
  train(): this {
    this.training = true;
    return this;
  }

  /** Forward passes run in inference mode by default. Returns the model. */
  eval(): this {
    this.training = false;
    return this;
  }

  /** How a model file rebuilds this model: a preset and its options, a layer list, a graph, or a custom class's name. */
  architecture(): Architecture {
    return this.declared ?? { kind: 'custom', name: this.constructor.name };
  }

  /** @internal A preset records itself (more readable and stable in a file than its layers). */
  describedAs(architecture: Architecture): this {
    this.declared = architecture;
    return this;
  }

  /** The metadata a model file carries: format, segvol version, architecture, inputs, outputs and info. */
  fileMetadata(): Record<string, string> {
    return {
      'segvol.model': JSON.stringify({
        format: modelFileFormat, segvolVersion: segvolVersion(), architecture: this.architecture(), inputs: this.inputs,
        outputs: this.outputNames, outChannels: this.outChannels, info: this.info,
      }),
    };
  }

  /** Writes a self-describing model file (weights, architecture, info; safetensors, atomically): loadModel(file) rebuilds it. */
  save(file: string): void {
    this.saveWeights(file, this.fileMetadata());
  }

  /** Every layer with its path ("layers.3", "nodes.encoder1"), in execution order. */
  protected abstract namedLayers(): Array<[string, Layer]>;
  /** The output shape for input shapes, checking every layer (errors name the layer path). */
  abstract outputShape(inputShape: ModelInputShape): number[];
  /** The forward function. Ops it calls are recorded while a GradientTape records. */
  abstract forward(x: ModelInput, options?: RunOptions): Promise<Tensor>;

  /** Every output by name (one for most models). */
  async forwardOutputs(x: ModelInput, options: RunOptions = {}): Promise<Record<string, Tensor>> {
    return { [this.outputNames[0]!]: await this.forward(x, options) };
  }

  /** Channels of the input (the sum over inputs for a multi-input model). */
  get inChannels(): number {
    return Object.values(this.inputs).reduce((a, b) => a + b, 0);
  }

  /** The mode a forward pass runs in. */
  protected mode(options: RunOptions = {}): ForwardMode {
    return { training: options.training ?? this.training, random: () => this.random.next(), ...(options.schedule ? { schedule: options.schedule } : {}) };
  }

  /** Runs a layer with its ops named by path in error messages. */
  protected runLayer(path: string, layer: Layer, x: Tensor, mode: ForwardMode): Promise<Tensor> {
    return scope(path, () => layer.forward(x, mode));
  }

  /** The inputs by name, checked against the model's (a lone tensor is the single input). */
  protected inputMap(x: ModelInput): Map<string, Tensor> {
    const names = Object.keys(this.inputs);
    if (x instanceof Tensor) {
      if (names.length !== 1) {
        throw new SegvolError('ERR_ARGUMENT', `model: expected inputs ${names.join(', ')} by name ({ ${names.join(', ')} }), received one tensor`);
      }
      return new Map([[names[0]!, x]]);
    }
    if (x === null || typeof x !== 'object') throw new SegvolError('ERR_ARGUMENT', `model: expected a Tensor or tensors by name, received ${describe(x)}`);
    const out = new Map<string, Tensor>();
    for (const name of names) {
      if (!(x[name] instanceof Tensor)) {
        throw new SegvolError('ERR_ARGUMENT', `model: missing input '${name}'; expected { ${names.join(', ')} }, received { ${Object.keys(x).join(', ')} }`);
      }
      out.set(name, x[name]!);
    }
    for (const name of Object.keys(x)) {
      if (!(name in this.inputs)) throw new SegvolError('ERR_ARGUMENT', `model: unknown input '${name}'; the model's inputs: ${names.join(', ')}`);
    }
    return out;
  }

  /** Input shapes by name, with a clear error for a missing batch axis or a wrong channel count. */
  protected inputShapes(shapes: ModelInputShape): Map<string, number[]> {
    const names = Object.keys(this.inputs);
    const out = new Map<string, number[]>();
    for (const name of names) {
      const shape = Array.isArray(shapes) ? [...(shapes as readonly number[])] : [...((shapes as Record<string, readonly number[]>)[name] ?? [])];
      const channels = this.inputs[name]!;
      const label = names.length === 1 ? 'model input' : `model input '${name}'`;
      if (shape.length === 0) throw new SegvolError('ERR_SHAPE', `${label}: no shape given`);
      if (shape[1] !== channels) {
        const missingBatch = shape[0] === channels && (shape.length === 3 || shape.length === 4);
        throw new SegvolError('ERR_SHAPE', `${label}: expected (N, ${channels}, ${'[D,] H, W'}) with ${channels} channel${channels === 1 ? '' : 's'}, ` +
          `received (${shape.join(', ')})${missingBatch ? '; the batch axis is missing: reshape to (1, ...)' : ''}`);
      }
      out.set(name, shape);
    }
    return out;
  }

  /** Every trainable parameter by its stable name, in layer order (PyTorch's named_parameters). */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, layer] of this.namedLayers()) {
      for (const [name, t] of layer.parameters) out.set(`${path}.${name}`, t);
    }
    return out;
  }

  /** @deprecated since 0.2: namedParameters(), PyTorch's name. */
  parameters(): Map<string, Tensor> {
    return this.namedParameters();
  }

  /** Parameters and buffers (running statistics) by name: everything saveWeights writes (PyTorch's state_dict). */
  stateDict(): Map<string, Tensor> {
    const out = this.namedParameters();
    for (const [path, layer] of this.namedLayers()) {
      for (const [name, t] of layer.buffers ?? []) out.set(`${path}.${name}`, t);
    }
    return out;
  }

  /** @deprecated since 0.2: stateDict(), PyTorch's name. */
  state(): Map<string, Tensor> {
    return this.stateDict();
  }

  /** A tape's gradients (by tensor) as gradients by parameter name. */
  gradientsByName(grads: ReadonlyMap<Tensor, Tensor>): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.namedParameters()) {
      const g = grads.get(t);
      if (g) out.set(name, g);
    }
    return out;
  }

  /** Where the parameters live ('cpu' for a model without any). */
  get device(): Device {
    for (const t of this.stateDict().values()) return t.device;
    return 'cpu';
  }

  /**
   * Moves every parameter and buffer to a device (in place) and returns the model. Inputs
   * given to forward must then be on that device; the trainer and predictVolume move theirs.
   */
  to(device: Device): this {
    replaceLayerTensors(this.namedLayers(), (_name, old) => (old.device === device ? undefined : old.to(device)));
    return this;
  }

  paramCount(): number {
    let total = 0;
    for (const t of this.namedParameters().values()) total += t.size;
    return total;
  }

  /**
   * Forward in inference mode, never taped: class probabilities for a softmax-ended model.
   * Raw inputs get the pre-processing info.normalize records, unless options.preprocess is false.
   */
  async predict(x: ModelInput, options: PredictOptions = {}): Promise<Tensor> {
    const image = this.asOneSliceVolume(x);
    if (image) {
      try {
        const volume = await this.predict(image, options);
        const out = volume.reshape([volume.shape[0]!, volume.shape[1]!, ...volume.shape.slice(3)]);
        volume.dispose();
        return out;
      } finally {
        image.dispose();
      }
    }
    const mode = (name: string) => (options.preprocess === false ? 'none' : normalizationOf(this.info, name));
    const policy = nonFinitePolicy(options.nonFinite, 'predict');
    const inputs = this.inputMap(x);
    // One read-back per device finds a NaN or an infinity; only then are positions collected.
    const bad = ops.firstNonFinite([...inputs.values()]);
    if (bad >= 0 && policy === 'error') {
      const [name, t] = [...inputs][bad]!;
      const scan = new NonFiniteScan(t.rank === 5 ? ['n', 'c', 'z', 'y', 'x'] : t.rank === 4 ? ['n', 'c', 'y', 'x'] : t.shape.map((_, a) => `axis ${a}`));
      scan.volume(t.toArray(), t.shape, t.rank === 5 ? 2 : undefined);
      throw scan.error('predict', inputs.size > 1 ? `input '${name}'` : 'the input');
    }
    const zero = bad >= 0;
    if (!zero && [...inputs.keys()].every((name) => mode(name) === 'none')) return noGrad(() => this.forward(x, { training: false }));
    const prepared = new Map([...inputs].map(([name, t]) => [name, mode(name) === 'none' && !zero ? t : preprocessTensor(t, mode(name), zero)]));
    try {
      return await noGrad(() => this.forward(Object.fromEntries(prepared), { training: false }));
    } finally {
      for (const [name, t] of prepared) if (t !== inputs.get(name)) t.dispose();
    }
  }

  /**
   * An image (N, C, H, W) given to a network of volumes, as the one-slice volume (N, C, 1, H, W)
   * it can take; undefined when the input is not such an image or the network takes images.
   */
  private asOneSliceVolume(x: ModelInput): Tensor | undefined {
    if (!(x instanceof Tensor) || x.rank !== 4 || Object.keys(this.inputs).length !== 1) return undefined;
    const takes = (shape: number[]) => {
      try {
        this.outputShape(shape);
        return true;
      } catch (error) {
        if ((error as SegvolError).code === 'ERR_SHAPE') return false;
        throw error;
      }
    };
    const [n, c, h, w] = x.shape as [number, number, number, number];
    return !takes([n, c, h, w]) && takes([n, c, 1, h, w]) ? x.reshape([n, c, 1, h, w]) : undefined;
  }

  /** The most probable class per voxel: (N, ...spatial) class ids. */
  async segment(x: ModelInput, options: PredictOptions = {}): Promise<Tensor> {
    const probs = await this.predict(x, options);
    try {
      return ops.argmax(probs);
    } finally {
      probs.dispose();
    }
  }

  /**
   * The field of view of a dense network (stride 1 throughout, so each output
   * voxel sees a fixed input window): per spatial axis, or null for networks
   * whose output is not dense (strided pooling, resampling).
   */
  fieldOfView(): number[] | null {
    for (const rank of [3, 2]) {
      const probe = (s: number) => {
        const spatial = new Array<number>(rank).fill(s);
        const shapes = Object.fromEntries(Object.entries(this.inputs).map(([name, c]) => [name, [1, c, ...spatial]]));
        return this.outputShape(Object.keys(this.inputs).length === 1 ? Object.values(shapes)[0]! : shapes).slice(2);
      };
      let a: number[], b: number[];
      try {
        a = probe(256);
        b = probe(257);
      } catch (error) {
        if ((error as SegvolError).code === 'ERR_SHAPE') continue;
        throw error;
      }
      if (a.length !== rank || b.some((v, i) => v !== a[i]! + 1)) return null;
      return a.map((v) => 256 - v + 1);
    }
    return null;
  }

  /** Where the output of an input window of this spatial size lies in it (dense networks). */
  outputWindow(inputSize: readonly number[]): OutputWindow {
    const shapes = Object.fromEntries(Object.entries(this.inputs).map(([name, c]) => [name, [1, c, ...inputSize]]));
    const size = this.outputShape(Object.keys(this.inputs).length === 1 ? Object.values(shapes)[0]! : shapes).slice(2);
    if (size.length !== inputSize.length || size.some((s, a) => s > inputSize[a]!)) {
      throw new SegvolError('ERR_SHAPE', `model: an input window (${inputSize.join(', ')}) gives an output (${size.join(', ')}) that is not ` +
        'inside it; labels can be cut to outputs of the input size or smaller only');
    }
    return { size, offset: size.map((s, a) => Math.floor((inputSize[a]! - s) / 2)) };
  }

  /** Replaces every parameter and buffer with the one of the same name in a safetensors file (PyTorch-compatible). */
  loadWeights(file: string): void {
    this.loadStateDict(modelServices().readTensors(file), `loadWeights ${file}`);
  }

  /**
   * Replaces every parameter and buffer with the values of the same name (PyTorch's
   * load_state_dict, strict): names and shapes must match exactly, or nothing changes.
   */
  loadStateDict(loaded: ReadonlyMap<string, StateArray>, where = 'loadStateDict'): void {
    checkStateFits(this.stateDict(), loaded, where, {
      headline: 'the weights do not fit this model', own: 'model', given: 'file', missing: 'missing in the file', unexpected: 'not in the model',
      hint: 'build the model with the configuration the weights were trained with',
    });
    replaceLayerTensors(this.namedLayers(), (name, old) => tensorFromState(loaded.get(name)!, old));
  }

  /** @deprecated since 0.2: loadStateDict(), PyTorch's name. */
  loadState(loaded: ReadonlyMap<string, StateArray>, where = 'loadState'): void {
    this.loadStateDict(loaded, where);
  }

  /** Writes every parameter and buffer to a safetensors file (atomically). */
  saveWeights(file: string, metadata: Record<string, string> = {}): void {
    const out = new Map<string, StateArray>();
    for (const [name, t] of this.stateDict()) out.set(name, { shape: [...t.shape], data: t.toArray() });
    modelServices().writeTensors(file, out, metadata);
  }

  /** A table of layers, output shapes and parameter counts. */
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
    for (const t of this.stateDict().values()) t.dispose();
  }

}

/** A tensor's volumes pre-processed on the host (per (N, C) slice stack), on its device; non-finite values zeroed when asked. */
function preprocessTensor(t: Tensor, mode: Normalization, zeroNonFinite: boolean): Tensor {
  return Tensor.fromArray(modelServices().preprocess(t.toArray(), t.shape, mode, zeroNonFinite ? { nonFinite: 'zero' } : {}), t.shape, { device: t.device });
}
