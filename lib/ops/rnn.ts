// The dense recurrent op: one layer, one direction of torch.nn.RNN / LSTM / GRU
// over a batch of sequences (native/ops/rnn.cpp). On a recording tape it is one
// node whose gradient is the fused native BPTT; layers.rnn/lstm/gru stack it.
import { defineOp, type OpDefinition } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName, type NativeRnnBackward, type NativeRnnForward, type NativeRnnWeights } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import { savedHandleOf, SavedState } from './saved';

/** 'rnnTanh' and 'rnnRelu': Elman RNN; 'lstm': gates i, f, g, o; 'gru': gates r, z, n (PyTorch's). */
export type RnnCellKind = 'rnnTanh' | 'rnnRelu' | 'lstm' | 'gru';

/** One direction of one layer, PyTorch's layouts: weight_ih (gates*H, I), weight_hh (gates*H, P), biases (gates*H). */
export interface RnnWeights {
  wih: Tensor;
  whh: Tensor;
  /** Both biases or neither (PyTorch's bias=False). */
  bih?: Tensor;
  bhh?: Tensor;
  /** LSTM with projSize: weight_hr (P, H). */
  whr?: Tensor;
}

export interface RnnOptions {
  cell: RnnCellKind;
  /** Scan from the last step to the first (the reverse half of a bidirectional layer). */
  reverse?: boolean;
  /** x is (N, T, I) instead of (T, N, I), and y likewise. */
  batchFirst?: boolean;
  /**
   * Each sequence's length (1..T), like pack_padded_sequence: outputs past a length are 0,
   * hN is the state at the sequence's last step, and the reverse direction starts there.
   */
  lengths?: readonly number[];
  /** Initial state (N, P); an LSTM also takes c0 (N, H): both or neither. */
  h0?: Tensor;
  c0?: Tensor;
}

export interface RnnResult {
  /** (T, N, P), or (N, T, P) with batchFirst. */
  y: Tensor;
  /** (N, P): each sequence's final state. */
  hN: Tensor;
  /** (N, H): an LSTM's final cell. */
  cN?: Tensor;
  saved: SavedState;
}

export interface RnnGradients {
  dx: Tensor;
  dwih: Tensor;
  dwhh: Tensor;
  dbih?: Tensor;
  dbhh?: Tensor;
  dwhr?: Tensor;
  /** When the forward pass had an initial state. */
  dh0?: Tensor;
  dc0?: Tensor;
}

const cells: readonly RnnCellKind[] = ['rnnTanh', 'rnnRelu', 'lstm', 'gru'];

function weightHandles(w: RnnWeights, op: string): NativeRnnWeights {
  if (w === null || typeof w !== 'object') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected weights { wih, whh, bih?, bhh?, whr? }, received ${describe(w)}`);
  }
  return {
    wih: handleOf(w.wih, op, 'weights.wih'),
    whh: handleOf(w.whh, op, 'weights.whh'),
    ...(w.bih !== undefined ? { bih: handleOf(w.bih, op, 'weights.bih') } : {}),
    ...(w.bhh !== undefined ? { bhh: handleOf(w.bhh, op, 'weights.bhh') } : {}),
    ...(w.whr !== undefined ? { whr: handleOf(w.whr, op, 'weights.whr') } : {}),
  };
}

function lengthList(lengths: readonly number[] | undefined, op: string): number[] | null {
  if (lengths === undefined) return null;
  if (!Array.isArray(lengths) || !lengths.every((l) => Number.isInteger(l))) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected lengths as an array of integers (one per sequence), received ${describe(lengths)}`);
  }
  return [...lengths];
}

function wrapForward(r: NativeRnnForward): RnnResult {
  return { y: Tensor.fromHandle(r.y), hN: Tensor.fromHandle(r.hN), ...(r.cN ? { cN: Tensor.fromHandle(r.cN) } : {}), saved: SavedState.fromHandle(r.saved) };
}

