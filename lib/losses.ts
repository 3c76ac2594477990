// Losses on class probabilities (computed natively with their gradient) and the
// class weightings of the source papers.
import { describe, SegvolError } from './errors';
import { native, type ImplementationName } from './native';
import { handleOf, Tensor } from './tensor';

/**
 * squaredError: the PyraMiD-LSTM paper's E = (y* - y)^2 on the softmax output;
 * crossEntropy: -log p of the true class; softDice, softIoU: 1 - soft overlap, averaged over classes.
 */
export type LossKind = 'squaredError' | 'crossEntropy' | 'softDice' | 'softIoU';
export const lossKinds: readonly LossKind[] = ['squaredError', 'crossEntropy', 'softDice', 'softIoU'];

/**
 * Class weights: given per class, or computed from label counts n_c:
 * 'inverseFrequency' w_c = (1/n_c) / sum_k (1/n_k) (the ZNN setting);
 * 'medianFrequency' w_c = median_k(f_k) / f_c with f_c = n_c / total (Eigen & Fergus, used by Tseng et al.).
 * Classes absent from the labels get weight 0.
 */
export type ClassWeighting = 'none' | 'inverseFrequency' | 'medianFrequency' | readonly number[];

export interface LossOptions {
  kind: LossKind;
  /** Voxels where the mask is 0 are ignored. Shape (N, ...) like the labels. */
  mask?: Tensor;
  classWeights?: Tensor;
}

export function computeLoss(impl: ImplementationName, probs: Tensor, labels: Tensor, options: LossOptions): { loss: number; grad: Tensor } {
  if (!lossKinds.includes(options.kind)) {
    throw new SegvolError('ERR_ARGUMENT', `loss: expected kind ${lossKinds.join(', ')}, received ${describe(options.kind)}`);
  }
  const r = native.loss(impl, options.kind, handleOf(probs, 'loss', 'probabilities'), handleOf(labels, 'loss', 'labels'),
    options.mask ? handleOf(options.mask, 'loss', 'mask') : null,
    options.classWeights ? handleOf(options.classWeights, 'loss', 'classWeights') : null);
  return { loss: r.loss, grad: Tensor.fromHandle(r.grad) };
}

/** Voxel counts per class (masked voxels excluded). */
export function classCounts(labels: Float32Array, classes: number, mask?: Float32Array): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; ++i) {
    if (mask && mask[i] === 0) continue;
    const c = labels[i]!;
    if (c >= 0 && c < classes && Number.isInteger(c)) counts[c]! += 1;
  }
  return counts;
}

/** Class weights from counts; see ClassWeighting. */
export function classWeightsFromCounts(counts: readonly number[], mode: 'inverseFrequency' | 'medianFrequency'): Float32Array {
  const present = counts.filter((n) => n > 0);
  const out = new Float32Array(counts.length);
  if (present.length === 0) return out;
  if (mode === 'inverseFrequency') {
    const total = present.reduce((s, n) => s + 1 / n, 0);
    counts.forEach((n, c) => {
      out[c] = n > 0 ? 1 / n / total : 0;
    });
  } else {
    const all = present.reduce((s, n) => s + n, 0);
    const freqs = present.map((n) => n / all).sort((a, b) => a - b);
    const mid = freqs.length / 2;
    const median = freqs.length % 2 ? freqs[Math.floor(mid)]! : (freqs[mid - 1]! + freqs[mid]!) / 2;
    counts.forEach((n, c) => {
      out[c] = n > 0 ? median / (n / all) : 0;
    });
  }
  return out;
}
