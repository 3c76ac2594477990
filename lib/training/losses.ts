// The class weightings of the source papers.
/**
 * Class weights: given per class, or computed from label counts n_c:
 * 'inverseFrequency' w_c = (1/n_c) / sum_k (1/n_k) (the ZNN setting);
 * 'medianFrequency' w_c = median_k(f_k) / f_c with f_c = n_c / total (Eigen & Fergus, used by Tseng et al.).
 * Classes absent from the labels get weight 0.
 */
export type ClassWeighting = 'none' | 'inverseFrequency' | 'medianFrequency' | readonly number[];

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
