// The consistent ConvLSTM (CConvLSTM) of Gonda, Wei and Pfister, section 2.2, eqs 1-4:
// a forward and a backward ConvLSTM over the frames of a sub-volume for one object,
// each seeing two previous states, the previous object's in the same frame (spatial)
// and its own in the previous frame (temporal); their outputs convolved together with
// the reference frame's hidden state (the non-local skip). Written over ops: its
// gradients come from the tape.
import { describe, SegvolError } from '../../core/errors';
import { Tensor } from '../../core/tensor';
import { ops } from '../../ops';
import { initializerOption, parameter, shapeError, type ForwardMode, type Layer, type LayerBuilder } from '../../nn/layer';
import type { Initializer } from '../../nn/init';
import { positiveIntegerField } from '../../core/validate';

/** The paper's variants: ST (forward recurrence only), STL (+ the backward direction: local), STN (+ the reference skip: non-local), STC (both). */
export type ConsistencyVariant = 'ST' | 'STL' | 'STN' | 'STC';
export const consistencyVariants: readonly ConsistencyVariant[] = ['ST', 'STL', 'STN', 'STC'];

export interface ConsistentConvLstmOptions {
  /** Hidden channels H of each direction, and of the output. */
  hidden: number;
  /** Odd kernel of every convolution (default 3). */
  kernel?: number;
  /** Default 'STC'. */
  variant?: ConsistencyVariant;
  /** Weights' initialiser (default U(-1/sqrt(H k k), 1/sqrt(H k k)), biases the same). */
  init?: Initializer;
}

/** A direction's states over the frames: h and c, each (T, H, h, w). */
export interface DirectionStates {
  h: Tensor;
  c: Tensor;
}

export interface ConsistentRunOptions {
  /** The previous object's states in each frame (eq. 2-3's spatial part); zeros for the first object. */
  spatial?: { forward: DirectionStates; backward?: DirectionStates };
  /** The labelled frame whose forward hidden state is the non-local skip (default 0). */
  reference?: number;
  mode?: ForwardMode;
}

export interface ConsistentRunResult {
  /** (T, H, h, w): h_{t,o} for every frame. */
  output: Tensor;
  /** This object's states, the next object's spatial states. */
  forward: DirectionStates;
  backward?: DirectionStates;
}

/**
 * One CConvLSTM layer. Input (T, C, h, w): frame t's [B2(h^{k-1}_{t,o}) | f'_t | S_{t-1,o}]
 * (eq. 1), assembled by the caller. Each direction's gates are one convolution of
 * [x_t | h_spatial | h_temporal] (weight (4H, C + 2H, k, k), gates i, f, g, o), and its cell
 * continues both previous cells: c = f (c_spatial + c_temporal) + i tanh(g), h = o tanh(c).
 * Parameters: fwd.weight, fwd.bias, bwd.* (STL, STC), out.* (every variant but ST).
 */
export class ConsistentConvLstmLayer implements Layer {
  readonly type = 'consistentConvLstm';
  readonly parameters = new Map<string, Tensor>();
  readonly outChannels: number;
  readonly variant: ConsistencyVariant;
  private readonly hidden: number;
  private readonly kernel: number;

  constructor(readonly inChannels: number, options: ConsistentConvLstmOptions, random: () => number) {
    this.hidden = options.hidden;
    this.kernel = options.kernel ?? 3;
    this.variant = options.variant ?? 'STC';
    this.outChannels = this.hidden;
    const h = this.hidden, k = this.kernel;
    const init = initializerOption(options.init, { kind: 'uniform', scale: 1 / Math.sqrt(h * k * k) }, 'consistentConvLstm');
    const directions = this.local ? ['fwd', 'bwd'] : ['fwd'];
    for (const d of directions) {
      this.parameters.set(`${d}.weight`, parameter([4 * h, inChannels + 2 * h, k, k], init, random));
      this.parameters.set(`${d}.bias`, parameter([4 * h], init, random));
    }
    if (this.variant !== 'ST') {
      const joined = h * (1 + (this.local ? 1 : 0) + (this.nonLocal ? 1 : 0));
      this.parameters.set('out.weight', parameter([h, joined, k, k], init, random));
      this.parameters.set('out.bias', parameter([h], init, random));
    }
  }

  get local(): boolean {
    return this.variant === 'STL' || this.variant === 'STC';
  }

  get nonLocal(): boolean {
    return this.variant === 'STN' || this.variant === 'STC';
  }

  outputShape(shape: readonly number[], path: string): number[] {
    if (shape.length !== 4 || shape[1] !== this.inChannels) throw shapeError(path, 'consistentConvLstm', `frames (T, ${this.inChannels}, h, w)`, shape);
    return [shape[0]!, this.hidden, shape[2]!, shape[3]!];
  }

  async forward(x: Tensor, mode: ForwardMode): Promise<Tensor> {
    const r = await this.run(x, { mode });
    for (const s of [r.forward, r.backward]) {
      s?.h.dispose();
      s?.c.dispose();
    }
    return r.output;
  }

