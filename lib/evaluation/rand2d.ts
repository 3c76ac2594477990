// The 2D Rand F-score of a boundary map, as the 2D-3D ConvNet paper evaluates it:
// every slice segmented and compared on its own (the truth relabelled into each
// slice's connected components), the truth's unlabelled pixels left out, the
// prediction's boundary pixels counted as chosen, and the best score over the
// segmentation's parameters. docs/convnets.md says which choices follow the paper,
// which follow its authors' group's public scoring code, and which are offered beside.
import { describe, SegvolError } from '../core/errors';
import { native } from '../core/native';
import { dims, sameLength, type Labels, type RandCurvePoint, type Shape3 } from './metrics';

/**
 * What a predicted boundary pixel (predicted 0) inside the truth's labelled pixels counts as:
 * - 'singletons': each is a segment of its own (the authors' group's scoring code, segascorus,
 *   by default; ISBI 2012's script does the same with the pixels its thinning leaves);
 * - 'grow': each joins the segment that reaches it first when the segments grow over the
 *   boundary map in order of increasing boundary value (a seeded watershed: no boundary
 *   pixel stays unless its slice holds no segment, and those left count as singletons);
 * - 'exclude': left out of the counts, as the truth's boundary is (lenient: an unsure
 *   prediction that marks everything boundary loses nothing);
 * - 'oneSegment': all of a slice's boundary pixels form one segment (scikit-image's and the
 *   earlier segvol reading).
 */
export type BoundaryPixels = 'singletons' | 'grow' | 'exclude' | 'oneSegment';
export const boundaryPixelChoices: readonly BoundaryPixels[] = ['singletons', 'grow', 'exclude', 'oneSegment'];

/**
 * How the slices' scores make one score (the paper does not say):
 * - 'pooled': the Rand sums of every slice added, then one V_merge, V_split and F
 *   (one contingency table of the slice-relabelled stack, as segascorus computes its 2D scores;
 *   ISBI 2012's micro-average). Large slices weigh more.
 * - 'mean': the mean of the slices' F-scores (and of their V_merge and V_split): ISBI 2012's
 *   per-slice (macro) average. Every slice with labelled truth weighs the same.
 */
export type SliceCombination = 'pooled' | 'mean';
export const sliceCombinations: readonly SliceCombination[] = ['pooled', 'mean'];

export interface Rand2dOptions {
  /** What predicted boundary pixels (label 0) count as (default 'singletons'). */
  boundaryPixels?: BoundaryPixels;
  /** How the slices' scores are combined (default 'pooled'). */
  combine?: SliceCombination;
  /** Connectivity of the slices' 2D components (truth and prediction) and of 'grow': 4 (default) or 8. */
  connectivity?: 4 | 8;
}

export interface SliceRandScores {
  slice: number;
  /** The truth's labelled (non-zero) pixels in the slice, and those counted (fewer with 'exclude'). */
  foreground: number;
  counted: number;
  /** null where the slice has no labelled truth (it is left out of both combinations). */
  vMerge: number | null;
  vSplit: number | null;
  fScore: number | null;
}

export interface Rand2dScores {
  /** The paper's V^Rand_merge (over the prediction's segments), V^Rand_split (over the truth's) and their harmonic mean, combined over slices as `combine` says. */
  vMerge: number;
  vSplit: number;
  fScore: number;
  combine: SliceCombination;
  boundaryPixels: BoundaryPixels;
  perSlice: SliceRandScores[];
}

export interface Rand2dSearchOptions extends Rand2dOptions {
  /** 'threshold': connected components below each threshold; 'watershed': the in-plane watershed, its tree cut at affinity 1 - threshold (default 'threshold'). */
  method?: 'threshold' | 'watershed';
  /** Boundary thresholds in (0, 1) (default 0.05, 0.10, ..., 0.95). */
  thresholds?: readonly number[];
  /**
   * The watershed's parameters searched, every combination with low < high (see
   * metrics.watershed): low (default 0.05, 0.3), high (default 0.9, 0.99, 0.999) and the
   * size-dependent merge's size, merging along edges of affinity >= low (default 0, 25, 100).
   */
  watershed?: { low?: readonly number[]; high?: readonly number[]; sizeThreshold?: readonly number[] };
  /** Called after each watershed parameter set (or once for 'threshold'). */
  onProgress?: (done: number, total: number) => void;
}

