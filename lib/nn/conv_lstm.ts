// A ConvLSTM over the slices of a volume (Shi et al. 2015), on PyraMiD-LSTM's C-LSTM
// scan (ops.clstmScan: one fused op per layer and direction on the tape); stacked
// layers, both directions, peepholes and states composed here from ops.
import { describe, SegvolError } from '../core/errors';
import { positiveIntegerField } from '../core/validate';
import { Tensor, viewOf } from '../core/tensor';
import { ops } from '../ops';
import type { ClstmWeights } from '../ops/clstm';
import type { Initializer } from './init';
import {
  initializerOption, parameter, shapeError, type BuildContext, type ForwardMode, type Layer, type LayerBuilder, type LayerMemory,
  type MemorySchedule,
} from './layer';
import { checkState, rejectUnknownOptions, stack, stateOf } from './recurrent_state';

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

export const convLstmLayers = {
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
