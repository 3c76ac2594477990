// Axis permutations, flips, concatenation and narrowing, each with its gradient beside it.
import { defineOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';
import { checkAxes, inversePermutation } from './geometry';

function axisOf(axis: unknown, op: string): number {
  if (typeof axis !== 'number' || !Number.isInteger(axis)) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected an integer axis, received ${describe(axis)}`);
  }
  return axis;
}

export function layoutOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;

  function permuteBackward(dy: Tensor, perm: readonly number[]): Tensor {
    return t(native.permute(impl, h(dy, 'permuteBackward', 'output gradient'), inversePermutation(checkAxes(perm, 'permuteBackward', 'perm'))));
  }
  function flip(x: Tensor, axes: readonly number[]): Tensor {
    return t(native.flip(impl, h(x, 'flip', 'input'), checkAxes(axes, 'flip', 'axes')));
  }
  function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
    const op = 'narrow';
    for (const [name, v] of [['start', start], ['length', length]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new SegvolError('ERR_ARGUMENT', `${op}: expected an integer ${name}, received ${describe(v)}`);
    }
    return t(native.narrow(impl, h(x, op, 'input'), axisOf(axis, op), start, length));
  }
  /** The gradient of narrow: dy placed at start along axis in zeros of inputShape. */
  function narrowBackward(dy: Tensor, inputShape: readonly number[], axis: number, start: number): Tensor {
    return t(native.narrowBackward(impl, h(dy, 'narrowBackward', 'output gradient'), [...inputShape], axisOf(axis, 'narrowBackward'), start));
  }

  return {
    ops: {
      /** Output axis i is input axis perm[i]. */
      permute: defineOp('permute', (op, x: Tensor, perm: readonly number[]): Tensor => {
        const y = t(native.permute(impl, h(x, 'permute', 'input'), checkAxes(perm, 'permute', 'perm')));
        const p = [...perm];
        op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [permuteBackward(dy!, p)] });
        return y;
      }),
      /** Reverses the listed axes; its own gradient. */
      flip: defineOp('flip', (op, x: Tensor, axes: readonly number[]): Tensor => {
        const y = flip(x, axes);
        const a = [...axes];
        op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [flip(dy!, a)] });
        return y;
      }),
      /** Joins tensors along an axis (1: channels); every other axis must agree. */
      concat: defineOp('concat', (op, xs: readonly Tensor[], axis: number): Tensor => {
        if (!Array.isArray(xs) || xs.length === 0) {
          throw new SegvolError('ERR_ARGUMENT', `concat: expected a non-empty array of tensors, received ${describe(xs)}`);
        }
        const a = axisOf(axis, 'concat');
        const y = t(native.concat(impl, xs.map((x, i) => h(x, 'concat', `tensor ${i}`)), a));
        const lengths = xs.map((x) => x.shape[a]!);
        op.record({
          inputs: xs, outputs: [y],
          backward: ([dy], _s, n) => {
            let start = 0;
            return lengths.map((length, i) => {
              const g = n[i] ? narrow(dy!, a, start, length) : null;
              start += length;
              return g;
            });
          },
        });
        return y;
      }),
      /** Entries [start, start + length) of an axis (a crop, or one slice of a sequence). */
      narrow: defineOp('narrow', (op, x: Tensor, axis: number, start: number, length: number): Tensor => {
        const y = narrow(x, axis, start, length);
        const shape = x.shape;
        op.record({ inputs: [x], outputs: [y], backward: ([dy]) => [narrowBackward(dy!, shape, axis, start)] });
        return y;
      }),
    },
    backward: {
      /** Gradient of permute(x, perm): dy permuted back. */
      permuteBackward,
      narrowBackward,
    },
  };
}