  async run(x: Tensor, options: ConsistentRunOptions = {}): Promise<ConsistentRunResult> {
    this.outputShape(x.shape, 'consistentConvLstm');
    const frames = x.shape[0]!;
    const reference = options.reference ?? 0;
    if (!Number.isInteger(reference) || reference < 0 || reference >= frames) {
      throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected the reference frame in 0..${frames - 1}, received ${describe(reference)}`);
    }
    const stateShape = [frames, this.hidden, x.shape[2]!, x.shape[3]!];
    for (const [name, s] of [['spatial.forward', options.spatial?.forward], ['spatial.backward', options.spatial?.backward]] as const) {
      for (const t of s ? [s.h, s.c] : []) {
        if (t.shape.join() !== stateShape.join()) throw shapeError('consistentConvLstm', name, `states (${stateShape.join(', ')})`, t.shape);
      }
    }
    if (this.local && options.spatial && !options.spatial.backward) {
      throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm (${this.variant}): the spatial state needs both directions (forward and backward)`);
    }
    const forward = await this.scan(x, 'fwd', options.spatial?.forward, false);
    const backward = this.local ? await this.scan(x, 'bwd', options.spatial?.backward, true) : undefined;
    let output: Tensor;
    if (this.variant === 'ST') {
      output = forward.h.reshape(forward.h.shape);
    } else {
      const parts = [forward.h];
      if (backward) parts.push(backward.h);
      let refRepeated: Tensor | undefined;
      if (this.nonLocal) {
        const ref = ops.narrow(forward.h, 0, reference, 1);
        refRepeated = ops.concat(new Array<Tensor>(frames).fill(ref), 0);
        ref.dispose();
        parts.push(refRepeated);
      }
      const joined = ops.concat(parts, 1);
      refRepeated?.dispose();
      output = await ops.convAsync(joined, this.parameters.get('out.weight')!, { padding: 'same', bias: this.parameters.get('out.bias')! });
      joined.dispose();
    }
    return backward ? { output, forward, backward } : { output, forward };
  }

  /** One direction over the frames: the input half of the gates for all frames at once, then per frame the state half. */
  private async scan(x: Tensor, name: 'fwd' | 'bwd', spatial: DirectionStates | undefined, reverse: boolean): Promise<DirectionStates> {
    const frames = x.shape[0]!, c = this.inChannels, h = this.hidden;
    const weight = this.parameters.get(`${name}.weight`)!;
    const wx = ops.narrow(weight, 1, 0, c), wh = ops.narrow(weight, 1, c, 2 * h);
    const gatesX = await ops.convAsync(x, wx, { padding: 'same', bias: this.parameters.get(`${name}.bias`)! });
    wx.dispose();
    const zeros = () => Tensor.zeros([1, h, x.shape[2]!, x.shape[3]!], { device: x.device });
    const hs: Tensor[] = new Array<Tensor>(frames), cs: Tensor[] = new Array<Tensor>(frames);
    let hPrev: Tensor | undefined, cPrev: Tensor | undefined;
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    try {
      for (let step = 0; step < frames; ++step) {
        const t = reverse ? frames - 1 - step : step;
        const hSpatial = spatial ? keep(ops.narrow(spatial.h, 0, t, 1)) : keep(zeros());
        const cSpatial = spatial ? keep(ops.narrow(spatial.c, 0, t, 1)) : undefined;
        const hTemporal = hPrev ?? keep(zeros());
        const states = keep(ops.concat([hSpatial, hTemporal], 1));
        // Gates i, f, g, o = the state half (this frame's convolution) + the input half; one fused
        // cell op: c = f (c_spatial + c_temporal) + i g, h = o tanh(c) (c = i g with no previous cell).
        const recurrent = keep(await ops.convAsync(states, wh, { padding: 'same' }));
        const previousCell = cSpatial && cPrev ? keep(ops.add(cSpatial, cPrev)) : cSpatial ?? cPrev;
        const { h: hidden, c: cell } = ops.lstmCell(recurrent, { recurrent: keep(ops.narrow(gatesX, 0, t, 1)), ...(previousCell ? { cPrev: previousCell } : {}) });
        hs[t] = hidden;
        cs[t] = cell;
        hPrev = hidden;
        cPrev = cell;
      }
      return { h: ops.concat(hs, 0), c: ops.concat(cs, 0) };
    } finally {
      for (const t of [...owned, ...hs, ...cs, gatesX, wh]) t?.dispose();
    }
  }

  describe(): string {
    return `${this.variant}, hidden ${this.hidden}, kernel ${this.kernel}x${this.kernel}`;
  }
}

export const consistentLayers = {
  /** Gonda et al.'s CConvLSTM over the frames of one object (see ConsistentConvLstmLayer). */
  consistentConvLstm(options: ConsistentConvLstmOptions): LayerBuilder<ConsistentConvLstmLayer> {
    positiveIntegerField(options.hidden, 'consistentConvLstm', 'hidden');
    const k = positiveIntegerField(options.kernel ?? 3, 'consistentConvLstm', 'kernel');
    if (k % 2 === 0) throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected an odd kernel ('same' padding), received ${k}`);
    if (options.variant !== undefined && !consistencyVariants.includes(options.variant)) {
      throw new SegvolError('ERR_ARGUMENT', `consistentConvLstm: expected variant ${consistencyVariants.join(', ')}, received ${describe(options.variant)}`);
    }
    initializerOption(options.init, 'uniform', 'consistentConvLstm');
    return { type: 'consistentConvLstm', options: { ...options }, build: (ctx) => new ConsistentConvLstmLayer(ctx.inChannels, options, ctx.random) };
  },
};
