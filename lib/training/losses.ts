// The class weightings of the source papers.
import { SegvolError } from '../core/errors';

/**
 * Class weights: given per class, or computed from the labels:
 * 'inverseFrequency' w_c = (1/n_c) / sum_k (1/n_k) (the ZNN setting);
 * 'medianFrequency' w_c = median_k(f_k) / f_c with f_c = n_c / (pixels of the images
 *   where c is present): median frequency balancing as Eigen & Fergus define it and
 *   Tseng et al. use it; an image is one 2D slice;
 * 'medianCount' w_c = median_k(n_k) / n_c, i.e. frequencies over all voxels (what
 *   'medianFrequency' computed before segvol 0.1: it up-weights classes that are rare
 *   overall even when they fill the slices they occur in).
 * Classes absent from the labels get weight 0.
 */
export type ClassWeighting = 'none' | 'inverseFrequency' | 'medianFrequency' | 'medianCount' | readonly number[];
export type ComputedWeighting = 'inverseFrequency' | 'medianFrequency' | 'medianCount';
export const computedWeightings: readonly ComputedWeighting[] = ['inverseFrequency', 'medianFrequency', 'medianCount'];

/** What class weights are computed from: voxels per class and, per class, the voxels of the images (slices) holding it. */
export interface ClassStatistics {
  counts: number[];
  /** imageTotals[c]: the voxels of every image (2D slice) in which class c occurs (needed by 'medianFrequency'). */
  imageTotals?: number[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Class weights from counts (and, for 'medianFrequency', the per-class image totals);
 * see ClassWeighting.
 */
export function classWeightsFromCounts(counts: readonly number[], mode: ComputedWeighting, imageTotals?: readonly number[]): Float32Array {
  if (!computedWeightings.includes(mode)) {
    throw new SegvolError('ERR_ARGUMENT', `class weights: expected ${computedWeightings.join(', ')}, received '${String(mode)}'`);
  }
  const out = new Float32Array(counts.length);
  const present = counts.map((n, c) => [n, c] as const).filter(([n]) => n > 0);
  if (present.length === 0) return out;
  if (mode === 'inverseFrequency') {
    const total = present.reduce((s, [n]) => s + 1 / n, 0);
    for (const [n, c] of present) out[c] = 1 / n / total;
    return out;
  }
  let freq: number[];
  if (mode === 'medianCount') {
    freq = present.map(([n]) => n);
  } else {
    if (!imageTotals || imageTotals.length !== counts.length) {
      throw new SegvolError('ERR_ARGUMENT', `medianFrequency: expected the voxels of the images holding each class (${counts.length} values), ` +
        `received ${imageTotals ? imageTotals.length : 'none'}; use classStatistics(labels, ...) or 'medianCount' for frequencies over all voxels`);
    }
    freq = present.map(([n, c]) => {
      const total = imageTotals[c]!;
      if (!(total >= n)) throw new SegvolError('ERR_ARGUMENT', `medianFrequency: class ${c} has ${n} voxels in images of ${total} voxels; the totals must hold the counts`);
      return n / total;
    });
  }
  const mid = median(freq);
  present.forEach(([, c], i) => (out[c] = mid / freq[i]!));
  return out;
}

/** Class weights from statistics (see ClassWeighting). */
export function classWeightsFromStatistics(stats: ClassStatistics, mode: ComputedWeighting): Float32Array {
  return classWeightsFromCounts(stats.counts, mode, stats.imageTotals);
}
