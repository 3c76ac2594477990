// Activations, sums, products, scaling, softmax, clamping and dropout, each with its gradient beside it.
import { defineOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ActivationName, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';

export type Activation = ActivationName;

export function elementwiseOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;

  /** Gradient of an activation: x its input, y its output, dy the gradient of y. */
  function activationBackward(kind: Activation, x: Tensor, y: Tensor, dy: Tensor): Tensor {
    const op = 'activationBackward';
    return t(native.activationBackward(impl, kind, h(x, op, 'input'), h(y, op, 'output'), h(dy, op, 'output gradient')));
  }
  function mulUntaped(a: Tensor, b: Tensor): Tensor {
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
  const activation = (kind: Activation) => defineOp(kind, (op, x: Tensor): Tensor => {
    const y = t(native.activation(impl, kind, h(x, kind, 'input')));
    // The optimized kernels take tanh' and sigmoid' from y, and relu' from the sign of
    // x, which y > 0 gives too: keeping y alone frees the pre-activation. The
    // reference derives every slope from x, so it keeps both.
    const save = impl === 'reference' ? [x, y] : [y];
    op.record({ inputs: [x], outputs: [y], save, backward: ([dy], saved) => [activationBackward(kind, saved[0]!, saved[saved.length - 1]!, dy!)] });
    return y;
  });
  const mul = defineOp('mul', (op, a: Tensor, b: Tensor): Tensor => {
    const y = mulUntaped(a, b);
    op.record({
      inputs: [a, b], outputs: [y], save: [a, b],
      backward: ([dy], [as, bs], n) => [n[0] ? mulUntaped(dy!, bs!) : null, n[1] ? mulUntaped(dy!, as!) : null],
    });
    return y;
  });

  return {
    ops: {
      tanh: activation('tanh'),
      sigmoid: activation('sigmoid'),
      relu: activation('relu'),
      add: defineOp('add', (op, a: Tensor, b: Tensor): Tensor => {
        const y = t(native.add(impl, h(a, 'add', 'a'), h(b, 'add', 'b')));
        op.record({ inputs: [a, b], outputs: [y], backward: ([dy], _s, n) => [n[0] ? viewOf(dy!) : null, n[1] ? viewOf(dy!) : null] });
        return y;
      }),
      mul,
      scale: defineOp('scale', (op, x: Tensor, factor: number): Tensor => {
        if (typeof factor !== 'number') {
          throw new SegvolError('ERR_ARGUMENT', `scale: expected a number factor, received ${describe(factor)}`);
        }
        const y = scaleUntaped(x, factor);
        op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [scaleUntaped(dy!, factor)] });
        return y;
      }),
      /** Sum of same-shaped tensors (the six directions of a PyraMiD-LSTM layer, for example). */
      sum: defineOp('sum', (op, xs: readonly Tensor[]): Tensor => {
        if (!Array.isArray(xs) || xs.length === 0) {
          throw new SegvolError('ERR_ARGUMENT', `sum: expected a non-empty array of tensors, received ${describe(xs)}`);
        }
        const y = t(native.sum(impl, xs.map((x, i) => h(x, 'sum', `tensor ${i}`))));
        op.record({ inputs: xs, outputs: [y], backward: ([dy], _s, n) => n.map((need) => (need ? viewOf(dy!) : null)) });
        return y;
      }),
      /** Softmax over the channel axis of (N, C, ...). */
      softmax: defineOp('softmax', (op, x: Tensor): Tensor => {
        const y = t(native.softmax(impl, h(x, 'softmax', 'input')));
        op.record({ inputs: [x], outputs: [y], save: [y], backward: ([dy], [ys]) => [softmaxBackward(ys!, dy!)] });
        return y;
      }),
      /** min(max(x, lo), hi); the gradient passes where lo <= x <= hi (as PyTorch's clamp). */
      clamp: defineOp('clamp', (op, x: Tensor, lo: number, hi: number): Tensor => {
        const y = t(native.clamp(impl, h(x, 'clamp', 'input'), lo, hi));
        op.record({ inputs: [x], outputs: [y], save: [x], backward: ([dy], [xs]) => [clampBackward(xs!, lo, hi, dy!)] });
        return y;
      }),
      /**
       * x rounded to the nearest value a 16-bit format holds (bfloat16 or IEEE half; ties to
       * even, past the largest finite value infinity), kept as float32: what storing x in that
       * format keeps of it. The gradient passes through unchanged (straight-through), as for
       * PyTorch's x.to(torch.bfloat16).float().
       */
      roundToPrecision: defineOp('roundToPrecision', (op, x: Tensor, format: 'bf16' | 'fp16'): Tensor => {
        const y = t(native.roundToPrecision(impl, h(x, 'roundToPrecision', 'input'), format));
        op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [viewOf(dy!)] });
        return y;
      }),
      /**
       * Inverted dropout: each element is zeroed with probability p (drawn from `random`, the
       * model's generator in a forward pass) and the others scaled by 1 / (1 - p), so inference
       * needs no change. Taped as a product with the mask.
       */
      dropout(x: Tensor, p: number, random: () => number): Tensor {
        if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new SegvolError('ERR_ARGUMENT', `dropout: expected p in [0, 1), received ${describe(p)}`);
        const scale = 1 / (1 - p);
        const maskData = new Float32Array(x.size);
        for (let i = 0; i < maskData.length; ++i) maskData[i] = random() < p ? 0 : scale;
        const mask = Tensor.fromArray(maskData, x.shape, { device: x.device });
        try {
          return mul(x, mask);
        } finally {
          mask.dispose();
        }
      },
    },
    backward: {
      activationBackward,
      /** Gradients of mul: da = dy * b, db = dy * a. */
      mulBackward(a: Tensor, b: Tensor, dy: Tensor): { da: Tensor; db: Tensor } {
        return { da: mulUntaped(dy, b), db: mulUntaped(dy, a) };
      },
      /** y: softmax's output, dy: the gradient of y. */
      softmaxBackward,
      clampBackward,
    },
  };
}
