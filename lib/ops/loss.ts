// Losses as a differentiable op: one value (a (1) tensor) whose gradient is computed
// in the same pass: natively on class probabilities, or, for raw scores (logits) and
// cross-entropy, as PyTorch's cross_entropy computes it (a stable log-softmax).
// Probabilities are checked, so raw scores given as probabilities are refused
// instead of giving a meaningless loss.
import { defineOp } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native, type ImplementationName } from '../core/native';
import { handleOf, Tensor, viewOf } from '../core/tensor';
import { elementwiseOps } from './elementwise';

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

/**
 * What the loss receives: class probabilities (a softmax's output, the default; checked to lie
 * in [0, 1] and sum to 1 over the classes), or raw scores (logits), as PyTorch's
 * cross_entropy takes them (a log-softmax is applied inside).
 */
export type LossInput = 'probabilities' | 'logits';

export interface LossOptions {
  kind: LossKind;
  /** Default 'probabilities' (segvol's networks end with a softmax); 'logits' as PyTorch's cross_entropy. */
  input?: LossInput;
  /** Voxels where the mask is 0 are ignored. Shape (N, ...) like the labels. */
  mask?: Tensor;
  /** (C), one weight per class. */
  classWeights?: Tensor;
  /** Default 'weights'. */
  normalize?: LossNormalization;
}

/**
 * The value and d loss / d input of a loss, not taped (ops.loss is the taped form): natively
 * on probabilities; for cross-entropy with input 'logits', PyTorch's cross_entropy.
 */
