// Recurrent layers: torch.nn.RNN, LSTM and GRU (same options, same state_dict
// names and layouts, same numbers), and a ConvLSTM over the slices of a volume
// (Shi et al. 2015) that runs on the C-LSTM scan of PyraMiD-LSTM. Each layer and
// direction is one fused op on the tape (ops.rnn, ops.clstmScan); the stacking,
// the directions, dropout and the states are composed here from ops.
import { describe, SegvolError } from '../core/errors';
import { checkObject, positiveIntegerField, rejectUnknown } from '../core/validate';
import { Tensor, viewOf } from '../core/tensor';
import { ops } from '../ops';
import type { RnnCellKind, RnnWeights } from '../ops/rnn';
import type { ClstmWeights } from '../ops/clstm';
import type { Initializer } from './init';
import {
  initializerOption, parameter, shapeError, type BuildContext, type ForwardMode, type Layer, type LayerBuilder, type LayerMemory,
  type MemorySchedule,
} from './layer';

/** torch.nn.RNN / LSTM / GRU's options, by the same names. */
export interface RecurrentOptions {
  /** Features per step of the input. */
  inputSize: number;
  /** H, features of the state. */
  hiddenSize: number;
  /** Stacked layers (default 1); layer k > 0 takes layer k - 1's output. */
  numLayers?: number;
  /** Biases bias_ih and bias_hh (default true). */
  bias?: boolean;
  /** Inputs and outputs are (N, T, features) instead of (T, N, features). States stay (layers * directions, N, H). */
  batchFirst?: boolean;
  /** Dropout on each layer's output but the last, in training (default 0). */
  dropout?: number;
  /** A second scan from the last step to the first; the outputs are concatenated (forward first). */
  bidirectional?: boolean;
  /** Weights start as U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's), or any initialiser. */
  init?: Initializer;
}

export interface RnnLayerOptions extends RecurrentOptions {
  /** The Elman RNN's nonlinearity (default 'tanh'). */
  nonlinearity?: 'tanh' | 'relu';
}

export interface LstmLayerOptions extends RecurrentOptions {
  /** P > 0: h is projected to P features by weight_hr (PyTorch's proj_size); default 0, none. */
  projSize?: number;
}

export interface RecurrentRunOptions {
  /** (layers * directions, N, P): the initial h of each layer and direction; default zeros. */
  h0?: Tensor;
  /** (layers * directions, N, H): an LSTM's initial cell; with h0. */
  c0?: Tensor;
  /** Each sequence's length, like pack_padded_sequence: outputs past it are 0, hN is taken at its last step. */
  lengths?: readonly number[];
  /** Training mode (dropout between layers); default false. */
  training?: boolean;
  /** @internal The model's mode, when run inside a model. */
  mode?: ForwardMode;
}

export interface RecurrentResult {
  /** (T, N, D*P), or (N, T, D*P) with batchFirst: the last layer's h of every step. */
  output: Tensor;
  /** (layers * directions, N, P): each layer and direction's final h. */
  hN: Tensor;
  /** (layers * directions, N, H): an LSTM's final cells. */
  cN?: Tensor;
}

type DenseKind = 'rnn' | 'lstm' | 'gru';

