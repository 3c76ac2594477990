// Reductions to host values: a gradient's squared norm, the first non-finite tensor
// (the trainer's and the tape's numerical checks), and the most probable class per voxel.
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor } from '../core/tensor';

/**
 * The index of the largest of `classes` values per voxel: scores (N, K, S) as a flat
 * host array (S voxels per window, class-major like NCDHW), out (N, S). Ties go to the
 * lower class.
 */
export function argmaxClasses<T extends Float32Array | Int32Array = Float32Array>(scores: ArrayLike<number>, n: number, classes: number,
  out: T = new Float32Array(scores.length / classes) as T): T {
  const s = scores.length / (n * classes);
  if (!Number.isInteger(s) || out.length !== n * s) {
    throw new SegvolError('ERR_SHAPE', `argmax: ${scores.length} scores are not ${n} window(s) of ${classes} classes, or the output holds ${out.length} voxels`);
  }
  for (let b = 0; b < n; ++b) {
    const base = b * classes * s;
    for (let v = 0; v < s; ++v) {
      let best = 0;
      for (let k = 1; k < classes; ++k) if (scores[base + k * s + v]! > scores[base + best * s + v]!) best = k;
      out[b * s + v] = best;
    }
  }
  return out;
}

export function reduceOps(impl: ImplementationName) {
  return {
    ops: {
      /** The sum of the squares of every element of the tensors, as a number (not taped): a gradient's norm squared. */
      sumOfSquares(xs: readonly Tensor[]): number {
        if (!Array.isArray(xs)) throw new SegvolError('ERR_ARGUMENT', `sumOfSquares: expected an array of tensors, received ${describe(xs)}`);
        return native.sumOfSquares(impl, xs.map((x, i) => handleOf(x, 'sumOfSquares', `tensor ${i}`)));
      },
      /** The index of the first tensor holding a NaN or an infinity, or -1; one read-back per device. */
      firstNonFinite(xs: readonly Tensor[]): number {
        if (!Array.isArray(xs)) throw new SegvolError('ERR_ARGUMENT', `firstNonFinite: expected an array of tensors, received ${describe(xs)}`);
        return native.firstNonFinite(xs.map((x, i) => handleOf(x, 'firstNonFinite', `tensor ${i}`)));
      },
      /** The most probable class per voxel of (N, C, ...) scores: (N, ...) class ids on the host's cpu (not taped). */
      argmax(x: Tensor): Tensor {
        if (!(x instanceof Tensor) || x.rank < 3) {
          throw new SegvolError('ERR_SHAPE', `argmax: expected scores (N, C, [D,] H, W), received ${x instanceof Tensor ? `(${x.shape.join(', ')})` : describe(x)}`);
        }
        const [n, c] = x.shape as [number, number];
        return Tensor.fromArray(argmaxClasses(x.toArray(), n, c), [n, ...x.shape.slice(2)]);
      },
    },
    backward: {},
  };
}
