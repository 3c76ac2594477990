// Activations, sums, products, scaling and softmax, each with its gradient beside it.
import { declareDifferentiable, recordOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ActivationName, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';

declareDifferentiable('tanh', 'sigmoid', 'relu', 'add', 'mul', 'scale', 'sum', 'softmax', 'clamp');

export type Activation = ActivationName;

export function elementwiseOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;

  /** Gradient of an activation: x its input, y its output, dy the gradient of y. */
  function activationBackward(kind: Activation, x: Tensor, y: Tensor, dy: Tensor): Tensor {
    const op = 'activationBackward';
    return t(native.activationBackward(impl, kind, h(x, op, 'input'), h(y, op, 'output'), h(dy, op, 'output gradient')));
  }
  function mul(a: Tensor, b: Tensor): Tensor {
    return t(native.mul(impl, h(a, 'mul', 'a'), h(b, 'mul', 'b')));
  }
  function scaleUntaped(x: Tensor, factor: number): Tensor {
    return t(native.scale(impl, h(x, 'scale', 'input'), factor));
  }
  function clampBackward(x: Tensor, lo: number, hi: number, dy: Tensor): Tensor {
    return t(native.clampBackward(impl, h(x, 'clampBackward', 'input'), lo, hi, h(dy, 'clampBackward', 'output gradient')));
  }
  function softmaxBackward(y: Tensor, dy: Tensor): Tensor {
    return t(native.softmaxBackward(impl, h(y, 'softmaxBackward', 'output'), h(dy, 'softmaxBackward', 'output gradient')));
  }
  function activation(kind: Activation, x: Tensor): Tensor {
    const y = t(native.activation(impl, kind, h(x, kind, 'input')));
    // The optimized kernels take tanh' and sigmoid' from y, and relu' from the sign of
    // x, which y > 0 gives too: keeping y alone frees the pre-activation. The
    // reference derives every slope from x, so it keeps both.
    const save = impl === 'reference' ? [x, y] : [y];
    recordOp({
      op: kind, inputs: [x], outputs: [y], save,
      backward: ([dy], saved) => [activationBackward(kind, saved[0]!, saved[saved.length - 1]!, dy!)],
    });
    return y;
  }

  return {
    tanh: (x: Tensor): Tensor => activation('tanh', x),
    sigmoid: (x: Tensor): Tensor => activation('sigmoid', x),
    relu: (x: Tensor): Tensor => activation('relu', x),
    activationBackward,
    add(a: Tensor, b: Tensor): Tensor {
      const y = t(native.add(impl, h(a, 'add', 'a'), h(b, 'add', 'b')));
      recordOp({ op: 'add', inputs: [a, b], outputs: [y], backward: ([dy], _s, n) => [n[0] ? viewOf(dy!) : null, n[1] ? viewOf(dy!) : null] });
      return y;
    },
    mul(a: Tensor, b: Tensor): Tensor {
      const y = mul(a, b);
      recordOp({
        op: 'mul', inputs: [a, b], outputs: [y], save: [a, b],
        backward: ([dy], [as, bs], n) => [n[0] ? mul(dy!, bs!) : null, n[1] ? mul(dy!, as!) : null],
      });
      return y;
    },
    /** Gradients of mul: da = dy * b, db = dy * a. */
    mulBackward(a: Tensor, b: Tensor, dy: Tensor): { da: Tensor; db: Tensor } {
      return { da: mul(dy, b), db: mul(dy, a) };
    },
    scale(x: Tensor, factor: number): Tensor {
      if (typeof factor !== 'number') {
        throw new SegvolError('ERR_ARGUMENT', `scale: expected a number factor, received ${describe(factor)}`);
      }
      const y = scaleUntaped(x, factor);
      recordOp({ op: 'scale', inputs: [x], outputs: [y], backward: ([dy]) => [scaleUntaped(dy!, factor)] });
      return y;
    },
    /** Sum of same-shaped tensors (the six directions of a PyraMiD-LSTM layer, for example). */
    sum(xs: readonly Tensor[]): Tensor {
      if (!Array.isArray(xs) || xs.length === 0) {
        throw new SegvolError('ERR_ARGUMENT', `sum: expected a non-empty array of tensors, received ${describe(xs)}`);
      }
      const y = t(native.sum(impl, xs.map((x, i) => h(x, 'sum', `tensor ${i}`))));
      recordOp({ op: 'sum', inputs: xs, outputs: [y], backward: ([dy], _s, n) => n.map((need) => (need ? viewOf(dy!) : null)) });
      return y;
    },
    /** Softmax over the channel axis of (N, C, ...). */
    softmax(x: Tensor): Tensor {
      const y = t(native.softmax(impl, h(x, 'softmax', 'input')));
      recordOp({ op: 'softmax', inputs: [x], outputs: [y], save: [y], backward: ([dy], [ys]) => [softmaxBackward(ys!, dy!)] });
      return y;
    },
    /** y: softmax's output, dy: the gradient of y. */
    softmaxBackward,
    /** min(max(x, lo), hi); the gradient passes where lo <= x <= hi (as PyTorch's clamp). */
    clamp(x: Tensor, lo: number, hi: number): Tensor {
      const y = t(native.clamp(impl, h(x, 'clamp', 'input'), lo, hi));
      recordOp({ op: 'clamp', inputs: [x], outputs: [y], save: [x], backward: ([dy], [xs]) => [clampBackward(xs!, lo, hi, dy!)] });
      return y;
    },
    clampBackward,
    /** The sum of the squares of every element of the tensors, as a number (not taped): a gradient's norm squared. */
    sumOfSquares(xs: readonly Tensor[]): number {
      if (!Array.isArray(xs)) throw new SegvolError('ERR_ARGUMENT', `sumOfSquares: expected an array of tensors, received ${describe(xs)}`);
      return native.sumOfSquares(impl, xs.map((x, i) => h(x, 'sumOfSquares', `tensor ${i}`)));
    },
  };
}