function checkNonNegativeInteger(value: unknown, layer: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as an integer >= 0, received ${describe(value)}`);
  }
  return value;
}

function dropoutOption(p: unknown, layer: string): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new SegvolError('ERR_ARGUMENT', `${layer}: expected dropout in [0, 1), received ${describe(p)}`);
  return p;
}

const recurrentKeys = ['inputSize', 'hiddenSize', 'numLayers', 'bias', 'batchFirst', 'dropout', 'bidirectional', 'init'];

function rejectUnknownOptions(options: object, allowed: readonly string[], layer: string): void {
  checkObject(options, layer, 'an options object');
  rejectUnknown(options, allowed, layer);
}

/** Entry i of a (L, ...) stack of states as (...). */
function stateOf(stack: Tensor, i: number): Tensor {
  const one = ops.narrow(stack, 0, i, 1);
  const out = one.reshape(stack.shape.slice(1));
  one.dispose();
  return out;
}

/** States (...) stacked along a new first axis. */
function stack(states: Tensor[]): Tensor {
  const lifted = states.map((s) => s.reshape([1, ...s.shape]));
  const out = lifted.length === 1 ? lifted[0]! : ops.concat(lifted, 0);
  if (lifted.length > 1) for (const t of lifted) t.dispose();
  return out;
}

function checkState(t: Tensor | undefined, expected: number[], layer: string, name: string): void {
  if (t === undefined) return;
  if (!(t instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `${layer}: expected ${name} as a Tensor, received ${describe(t)}`);
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    throw new SegvolError('ERR_SHAPE', `${layer}: expected ${name} of shape (${expected.join(', ')}) (layers * directions, batch, features), ` +
      `received (${t.shape.join(', ')})`);
  }
}

/** torch.nn.RNN / LSTM / GRU. */
export class DenseRecurrentLayer implements Layer {
  readonly parameters = new Map<string, Tensor>();
  readonly outChannels: number;
  readonly numLayers: number;
  readonly directions: number;
  readonly hiddenSize: number;
  /** P: features of h (projSize, or hiddenSize). */
  readonly stateSize: number;
  private readonly cell: RnnCellKind;
  private readonly bias: boolean;
  private readonly batchFirst: boolean;
  private readonly dropoutP: number;

  constructor(readonly type: DenseKind, readonly inputSize: number, options: RnnLayerOptions & LstmLayerOptions, random: () => number) {
    this.hiddenSize = options.hiddenSize;
    this.numLayers = options.numLayers ?? 1;
    this.directions = options.bidirectional ? 2 : 1;
    this.bias = options.bias ?? true;
    this.batchFirst = options.batchFirst ?? false;
    this.dropoutP = options.dropout ?? 0;
    const proj = options.projSize ?? 0;
    this.stateSize = proj > 0 ? proj : this.hiddenSize;
    this.cell = type === 'rnn' ? (options.nonlinearity === 'relu' ? 'rnnRelu' : 'rnnTanh') : type;
    this.outChannels = this.directions * this.stateSize;
    const gates = type === 'lstm' ? 4 : type === 'gru' ? 3 : 1;
    const h = this.hiddenSize;
    const init = initializerOption(options.init, { kind: 'uniform', scale: 1 / Math.sqrt(h) }, type);
    // PyTorch's parameter order: per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr.
    for (let l = 0; l < this.numLayers; ++l) {
      const layerInput = l === 0 ? this.inputSize : this.outChannels;
      for (let d = 0; d < this.directions; ++d) {
        const suffix = `_l${l}${d === 1 ? '_reverse' : ''}`;
        this.parameters.set(`weight_ih${suffix}`, parameter([gates * h, layerInput], init, random));
        this.parameters.set(`weight_hh${suffix}`, parameter([gates * h, this.stateSize], init, random));
        if (this.bias) {
          this.parameters.set(`bias_ih${suffix}`, parameter([gates * h], init, random));
          this.parameters.set(`bias_hh${suffix}`, parameter([gates * h], init, random));
        }
        if (proj > 0) this.parameters.set(`weight_hr${suffix}`, parameter([proj, h], init, random));
      }
    }
  }

  private weights(l: number, d: number): RnnWeights {
    const suffix = `_l${l}${d === 1 ? '_reverse' : ''}`;
    const p = (name: string) => this.parameters.get(`${name}${suffix}`);
    return {
      wih: p('weight_ih')!, whh: p('weight_hh')!,
      ...(this.bias ? { bih: p('bias_ih')!, bhh: p('bias_hh')! } : {}),
      ...(p('weight_hr') ? { whr: p('weight_hr')! } : {}),
    };
  }

  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== 3 || shape[2] !== this.inputSize || shape.some((d) => !(d >= 1))) {
      throw shapeError(path, this.type, `a batch of sequences ${this.batchFirst ? '(N, T, ' : '(T, N, '}${this.inputSize})`, shape);
    }
    return [shape[0]!, shape[1]!, this.outChannels];
  }

  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    const r = await this.run(x, { mode });
    r.hN.dispose();
    r.cN?.dispose();
    return r.output;
  }

  /** The layer on a batch of sequences, with initial states and lengths; output, hN and cN as PyTorch returns them. */
  async run(x: Tensor, options: RecurrentRunOptions = {}): Promise<RecurrentResult> {
    const name = this.type;
    if (!(x instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `${name}: expected the input as a Tensor, received ${describe(x)}`);
    this.outputShape(x.shape, name);
    const n = x.shape[this.batchFirst ? 0 : 1]!;
    const states = this.numLayers * this.directions;
    checkState(options.h0, [states, n, this.stateSize], name, 'h0');
    checkState(options.c0, [states, n, this.hiddenSize], name, 'c0');
    if (options.c0 && this.type !== 'lstm') throw new SegvolError('ERR_ARGUMENT', `${name}: only an LSTM has a cell state c0`);
    if (this.type === 'lstm' && (options.h0 === undefined) !== (options.c0 === undefined)) {
      throw new SegvolError('ERR_ARGUMENT', `${name}: an LSTM takes both h0 and c0 or neither`);
    }
    const mode = options.mode ?? { training: options.training ?? false, random: Math.random };
    const hs: Tensor[] = [], cs: Tensor[] = [];
    let input = x;
    for (let l = 0; l < this.numLayers; ++l) {
      const outs: Tensor[] = [];
      for (let d = 0; d < this.directions; ++d) {
        const i = l * this.directions + d;
        const h0 = options.h0 ? stateOf(options.h0, i) : undefined;
        const c0 = options.c0 ? stateOf(options.c0, i) : undefined;
        const r = await ops.rnnAsync(input, this.weights(l, d), {
          cell: this.cell, reverse: d === 1, batchFirst: this.batchFirst,
          ...(options.lengths ? { lengths: options.lengths } : {}), ...(h0 ? { h0 } : {}), ...(c0 ? { c0 } : {}),
        });
        r.saved.dispose();
        h0?.dispose();
        c0?.dispose();
        outs.push(r.y);
        hs.push(r.hN);
        if (r.cN) cs.push(r.cN);
      }
      const joined = outs.length === 1 ? outs[0]! : ops.concat(outs, 2);
      if (outs.length > 1) for (const t of outs) t.dispose();
      if (input !== x) input.dispose();
      input = joined;
      if (l + 1 < this.numLayers && mode.training && this.dropoutP > 0) {
        const dropped = ops.dropout(input, this.dropoutP, mode.random);
        input.dispose();
        input = dropped;
      }
    }
    const hN = stack(hs);
    for (const t of hs) if (t !== hN) t.dispose();
    const result: RecurrentResult = { output: input, hN };
    if (cs.length) {
      result.cN = stack(cs);
      for (const t of cs) if (t !== result.cN) t.dispose();
    }
    return result;
  }

  describe(): string {
    const extras = [
      this.numLayers > 1 ? `${this.numLayers} layers` : '', this.directions === 2 ? 'bidirectional' : '',
      this.stateSize !== this.hiddenSize ? `projected to ${this.stateSize}` : '', this.cell === 'rnnRelu' ? 'relu' : '',
      this.batchFirst ? 'batch first' : '',
    ].filter(Boolean);
    return `input ${this.inputSize}, hidden ${this.hiddenSize}${extras.length ? `, ${extras.join(', ')}` : ''}`;
  }

  /** Kept per layer and direction: the input's scan-layout copy (when batch first), gates, c, h (see ops/rnn). */
  memory(input: readonly number[]): LayerMemory {
    const steps = input[0]! * input[1]!;
    const h = this.hiddenSize, p = this.stateSize;
    const perStep = this.type === 'lstm' ? 4 * h + h + p + (p !== h ? h : 0) : this.type === 'gru' ? 4 * h + p : p;
    const layerInputs = (l: number) => (l === 0 ? this.inputSize : this.outChannels);
    let saved = 0;
    for (let l = 0; l < this.numLayers; ++l) saved += this.directions * steps * (perStep + (this.batchFirst ? layerInputs(l) : 0));
    const gates = (this.type === 'lstm' ? 4 : this.type === 'gru' ? 3 : 1) * h;
    return { keepsInput: true, keepsOutput: false, saved, forward: steps * gates, backward: steps * (2 * gates + Math.max(this.inputSize, this.outChannels)) };
  }
}

/** How a bidirectional ConvLSTM joins its two directions. */
export type DirectionMerge = 'concat' | 'sum';

export interface ConvLstmOptions {
  /** O, hidden channels per direction. */
  hidden: number;
  /** Odd size of the 2D kernels (default 3). */
  kernel?: number;
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** A second scan from the last slice to the first (default false). */
  bidirectional?: boolean;
  /** How the two directions join: concatenated channels (default) or summed. */
  merge?: DirectionMerge;
  /**
   * Shi et al.'s peepholes: Hadamard weights on the cell per voxel of the plane
   * (w_ci, w_cf on the previous cell, w_co on the new one). They are tied to the
   * plane size, so give it: planeSize [H, W]. Default false (the ConvLSTM of
   * the MR encoder-decoder omits them).
   */
  peepholes?: boolean;
  planeSize?: readonly [number, number];
  /** Carry the final state into the next call (until resetState(); detached from the tape). */
  stateful?: boolean;
  /** Every slice's h (N, O', D, H, W) (default), or the final state only (N, O', H, W). */
  returnSequences?: boolean;
  /** Weights and biases start as U(-1/sqrt(O k k), 1/sqrt(O k k)) (peepholes at 0), or any initialiser. */
  init?: Initializer;
  /** The biases' initialiser, when it differs from init (an orthogonal init wants zero biases). */
  biasInit?: Initializer;
}

export interface ConvLstmRunOptions {
  /** (layers * directions, N, O, H, W): initial h; default zeros (or the carried state when stateful). */
  h0?: Tensor;
  c0?: Tensor;
  /** @internal The model's mode, when run inside a model. */
  mode?: ForwardMode;
}

export interface ConvLstmResult {
  /** (N, O', D, H, W) with returnSequences, else (N, O', H, W): O' = 2O for concatenated directions. */
  output: Tensor;
  /** (layers * directions, N, O, H, W): final states (the reverse direction's at slice 0). */
  hN: Tensor;
  cN: Tensor;
}

const convLstmKeys = ['hidden', 'kernel', 'numLayers', 'bidirectional', 'merge', 'peepholes', 'planeSize', 'stateful', 'returnSequences', 'init', 'biasInit'];

/**
 * A ConvLSTM over the slices of a volume (the D axis of (N, C, D, H, W)): per
 * slice, i, f, g, o from 2D convolutions of the slice and of the previous h
 * ('same' padding), c and h as in an LSTM. The +D direction of PyraMiD-LSTM's
 * C-LSTM scan, run by the same kernels.
 */
export class ConvLstmLayer implements Layer {
  readonly type = 'convLstm';
  readonly parameters = new Map<string, Tensor>();
  readonly outChannels: number;
  private readonly directions: number;
  private readonly layerCount: number;
  private carried: { h: Tensor; c: Tensor } | undefined;

  constructor(readonly inChannels: number, private readonly options: Required<Pick<ConvLstmOptions, 'hidden' | 'kernel'>> & ConvLstmOptions,
    random: () => number) {
    const o = options.hidden, k = options.kernel;
    this.directions = options.bidirectional ? 2 : 1;
    this.layerCount = options.numLayers ?? 1;
    const merged = this.directions === 2 && (options.merge ?? 'concat') === 'concat' ? 2 * o : o;
    this.outChannels = merged;
    const init = initializerOption(options.init, { kind: 'uniform', scale: 1 / Math.sqrt(o * k * k) }, 'convLstm');
    const biasInit = options.biasInit === undefined ? init : initializerOption(options.biasInit, init, 'convLstm');
    for (let l = 0; l < this.layerCount; ++l) {
      const c = l === 0 ? inChannels : merged;
      for (let d = 0; d < this.directions; ++d) {
        const suffix = `_l${l}${d === 1 ? '_reverse' : ''}`;
        this.parameters.set(`weight_ih${suffix}`, parameter([4 * o, c, k, k], init, random));
        this.parameters.set(`weight_hh${suffix}`, parameter([4 * o, o, k, k], init, random));
        this.parameters.set(`bias_ih${suffix}`, parameter([4 * o], biasInit, random));
        this.parameters.set(`bias_hh${suffix}`, parameter([4 * o], biasInit, random));
        if (options.peepholes) {
          this.parameters.set(`weight_peep${suffix}`, parameter([3, o, ...options.planeSize!], { kind: 'constant', value: 0 }, random));
        }
      }
    }
  }

  private weights(l: number, d: number): ClstmWeights {
    const suffix = `_l${l}${d === 1 ? '_reverse' : ''}`;
    const p = (name: string) => this.parameters.get(`${name}${suffix}`)!;
    return {
      wx: p('weight_ih'), bx: p('bias_ih'), wh: p('weight_hh'), bh: p('bias_hh'),
      ...(this.options.peepholes ? { peep: p('weight_peep') } : {}),
    };
  }

  outputShape(shape: readonly number[], path: string): number[] {
    const k = this.options.kernel;
    const plane = this.options.planeSize;
    if (shape.length !== 5 || shape[1] !== this.inChannels || shape[3]! < 1 || shape[4]! < 1 || shape[2]! < 1 ||
      (plane && (shape[3] !== plane[0] || shape[4] !== plane[1]))) {
      throw shapeError(path, 'convLstm', `slices (N, ${this.inChannels}, D, ${plane ? `${plane[0]}, ${plane[1]}` : 'H, W'}) with H, W >= ${k}`, shape);
    }
    if (shape[3]! < k || shape[4]! < k) throw shapeError(path, 'convLstm', `planes of at least ${k}x${k} (the kernel)`, shape);
    return this.options.returnSequences === false ? [shape[0]!, this.outChannels, shape[3]!, shape[4]!] : [shape[0]!, this.outChannels, ...shape.slice(2)];
  }

  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    const r = await this.run(x, { mode });
    r.hN.dispose();
    r.cN.dispose();
    return r.output;
  }

  /** Forgets the carried state of a stateful layer. */
  resetState(): void {
    this.carried?.h.dispose();
    this.carried?.c.dispose();
    this.carried = undefined;
  }

  async run(x: Tensor, options: ConvLstmRunOptions = {}): Promise<ConvLstmResult> {
    if (!(x instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `convLstm: expected the input as a Tensor, received ${describe(x)}`);
    this.outputShape(x.shape, 'convLstm');
    const [n, , , hh, ww] = x.shape as [number, number, number, number, number];
    const o = this.options.hidden;
    const states = this.layerCount * this.directions;
    const stateShape = [states, n, o, hh, ww];
    checkState(options.h0, stateShape, 'convLstm', 'h0');
    checkState(options.c0, stateShape, 'convLstm', 'c0');
    if ((options.h0 === undefined) !== (options.c0 === undefined)) throw new SegvolError('ERR_ARGUMENT', 'convLstm: expected both h0 and c0 or neither');
    let h0 = options.h0, c0 = options.c0;
    if (!h0 && this.options.stateful && this.carried) {
      if (this.carried.h.shape.some((d, i) => d !== stateShape[i])) {
        throw new SegvolError('ERR_SHAPE', `convLstm (stateful): the carried state is (${this.carried.h.shape.join(', ')}) but this batch needs ` +
          `(${stateShape.join(', ')}); call resetState() when the batch or plane size changes`);
      }
      h0 = this.carried.h;
      c0 = this.carried.c;
    }
    const hs: Tensor[] = [], cs: Tensor[] = [];
    let input = x;
    let last: Tensor[] = [];
    for (let l = 0; l < this.layerCount; ++l) {
      const outs: Tensor[] = [];
      last = [];
      for (let d = 0; d < this.directions; ++d) {
        const i = l * this.directions + d;
        // Without a given state the scan starts from zeros: the recurrent bias enters the first
        // slice too (as in a convolution of [x, h]).
        const hInit = h0 ? stateOf(h0, i) : undefined;
        const cInit = c0 ? stateOf(c0, i) : undefined;
        const r = await ops.clstmScanAsync(input, this.weights(l, d), {
          direction: d === 1 ? 1 : 0, ...(hInit && cInit ? { h0: hInit, c0: cInit } : { zeroState: true }),
        });
        r.saved.dispose();
        hInit?.dispose();
        cInit?.dispose();
        outs.push(r.h);
        hs.push(r.hLast);
        cs.push(r.cLast);
        last.push(r.hLast);
      }
      const joined = this.join(outs, 1);
      if (input !== x) input.dispose();
      input = joined;
    }
    const hN = stack(hs), cN = stack(cs);
    let output = input;
    if (this.options.returnSequences === false) {
      output = this.join(last.map((t) => t.reshape(t.shape)), 1);
      input.dispose();
    }
    for (const t of [...hs, ...cs]) t.dispose();
    if (this.options.stateful) {
      this.resetState();
      // Views off the tape: the next call starts from these values without a gradient path into this call.
      this.carried = { h: viewOf(hN), c: viewOf(cN) };
    }
    return { output, hN, cN };
  }

  private join(outs: Tensor[], axis: number): Tensor {
    if (outs.length === 1) return outs[0]!;
    const y = (this.options.merge ?? 'concat') === 'concat' ? ops.concat(outs, axis) : ops.add(outs[0]!, outs[1]!);
    for (const t of outs) t.dispose();
    return y;
  }

  describe(): string {
    const o = this.options;
    const extras = [
      this.layerCount > 1 ? `${this.layerCount} layers` : '', this.directions === 2 ? `bidirectional (${o.merge ?? 'concat'})` : '',
      o.peepholes ? 'peepholes' : '', o.stateful ? 'stateful' : '', o.returnSequences === false ? 'last state' : '',
    ].filter(Boolean);
    return `hidden ${o.hidden}, kernel ${o.kernel}x${o.kernel}, over slices${extras.length ? `, ${extras.join(', ')}` : ''}`;
  }

  memory(input: readonly number[], _schedule: MemorySchedule): LayerMemory {
    const voxels = input.reduce((a, b) => a * b, 1) / input[1]!;
    const o = this.options.hidden;
    let saved = 0;
    for (let l = 0; l < this.layerCount; ++l) {
      const c = l === 0 ? this.inChannels : this.outChannels;
      saved += this.directions * voxels * (c + 6 * o);  // the input in scan layout, gates, c, h
    }
    return { keepsInput: true, keepsOutput: false, saved, forward: voxels * 2 * o, backward: voxels * (2 * this.inChannels + 6 * o) };
  }
}

function recurrentBuilder(type: DenseKind, options: RnnLayerOptions & LstmLayerOptions, allowed: readonly string[]): LayerBuilder<DenseRecurrentLayer> {
  rejectUnknownOptions(options, allowed, type);
  const inputSize = positiveIntegerField(options.inputSize, type, 'inputSize');
  positiveIntegerField(options.hiddenSize, type, 'hiddenSize');
  positiveIntegerField(options.numLayers ?? 1, type, 'numLayers');
  dropoutOption(options.dropout ?? 0, type);
  const proj = checkNonNegativeInteger(options.projSize ?? 0, type, 'projSize');
  if (proj >= options.hiddenSize) throw new SegvolError('ERR_ARGUMENT', `${type}: expected projSize < hiddenSize ${options.hiddenSize}, received ${proj}`);
  if (options.nonlinearity !== undefined && options.nonlinearity !== 'tanh' && options.nonlinearity !== 'relu') {
    throw new SegvolError('ERR_ARGUMENT', `${type}: expected nonlinearity 'tanh' or 'relu', received ${describe(options.nonlinearity)}`);
  }
  initializerOption(options.init, { kind: 'uniform', scale: 1 }, type);
  return {
    type, options: { ...options }, inChannels: inputSize,
    build: (c: BuildContext) => {
      if (c.inChannels !== inputSize) {
        throw new SegvolError('ERR_SHAPE', `${type}: inputSize is ${inputSize} but the layer before gives ${c.inChannels} features`);
      }
      return new DenseRecurrentLayer(type, inputSize, options, c.random);
    },
  };
}

export const recurrentLayers = {
  /** torch.nn.RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu). */
  rnn(options: RnnLayerOptions): LayerBuilder<DenseRecurrentLayer> {
    return recurrentBuilder('rnn', options, [...recurrentKeys, 'nonlinearity']);
  },
  /** torch.nn.LSTM: gates i, f, g, o; projSize as proj_size. */
  lstm(options: LstmLayerOptions): LayerBuilder<DenseRecurrentLayer> {
    return recurrentBuilder('lstm', options, [...recurrentKeys, 'projSize']);
  },
  /** torch.nn.GRU: gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). */
  gru(options: RecurrentOptions): LayerBuilder<DenseRecurrentLayer> {
    return recurrentBuilder('gru', options, recurrentKeys);
  },
  /** A ConvLSTM over the slices (D) of a volume (Shi et al. 2015), on PyraMiD-LSTM's C-LSTM scan. */
  convLstm(options: ConvLstmOptions): LayerBuilder<ConvLstmLayer> {
    rejectUnknownOptions(options, convLstmKeys, 'convLstm');
    const hidden = positiveIntegerField(options.hidden, 'convLstm', 'hidden');
    const kernel = positiveIntegerField(options.kernel ?? 3, 'convLstm', 'kernel');
    if (kernel % 2 === 0) throw new SegvolError('ERR_ARGUMENT', `convLstm: expected an odd kernel ('same' padding), received ${kernel}`);
    positiveIntegerField(options.numLayers ?? 1, 'convLstm', 'numLayers');
    if (options.merge !== undefined && options.merge !== 'concat' && options.merge !== 'sum') {
      throw new SegvolError('ERR_ARGUMENT', `convLstm: expected merge 'concat' or 'sum', received ${describe(options.merge)}`);
    }
    if (options.peepholes) {
      const p = options.planeSize;
      if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= kernel)) {
        throw new SegvolError('ERR_ARGUMENT', `convLstm: peepholes are weights per voxel of the plane: give planeSize [H, W] (each >= the kernel ${kernel}), ` +
          `received ${describe(p)}`);
      }
    }
    initializerOption(options.init, { kind: 'uniform', scale: 1 }, 'convLstm');
    return {
      type: 'convLstm', options: { ...options },
      build: (c: BuildContext) => new ConvLstmLayer(c.inChannels, { ...options, hidden, kernel }, c.random),
    };
  },
};
