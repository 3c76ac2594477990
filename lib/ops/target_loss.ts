// Losses of outputs against float targets of the same shape (affinities, masks):
// squared error and binary cross-entropy, as PyTorch's mse_loss and
// binary_cross_entropy compute them, with per-entry weights and a mask. One value
// (a (1) tensor) whose gradient is computed in the same host pass, in float64.
import { defineOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';
import type { LossNormalization } from './loss';

/**
 * squaredError: (x - t)^2 per entry (MALA's Euclidean loss on sigmoid outputs);
 * binaryCrossEntropy: -(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does.
 */
export type TargetLossKind = 'squaredError' | 'binaryCrossEntropy';
export const targetLossKinds: readonly TargetLossKind[] = ['squaredError', 'binaryCrossEntropy'];

export interface TargetLossOptions {
  kind: TargetLossKind;
  /** Same shape as the input; entries where it is 0 are left out. */
  mask?: Tensor;
  /** Same shape as the input: each entry's weight (class balancing). */
  weights?: Tensor;
  /**
   * 'weights' (default): sum_i w_i l_i / sum_i w_i over the entries the mask keeps (the mean
   * without weights, as PyTorch's 'mean' reduction); 'voxels': divided by the number of those
   * entries instead (TensorFlow's SUM_BY_NONZERO_WEIGHTS, as MALA's code reduces it).
   */
  normalize?: LossNormalization;
}

/** The value and d loss / d input of a loss against float targets, not taped (ops.targetLoss is the taped form). */
export function computeTargetLoss(x: Tensor, targets: Tensor, options: TargetLossOptions): { loss: number; grad: Tensor } {
  if (options === null || typeof options !== 'object' || !targetLossKinds.includes(options.kind)) {
    throw new SegvolError('ERR_ARGUMENT', `targetLoss: expected kind ${targetLossKinds.map((k) => `'${k}'`).join(' or ')}, received ${describe(options?.kind)}`);
  }
  const normalize = options.normalize ?? 'weights';
  if (normalize !== 'weights' && normalize !== 'voxels') {
    throw new SegvolError('ERR_ARGUMENT', `targetLoss: expected normalize 'weights' or 'voxels', received ${describe(normalize)}`);
  }
  const same = (t: Tensor | undefined, what: string) => {
    if (t === undefined) return;
    if (!(t instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `targetLoss: expected ${what} as a Tensor, received ${describe(t)}`);
    if (t.shape.join() !== x.shape.join()) {
      throw new SegvolError('ERR_SHAPE', `targetLoss: ${what} (${t.shape.join(', ')}) must have the input's shape (${x.shape.join(', ')}), one value per output entry`);
    }
  };
  same(targets, 'targets');
  same(options.mask, 'mask');
  same(options.weights, 'weights');
  const p = x.toArray();
  const t = targets.toArray();
  const keep = options.mask?.toArray();
  const w = options.weights?.toArray();
  const bce = options.kind === 'binaryCrossEntropy';
  if (bce) {
    // PyTorch refuses these too: a log of a negative number, or targets outside a probability's range.
    for (const [values, what, fix] of [[p, 'input', 'end the network with a sigmoid'], [t, 'targets', 'give targets between 0 and 1']] as const) {
      for (let i = 0; i < values.length; ++i) {
        const v = values[i]!;
        if (!(v >= 0 && v <= 1)) {
          throw new SegvolError('ERR_ARGUMENT', `targetLoss: binaryCrossEntropy takes ${what} in [0, 1], received ${v} at entry ${i}; ${fix}`);
        }
      }
    }
  }
  const grad = new Float32Array(p.length);
  let total = 0, weightSum = 0, used = 0;
  for (let i = 0; i < p.length; ++i) {
    if (keep && keep[i] === 0) continue;
    const wi = w ? w[i]! : 1;
    const xi = p[i]!, ti = t[i]!;
    if (bce) {
      const logX = Math.max(Math.log(xi), -100), log1mX = Math.max(Math.log(1 - xi), -100);
      total += -wi * (ti * logX + (1 - ti) * log1mX);
      grad[i] = (wi * (xi - ti)) / Math.max((1 - xi) * xi, 1e-12);
    } else {
      total += wi * (xi - ti) ** 2;
      grad[i] = 2 * wi * (xi - ti);
    }
    weightSum += wi;
    used += 1;
  }
  const divisor = normalize === 'voxels' ? used : weightSum;
  const scale = divisor > 0 ? 1 / divisor : 0;
  for (let i = 0; i < grad.length; ++i) grad[i]! *= scale;
  return { loss: total * scale, grad: Tensor.fromArray(grad, x.shape, { device: x.device }) };
}

export function targetLossOps(impl: ImplementationName) {
  return {
    ops: {
      /**
       * The loss of outputs (N, C, ...) against float targets of the same shape (affinities
       * in [0, 1]), as a (1) tensor, differentiable in its input.
       */
      targetLoss: defineOp('targetLoss', (op, x: Tensor, targets: Tensor, options: TargetLossOptions): Tensor => {
        const { loss, grad } = computeTargetLoss(x, targets, options);
        const value = Tensor.fromArray([loss], [1], { device: x.device });
        op.record({
          inputs: [x], outputs: [value], keep: [grad],
          backward: ([dy]) => {
            const seed = dy!.toArray()[0]!;
            return [seed === 1 ? viewOf(grad) : Tensor.fromHandle(native.scale(impl, handleOf(grad, 'targetLoss', 'gradient'), seed))];
          },
        });
        return value;
      }),
    },
    backward: {},
  };
}
