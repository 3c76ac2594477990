// Scores of a model on held-out windows: its loss, or the segmentation measures
// of its most probable class per voxel against the labels (masked voxels excluded).
import { SegvolError } from '../core/errors';

/**
 * 'loss': the phase's loss (lower is better). 'dice': the mean Dice over the classes
 * 1..K-1 present in the prediction or the truth; 'meanIU': the mean intersection over
 * union over the classes present; 'accuracy': the share of voxels right (higher is better).
 */
export type ValidationMetric = 'loss' | 'dice' | 'meanIU' | 'accuracy';
export const validationMetrics: readonly ValidationMetric[] = ['loss', 'dice', 'meanIU', 'accuracy'];

export function higherIsBetter(metric: ValidationMetric): boolean {
  return metric !== 'loss';
}

/**
 * Adds the confusion counts [truth * K + predicted] of argmax(probs) against the labels:
 * probs (N, K, S) and labels, mask (N, S) as flat host arrays, S the spatial size.
 */
export function addConfusion(counts: Float64Array, probs: Float32Array, n: number, classes: number, labels: Float32Array, mask?: Float32Array): void {
  const s = labels.length / n;
  if (!Number.isInteger(s) || probs.length !== n * classes * s || counts.length !== classes * classes) {
    throw new SegvolError('ERR_SHAPE', `validation: ${probs.length} probabilities do not match ${labels.length} labels of ${classes} classes in ${n} windows`);
  }
  for (let b = 0; b < n; ++b)
    for (let v = 0; v < s; ++v) {
      const i = b * s + v;
      if (mask && mask[i] === 0) continue;
      let best = 0;
      for (let k = 1; k < classes; ++k) if (probs[(b * classes + k) * s + v]! > probs[(b * classes + best) * s + v]!) best = k;
      const truth = labels[i]!;
      if (truth >= 0 && truth < classes) counts[truth * classes + best]! += 1;
    }
}

/** A segmentation score from confusion counts [truth * K + predicted]. */
export function scoreConfusion(counts: Float64Array, classes: number, metric: Exclude<ValidationMetric, 'loss'>): number {
  const tp = (c: number) => counts[c * classes + c]!;
  const row = (c: number) => { let s = 0; for (let k = 0; k < classes; ++k) s += counts[c * classes + k]!; return s; };
  const col = (c: number) => { let s = 0; for (let k = 0; k < classes; ++k) s += counts[k * classes + c]!; return s; };
  if (metric === 'accuracy') {
    let right = 0, all = 0;
    for (let c = 0; c < classes; ++c) {
      right += tp(c);
      all += row(c);
    }
    return all > 0 ? right / all : NaN;
  }
  const scores: number[] = [];
  for (let c = metric === 'dice' ? 1 : 0; c < classes; ++c) {
    const truth = row(c), predicted = col(c);
    if (truth + predicted === 0) continue;  // absent on both sides: no score
    scores.push(metric === 'dice' ? (2 * tp(c)) / (truth + predicted) : tp(c) / (truth + predicted - tp(c)));
  }
  return scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : NaN;
}