export function computeLoss(impl: ImplementationName, probs: Tensor, labels: Tensor, options: LossOptions): { loss: number; grad: Tensor } {
  if (options.input === 'logits' && options.kind === 'crossEntropy') return crossEntropyOfLogits(probs, labels, options);
  if (options.input === 'logits') {
    throw new SegvolError('ERR_ARGUMENT', `computeLoss: input 'logits' is for crossEntropy here; apply a softmax for ${describe(options.kind)} (ops.loss does)`);
  }
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

/**
 * Refuses values that cannot be class probabilities (N, C, ...): outside [0, 1], or not summing
 * to 1 over C, checked on up to 4096 voxels spread over the tensor (cheap, and enough to catch
 * raw scores).
 */
export function checkProbabilities(probs: Tensor, where = 'loss'): void {
  const p = probs.toArray();
  const c = probs.shape[1] ?? 1;
  const n = probs.shape[0] ?? 1;
  const spatial = p.length / Math.max(1, n * c);
  const voxels = n * spatial;
  const stride = Math.max(1, Math.floor(voxels / 4096));
  let lo = Infinity, hi = -Infinity, worst = 0;
  for (let v = 0; v < voxels; v += stride) {
    const b = Math.floor(v / spatial), s = v % spatial;
    let sum = 0;
    for (let k = 0; k < c; ++k) {
      const value = p[(b * c + k) * spatial + s]!;
      lo = Math.min(lo, value);
      hi = Math.max(hi, value);
      sum += value;
    }
    worst = Math.max(worst, Math.abs(sum - 1));
  }
  if (lo < -1e-4 || hi > 1 + 1e-4 || (c > 1 && worst > 1e-3)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected class probabilities (each in [0, 1], summing to 1 over the ${c} classes), received values in ` +
      `[${lo.toPrecision(3)}, ${hi.toPrecision(3)}]${c > 1 ? ` whose sums over the classes are off by up to ${worst.toPrecision(3)}` : ''}; ` +
      "raw scores (logits) take input: 'logits' (as PyTorch's cross_entropy), or end the model with a softmax");
  }
}

/**
 * Cross-entropy of raw scores (N, C, ...) as PyTorch's cross_entropy: -log_softmax(x)[label],
 * weighted, masked and normalised like the probability form; its gradient softmax(x) - onehot,
 * scaled alike. Computed on the host in float64 (a log-softmax has no clamp to lose).
 */
function crossEntropyOfLogits(logits: Tensor, labels: Tensor, options: LossOptions): { loss: number; grad: Tensor } {
  const x = logits.toArray();
  const ids = labels.toArray();
  const keep = options.mask?.toArray();
  const weights = options.classWeights?.toArray();
  const c = logits.shape[1]!;
  const n = logits.shape[0]!;
  const spatial = x.length / (n * c);
  if (ids.length !== n * spatial) {
    throw new SegvolError('ERR_SHAPE', `loss: labels (${labels.shape.join(', ')}) do not match scores (${logits.shape.join(', ')}); expected (N, ...spatial)`);
  }
  const grad = new Float32Array(x.length);
  const perVoxel = new Float64Array(c);
  let total = 0, weightSum = 0, used = 0;
  for (let b = 0; b < n; ++b)
    for (let s = 0; s < spatial; ++s) {
      const v = b * spatial + s;
      if (keep && keep[v] === 0) continue;
      const label = ids[v]!;
      if (!Number.isInteger(label) || label < 0 || label >= c) {
        throw new SegvolError('ERR_ARGUMENT', `loss: label ${label} at voxel ${v} is not a class of 0..${c - 1}`);
      }
      const w = weights ? weights[label]! : 1;
      let max = -Infinity;
      for (let k = 0; k < c; ++k) max = Math.max(max, x[(b * c + k) * spatial + s]!);
      let sum = 0;
      for (let k = 0; k < c; ++k) sum += (perVoxel[k] = Math.exp(x[(b * c + k) * spatial + s]! - max));
      const logSum = Math.log(sum) + max;
      total += w * (logSum - x[(b * c + label) * spatial + s]!);
      weightSum += w;
      used += 1;
      for (let k = 0; k < c; ++k) grad[(b * c + k) * spatial + s] = w * (perVoxel[k]! / sum - (k === label ? 1 : 0));
    }
  const divisor = (options.normalize ?? 'weights') === 'voxels' ? used : weightSum;
  const scale = divisor > 0 ? 1 / divisor : 0;
  for (let i = 0; i < grad.length; ++i) grad[i]! *= scale;
  return { loss: total * scale, grad: Tensor.fromArray(grad, logits.shape, { device: logits.device }) };
}

export function lossOps(impl: ImplementationName) {
  const softmax = elementwiseOps(impl).ops.softmax;
  // A loss as one taped op: its value, and the gradient computed in the same pass kept for backward.
  const lossOp = (compute: (x: Tensor, labels: Tensor, options: LossOptions) => { loss: number; grad: Tensor }) =>
    defineOp('loss', (op, x: Tensor, labels: Tensor, options: LossOptions): Tensor => {
      const { loss, grad } = compute(x, labels, options);
      const value = Tensor.fromArray([loss], [1], { device: x.device });
      op.record({
        inputs: [x], outputs: [value], keep: [grad],
        backward: ([dy]) => {
          const seed = dy!.toArray()[0]!;
          if (seed === 1) return [viewOf(grad)];
          if (Number.isFinite(seed)) return [Tensor.fromHandle(native.scale(impl, handleOf(grad, 'loss', 'gradient'), seed))];
          // An overflowed seed (loss scaling past float32's range) gives the gradient IEEE arithmetic gives.
          const seeds = Tensor.full(grad.shape, seed, { device: grad.device });
          try {
            return [Tensor.fromHandle(native.mul(impl, handleOf(grad, 'loss', 'gradient'), handleOf(seeds, 'loss', 'seed')))];
          } finally {
            seeds.dispose();
          }
        },
      });
      return value;
    });
  const logitLoss = lossOp(crossEntropyOfLogits);
  const probabilityLoss = lossOp((probs, labels, options) => computeLoss(impl, probs, labels, options));
  return {
    ops: {
      /**
       * The loss of class probabilities (N, C, ...) against labels (N, ...) holding class ids, as a
       * (1) tensor, differentiable in its input. With input 'logits', raw scores: cross-entropy as
       * PyTorch's cross_entropy, the other kinds on their softmax.
       */
      loss(x: Tensor, labels: Tensor, options: LossOptions): Tensor {
        const input = options.input ?? 'probabilities';
        if (input !== 'probabilities' && input !== 'logits') {
          throw new SegvolError('ERR_ARGUMENT', `loss: expected input 'probabilities' or 'logits', received ${describe(input)}`);
        }
        if (input === 'logits') {
          if (options.kind === 'crossEntropy') return logitLoss(x, labels, options);
          if (!lossKinds.includes(options.kind)) computeLoss(impl, x, labels, options);  // names the unknown kind
          const probs = softmax(x);
          try {
            return probabilityLoss(probs, labels, { ...options, input: 'probabilities' });
          } finally {
            probs.dispose();
          }
        }
        checkProbabilities(x);
        return probabilityLoss(x, labels, options);
      },
    },
    backward: {},
  };
}