/** The parameters of the best segmentation: the threshold, and for the watershed its low, high and size. */
export interface Rand2dParameters {
  threshold: number;
  low?: number;
  high?: number;
  sizeThreshold?: number;
}

export interface Rand2dSearch extends Rand2dScores {
  method: 'threshold' | 'watershed';
  parameters: Rand2dParameters;
  /** The best threshold and its curve point (as metrics.bestRandFScore gives them). */
  threshold: number;
  scores: RandCurvePoint;
  /** Every threshold's point, with the best watershed parameters (the paper's precision-recall curve). */
  curve: RandCurvePoint[];
  /** Per watershed parameter set searched, its best threshold and F-score (empty for 'threshold'). */
  grid: Array<{ low: number; high: number; sizeThreshold: number; threshold: number; fScore: number }>;
}

const defaultThresholds = Array.from({ length: 19 }, (_, i) => (i + 1) / 20);
const defaultGrid = { low: [0.05, 0.3], high: [0.9, 0.99, 0.999], sizeThreshold: [0, 25, 100] };

function checkOptions(options: Rand2dOptions, op: string): Required<Rand2dOptions> {
  if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `${op}: expected options as an object, received ${describe(options)}`);
  const boundaryPixels = options.boundaryPixels ?? 'singletons', combine = options.combine ?? 'pooled', connectivity = options.connectivity ?? 4;
  if (!boundaryPixelChoices.includes(boundaryPixels)) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected boundaryPixels as ${boundaryPixelChoices.map((c) => `'${c}'`).join(', ')}, received ${describe(boundaryPixels)}`);
  }
  if (!sliceCombinations.includes(combine)) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected combine as 'pooled' or 'mean', received ${describe(combine)}`);
  }
  if (connectivity !== 4 && connectivity !== 8) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected connectivity 4 or 8 (each slice in its plane), received ${describe(connectivity)}`);
  }
  return { boundaryPixels, combine, connectivity };
}

/** Boundary probabilities: a Float32Array of values in [0, 1]; the first value outside is named with its index. */
function checkProbabilities(boundary: Float32Array, op: string): void {
  if (!(boundary instanceof Float32Array)) throw new SegvolError('ERR_ARGUMENT', `${op}: expected the boundary map as a Float32Array, received ${describe(boundary)}`);
  for (let i = 0; i < boundary.length; ++i) {
    const v = boundary[i]!;
    if (!(v >= 0 && v <= 1)) {
      throw new SegvolError('ERR_ARGUMENT', `${op}: expected boundary probabilities in [0, 1], received ${v} at index ${i}; ` +
        'give the network\'s probabilities (a sigmoid or softmax output), not logits or labels');
    }
  }
}

function checkShape(shape: Shape3, length: number, op: string): number[] {
  if (!Array.isArray(shape)) throw new SegvolError('ERR_SHAPE', `${op}: expected a shape (D, H, W) or (H, W), received ${describe(shape)}`);
  return dims(shape, length, op);
}

function checkList(values: readonly number[] | undefined, fallback: readonly number[], ok: (v: number) => boolean, what: string, op: string): number[] {
  const list = values ?? fallback;
  if (!Array.isArray(list) || list.length === 0) throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${what} as a non-empty list of numbers, received ${describe(list)}`);
  for (const v of list) if (typeof v !== 'number' || !ok(v)) throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${what}, received ${describe(v)}`);
  return [...list];
}

/** A slice's scores from its counts (foreground, counted, sum n_ij^2, sum a_i^2, sum b_j^2). */
function sliceScores(slice: number, c: Float64Array | number[]): SliceRandScores {
  const [foreground, counted, joint2, pred2, truth2] = [c[0]!, c[1]!, c[2]!, c[3]!, c[4]!];
  if (foreground === 0) return { slice, foreground, counted, vMerge: null, vSplit: null, fScore: null };
  // Every labelled pixel excluded: nothing was merged, nothing of the truth recovered.
  if (counted === 0) return { slice, foreground, counted, vMerge: 1, vSplit: 0, fScore: 0 };
  const vMerge = joint2 / pred2, vSplit = joint2 / truth2;
  return { slice, foreground, counted, vMerge, vSplit, fScore: (2 * vMerge * vSplit) / (vMerge + vSplit) };
}

/** Combines the counts of the slices (counts: (D, 5)) as `combine` says. */
function combineSlices(counts: Float64Array, depth: number, combine: SliceCombination, op: string) {
  const perSlice = Array.from({ length: depth }, (_, z) => sliceScores(z, counts.subarray(z * 5, z * 5 + 5)));
  const scored = perSlice.filter((s) => s.foreground > 0);
  if (scored.length === 0) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: the truth has no labelled pixel (every id is 0): nothing to score; give segment ids or a boundary map with cells (0)`);
  }
  let vMerge: number, vSplit: number, fScore: number;
  if (combine === 'mean') {
    const mean = (key: 'vMerge' | 'vSplit' | 'fScore') => scored.reduce((a, s) => a + s[key]!, 0) / scored.length;
    [vMerge, vSplit, fScore] = [mean('vMerge'), mean('vSplit'), mean('fScore')];
  } else {
    let counted = 0, joint2 = 0, pred2 = 0, truth2 = 0;
    for (let z = 0; z < depth; ++z) {
      counted += counts[z * 5 + 1]!;
      joint2 += counts[z * 5 + 2]!;
      pred2 += counts[z * 5 + 3]!;
      truth2 += counts[z * 5 + 4]!;
    }
    if (counted === 0) [vMerge, vSplit, fScore] = [1, 0, 0];
    else {
      vMerge = joint2 / pred2;
      vSplit = joint2 / truth2;
      fScore = (2 * vMerge * vSplit) / (vMerge + vSplit);
    }
  }
  return { vMerge, vSplit, fScore, perSlice };
}

