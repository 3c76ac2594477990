// Losses on class probabilities as a differentiable op: one value (a (1) tensor)
// whose gradient the native loss computes in the same pass.
import { defineOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';

/**
 * squaredError: the PyraMiD-LSTM paper's E = (y* - y)^2 on the softmax output;
 * crossEntropy: -log p of the true class; softDice, softIoU: 1 - soft overlap, averaged over classes.
 */
export type LossKind = 'squaredError' | 'crossEntropy' | 'softDice' | 'softIoU';
export const lossKinds: readonly LossKind[] = ['squaredError', 'crossEntropy', 'softDice', 'softIoU'];

/**
 * How per-voxel losses are averaged (squaredError and crossEntropy):
 * 'weights': sum_i w_i l_i / sum_i w_i, the weighted mean (PyTorch's convention);
 * 'voxels': sum_i w_i l_i / (voxels used), ZNN's division of the gradient by the output patch's size.
 */
export type LossNormalization = 'weights' | 'voxels';

export interface LossOptions {
  kind: LossKind;
  /** Voxels where the mask is 0 are ignored. Shape (N, ...) like the labels. */
  mask?: Tensor;
  /** (C), one weight per class. */
  classWeights?: Tensor;
  /** Default 'weights'. */
  normalize?: LossNormalization;
}

/** The value and d loss / d probabilities of a loss, computed natively, not taped (ops.loss is the taped form). */
export function computeLoss(impl: ImplementationName, probs: Tensor, labels: Tensor, options: LossOptions): { loss: number; grad: Tensor } {
  if (!lossKinds.includes(options.kind)) {
    throw new SegvolError('ERR_ARGUMENT', `loss: expected kind ${lossKinds.join(', ')}, received ${describe(options.kind)}`);
  }
  const normalize = options.normalize ?? 'weights';
  if (normalize !== 'weights' && normalize !== 'voxels') {
    throw new SegvolError('ERR_ARGUMENT', `loss: expected normalize 'weights' or 'voxels', received ${describe(normalize)}`);
  }
  if (normalize === 'voxels' && (options.kind === 'softDice' || options.kind === 'softIoU')) {
    throw new SegvolError('ERR_ARGUMENT', `loss: normalize 'voxels' applies to per-voxel losses (squaredError, crossEntropy), not ${options.kind}`);
  }
  const r = native.loss(impl, options.kind, handleOf(probs, 'loss', 'probabilities'), handleOf(labels, 'loss', 'labels'),
    options.mask ? handleOf(options.mask, 'loss', 'mask') : null,
    options.classWeights ? handleOf(options.classWeights, 'loss', 'classWeights') : null);
  const grad = Tensor.fromHandle(r.grad);
  // Without class weights the two normalizations agree.
  if (normalize === 'weights' || !options.classWeights) return { loss: r.loss, grad };
  // The native loss divides by sum_i w_i; rescale to a division by the voxel count.
  const ids = labels.toArray();
  const keep = options.mask?.toArray();
  const weights = options.classWeights.toArray();
  let weightSum = 0, used = 0;
  for (let i = 0; i < ids.length; ++i) {
    if (keep && keep[i] === 0) continue;
    weightSum += weights[ids[i]!]!;
    used += 1;
  }
  const factor = used > 0 ? weightSum / used : 0;
  const scaled = Tensor.fromHandle(native.scale(impl, handleOf(grad, 'loss', 'gradient'), factor));
  grad.dispose();
  return { loss: r.loss * factor, grad: scaled };
}

export function lossOps(impl: ImplementationName) {
  return {
    ops: {
      /**
       * The loss of probabilities (N, C, ...) against labels (N, ...) holding class ids,
       * as a (1) tensor; differentiable in the probabilities.
       */
      loss: defineOp('loss', (op, probs: Tensor, labels: Tensor, options: LossOptions): Tensor => {
        const { loss, grad } = computeLoss(impl, probs, labels, options);
        const value = Tensor.fromArray([loss], [1], { device: probs.device });
        op.record({
          inputs: [probs], outputs: [value], keep: [grad],
          backward: ([dy]) => {
            const seed = dy!.toArray()[0]!;
            return [seed === 1 ? viewOf(grad) : Tensor.fromHandle(native.scale(impl, handleOf(grad, 'loss', 'gradient'), seed))];
          },
        });
        return value;
      }),
    },
    backward: {},
  };
}
