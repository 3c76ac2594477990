// One LSTM cell step as a single op (native/ops/lstm_cell.cpp): gate pre-activations
// (i, f, g, o along axis 1) in, h and c out, one fused kernel each way instead of
// about ten element-wise ops and their gradients. For recurrences composed from ops
// (the consistent ConvLSTM's CConvLSTM); the scans (clstmScan, rnn) fuse it already.
import { defineOp } from '../autograd/tape';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';

export interface LstmCellOptions {
  /** A second pre-activation term of the gates' shape, added to pre (the recurrent convolution's output, say). */
  recurrent?: Tensor;
  /** The previous cell (N, O, ...); without it c = g * i. */
  cPrev?: Tensor;
}

export interface LstmCellResult {
  /** (N, O, ...): o * tanh(c). */
  h: Tensor;
  /** (N, O, ...): g * i + cPrev * f. */
  c: Tensor;
}

export interface LstmCellGradients {
  /** Gradient of the pre-activations (and of recurrent, which enters the same way). */
  dgates: Tensor;
  /** Gradient of cPrev; null without cPrev. */
  dcPrev: Tensor | null;
}

export function lstmCellOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;
  const optional = (x: Tensor | undefined, op: string, name: string) => (x === undefined ? null : h(x, op, name));

  /** The cell backwards: acts and c from forward, the gradients of h and c (either may be absent). */
  function lstmCellBackward(acts: Tensor, c: Tensor, grads: { dh?: Tensor | null; dc?: Tensor | null; cPrev?: Tensor | null }): LstmCellGradients {
    const op = 'lstmCellBackward';
    const r = native.lstmCellBackward(impl, h(acts, op, 'acts'), grads.cPrev ? h(grads.cPrev, op, 'cPrev') : null, h(c, op, 'c'),
      grads.dh ? h(grads.dh, op, 'dh') : null, grads.dc ? h(grads.dc, op, 'dc') : null);
    return { dgates: t(r.dgates), dcPrev: r.dcPrev ? t(r.dcPrev) : null };
  }

  return {
    ops: {
      /**
       * One LSTM step from its gate pre-activations: pre (N, 4*O, ...) with the gates i, f, g, o
       * along axis 1 (PyTorch's order), plus options.recurrent if given; i, f, o = sigmoid, g = tanh;
       * c = g * i + cPrev * f, h = o * tanh(c). On a recording tape one node, its gradient the
       * fused backward kernel.
       */
      lstmCell: defineOp('lstmCell', (op, pre: Tensor, options: LstmCellOptions = {}): LstmCellResult => {
        const name = 'lstmCell';
        const r = native.lstmCell(impl, h(pre, name, 'pre'), optional(options.recurrent, name, 'recurrent'), optional(options.cPrev, name, 'cPrev'));
        const acts = t(r.acts), c = t(r.c), hidden = t(r.h);
        const cPrev = options.cPrev;
        op.record({
          inputs: [pre, options.recurrent, cPrev], outputs: [hidden, c], save: cPrev ? [acts, c, cPrev] : [acts, c],
          backward: ([dh, dc], saved, needs) => {
            const g = lstmCellBackward(saved[0]!, saved[1]!, { dh, dc, cPrev: saved[2] ?? null });
            const dRecurrent = needs[1] ? viewOf(g.dgates) : null;
            const dPre = needs[0] ? g.dgates : (g.dgates.dispose(), null);
            return [dPre, dRecurrent, g.dcPrev];
          },
        });
        acts.dispose();
        return { h: hidden, c };
      }),
    },
    backward: { lstmCellBackward },
  };
}