export const rand2dMetrics = {
  /**
   * The 2D Rand scores of a segmentation (labels, 0 = boundary) against the truth (segment
   * ids, 0 = unlabelled), slice by slice: both relabelled into each slice's connected
   * components (a 3D id becomes one segment per 2D piece), truth 0 left out, predicted 0
   * counted as `boundaryPixels` says ('grow' needs the boundary map as `boundary`), the
   * slices combined as `combine` says.
   */
  rand2d(pred: Labels, truth: Labels, shape: Shape3, options: Rand2dOptions & { boundary?: Float32Array } = {}): Rand2dScores {
    const op = 'rand2d';
    sameLength(pred, truth, op);
    const d = checkShape(shape, truth.length, op);
    const o = checkOptions(options, op);
    let segments = native.metricsRelabelSlices(pred, d, o.connectivity);
    if (o.boundaryPixels === 'grow') {
      if (options.boundary === undefined) {
        throw new SegvolError('ERR_ARGUMENT', `${op}: boundaryPixels 'grow' grows the segments over the boundary map: give it as the option boundary (a Float32Array like pred)`);
      }
      checkProbabilities(options.boundary, op);
      sameLength(options.boundary, truth, op);
      segments = native.metricsGrowSegments(segments, options.boundary, d, o.connectivity);
    }
    const truth2d = native.metricsRelabelSlices(truth, d, o.connectivity);
    const counts = native.metricsSliceRandCounts(segments, truth2d, d, o.boundaryPixels === 'grow' ? 'singletons' : o.boundaryPixels);
    return { ...combineSlices(counts, d[0]!, o.combine, op), combine: o.combine, boundaryPixels: o.boundaryPixels };
  },

  /**
   * The best 2D Rand F-score of a boundary map (probabilities, high = boundary) over its
   * segmentation's parameters, as the 2D-3D ConvNet paper reports it: 'threshold' searches
   * the threshold of the connected components, 'watershed' every combination of the
   * watershed's low, high and size with every cut of its tree. Scored as rand2d scores (the
   * truth relabelled per slice). Runs off the main thread; the best's parameters, its
   * per-slice scores, its curve over thresholds and each watershed parameter set's best come back.
   */
  async bestRand2d(boundary: Float32Array, truth: Labels, shape: Shape3, options: Rand2dSearchOptions = {}): Promise<Rand2dSearch> {
    const op = 'bestRand2d';
    checkProbabilities(boundary, op);
    sameLength(boundary, truth, op);
    const d = checkShape(shape, truth.length, op);
    const o = checkOptions(options, op);
    const method = options.method ?? 'threshold';
    if (method !== 'threshold' && method !== 'watershed') {
      throw new SegvolError('ERR_ARGUMENT', `${op}: expected method 'threshold' or 'watershed', received ${describe(method)}`);
    }
    const thresholds = checkList(options.thresholds, defaultThresholds, (v) => v > 0 && v < 1, 'thresholds in (0, 1)', op);
    const grid = options.watershed ?? {};
    const lows = checkList(grid.low, defaultGrid.low, (v) => v >= 0 && v <= 1, 'watershed low values in [0, 1]', op);
    const highs = checkList(grid.high, defaultGrid.high, (v) => v >= 0 && v <= 1, 'watershed high values in [0, 1]', op);
    const sizes = checkList(grid.sizeThreshold, defaultGrid.sizeThreshold, (v) => Number.isInteger(v) && v >= 0, 'watershed sizeThreshold values as integers >= 0', op);
    const sets = method === 'threshold' ? [{ low: 0, high: 1, sizeThreshold: 0 }]
      : lows.flatMap((low) => highs.filter((high) => low < high).flatMap((high) => sizes.map((sizeThreshold) => ({ low, high, sizeThreshold }))));
    if (sets.length === 0) throw new SegvolError('ERR_ARGUMENT', `${op}: no watershed parameter set has low < high (low ${lows.join(', ')}; high ${highs.join(', ')})`);
    const truth2d = native.metricsRelabelSlices(truth, d, o.connectivity);
    const depth = d[0]!;
    let best: { fScore: number; set: (typeof sets)[number]; k: number; counts: Float64Array; curve: RandCurvePoint[] } | undefined;
    const searched: Rand2dSearch['grid'] = [];
    for (const [done, set] of sets.entries()) {
      const r = await native.metricsRand2dSweep(boundary, truth2d, d, thresholds, {
        watershed: method === 'watershed', ...set, connectivity: o.connectivity, grow: o.boundaryPixels === 'grow',
        predictedZero: o.boundaryPixels === 'grow' ? 'singletons' : o.boundaryPixels,
      });
      const curve = thresholds.map((threshold, k) => {
        const s = combineSlices(r.counts.subarray(k * depth * 5, (k + 1) * depth * 5), depth, o.combine, op);
        return { threshold, vSplit: s.vSplit, vMerge: s.vMerge, fScore: s.fScore, segments: r.segments[k]! };
      });
      let k = 0;
      for (let i = 1; i < curve.length; ++i) if (curve[i]!.fScore > curve[k]!.fScore) k = i;
      if (method === 'watershed') searched.push({ ...set, threshold: thresholds[k]!, fScore: curve[k]!.fScore });
      if (!best || curve[k]!.fScore > best.fScore) {
        best = { fScore: curve[k]!.fScore, set, k, counts: r.counts.slice(k * depth * 5, (k + 1) * depth * 5), curve };
      }
      options.onProgress?.(done + 1, sets.length);
    }
    const chosen = best!;
    const scores = chosen.curve[chosen.k]!;
    const parameters: Rand2dParameters = method === 'watershed' ? { threshold: scores.threshold, ...chosen.set } : { threshold: scores.threshold };
    return {
      ...combineSlices(chosen.counts, depth, o.combine, op), combine: o.combine, boundaryPixels: o.boundaryPixels,
      method, parameters, threshold: scores.threshold, scores, curve: chosen.curve, grid: searched,
    };
  },
};