function wrapBackward(r: NativeRnnBackward): RnnGradients {
  const out: RnnGradients = { dx: Tensor.fromHandle(r.dx), dwih: Tensor.fromHandle(r.dwih), dwhh: Tensor.fromHandle(r.dwhh) };
  if (r.dbih) out.dbih = Tensor.fromHandle(r.dbih);
  if (r.dbhh) out.dbhh = Tensor.fromHandle(r.dbhh);
  if (r.dwhr) out.dwhr = Tensor.fromHandle(r.dwhr);
  if (r.dh0) out.dh0 = Tensor.fromHandle(r.dh0);
  if (r.dc0) out.dc0 = Tensor.fromHandle(r.dc0);
  return out;
}

export function rnnOps(impl: ImplementationName) {
  const optional = (t: Tensor | undefined, op: string, name: string) => (t === undefined ? null : handleOf(t, op, name));
  const forwardArgs = (x: Tensor, weights: RnnWeights, options: RnnOptions, op: string) => {
    if (!options || !cells.includes(options.cell)) {
      throw new SegvolError('ERR_ARGUMENT', `${op}: expected options.cell ${cells.map((c) => `'${c}'`).join(', ')}, received ${describe(options?.cell)}`);
    }
    return [impl, options.cell, handleOf(x, op, 'input'), weightHandles(weights, op), options.reverse ?? false, options.batchFirst ?? false,
      lengthList(options.lengths, op), optional(options.h0, op, 'h0'), optional(options.c0, op, 'c0')] as const;
  };
  type Grads = { dy?: Tensor; dhN?: Tensor; dcN?: Tensor };
  const backwardArgs = (saved: SavedState, g: Grads, op: string) =>
    [impl, savedHandleOf(saved, op), optional(g.dy, op, 'dy'), optional(g.dhN, op, 'dhN'), optional(g.dcN, op, 'dcN')] as const;
  function backward(saved: SavedState, grads: Grads): RnnGradients {
    return wrapBackward(native.rnnBackward(...backwardArgs(saved, grads, 'rnnBackward'), false));
  }
  async function backwardAsync(saved: SavedState, grads: Grads): Promise<RnnGradients> {
    return wrapBackward(await native.rnnBackward(...backwardArgs(saved, grads, 'rnnBackwardAsync'), true));
  }
  function record(op: OpDefinition, x: Tensor, w: RnnWeights, options: RnnOptions, r: RnnResult, async: boolean): void {
    const inputs = [x, w.wih, w.whh, w.bih, w.bhh, w.whr, options.h0, options.c0];
    if (!op.willRecord(inputs)) return;
    const saved = r.saved.share();
    op.record({
      inputs, outputs: r.cN ? [r.y, r.hN, r.cN] : [r.y, r.hN], keep: [saved],
      backward: async ([dy, dhN, dcN]) => {
        const grads = { ...(dy ? { dy } : {}), ...(dhN ? { dhN } : {}), ...(dcN ? { dcN } : {}) };
        const g = async ? await backwardAsync(saved, grads) : backward(saved, grads);
        return [g.dx, g.dwih, g.dwhh, g.dbih, g.dbhh, g.dwhr, g.dh0, g.dc0];
      },
    });
  }
  return {
    ops: {
      /**
       * One layer, one direction of an RNN, LSTM or GRU over x: (T, N, I) (or (N, T, I) with
       * batchFirst), computed as torch.nn.RNN / LSTM / GRU compute it.
       */
      rnn: defineOp('rnn', (op, x: Tensor, weights: RnnWeights, options: RnnOptions): RnnResult => {
        const r = wrapForward(native.rnn(...forwardArgs(x, weights, options, 'rnn'), false));
        record(op, x, weights, options, r, false);
        return r;
      }),
      /** rnn on the compute thread (the event loop stays free), and its gradient too. */
      rnnAsync: defineOp('rnn', async (op, x: Tensor, weights: RnnWeights, options: RnnOptions): Promise<RnnResult> => {
        const r = wrapForward(await native.rnn(...forwardArgs(x, weights, options, 'rnnAsync'), true));
        record(op, x, weights, options, r, true);
        return r;
      }),
    },
    backward: {
      /** BPTT through rnn: dy the gradient of y, dhN and dcN of the final state (each optional). */
      rnnBackward: backward,
      rnnBackwardAsync: backwardAsync,
    },
  };
}
