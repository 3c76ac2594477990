// Recurrent layers identical to torch.nn.RNN, LSTM and GRU (same options, same
// state_dict names and layouts, same numbers). Each layer and direction is one
// fused op on the tape (ops.rnn); the stacking, the directions, dropout and the
// states are composed here from ops.
import { describe, SegvolError } from '../core/errors';
import { positiveIntegerField } from '../core/validate';
import { Tensor } from '../core/tensor';
import { ops } from '../ops';
import type { RnnCellKind, RnnWeights } from '../ops/rnn';
import type { Initializer } from './init';
import {
  initializerOption, parameter, shapeError, type BuildContext, type ForwardMode, type Layer, type LayerBuilder, type LayerMemory,
} from './layer';
import { checkNonNegativeInteger, checkState, dropoutOption, recurrentKeys, rejectUnknownOptions, stack, stateOf } from './recurrent_state';

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
};
