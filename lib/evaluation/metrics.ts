// Evaluation measures of the source papers, on label volumes given as typed
// arrays with a shape (D, H, W) (a 2D image: (H, W)). Computed natively.
import { describe, SegvolError } from '../core/errors';
import { native } from '../core/native';

export type Labels = Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array | Float32Array | Float64Array;
export type Shape3 = readonly [number, number, number] | readonly [number, number];

/** The (D, H, W) of a shape (a 2D one is one slice), or the coded error saying it does not hold `length` voxels. */
export function dims(shape: Shape3, length: number, op: string): number[] {
  const d = shape.length === 2 ? [1, shape[0], shape[1]] : [...shape];
  if (d.length !== 3 || d.some((s) => !Number.isInteger(s) || s < 1) || d[0]! * d[1]! * d[2]! !== length) {
    throw new SegvolError('ERR_SHAPE', `${op}: expected a shape (D, H, W) or (H, W) holding ${length} voxels, received ${describe(shape)}`);
  }
  return d;
}

/** Refuses a prediction and a truth of different sizes. */
export function sameLength(a: ArrayLike<number>, b: ArrayLike<number>, op: string): void {
  if (a.length !== b.length) {
    throw new SegvolError('ERR_SHAPE', `${op}: the prediction has ${a.length} voxels, the truth ${b.length}; they must match`);
  }
}

/**
 * The conventions of the adapted Rand error (docs/metrics.md gives the formulas). All ignore
 * voxels whose truth is 0 (unless ignoreTruthZero is false) and differ in a predicted 0:
 * - 'snemi3d': as the SNEMI3D challenge's evaluation script computes it (the "ARI" papers on
 *   SNEMI3D report). Squared counts; a predicted 0 inside the truth is no segment: its counts
 *   c_i per truth segment add sum(c) / n to the prediction's and the joint sums, n being every
 *   voxel given (truth 0 included). Precision = joint / prediction, recall = joint / truth.
 * - 'singletons': the same with every predicted-0 voxel its own segment (adds sum(c), not sum(c) / n).
 * - 'skimage': scikit-image's adapted_rand_error. Pairs of distinct voxels; a predicted 0 is one
 *   ordinary segment. Its names are the other way round: precision = joint / truth, recall =
 *   joint / prediction.
 */
export type AdaptedRandForm = 'snemi3d' | 'singletons' | 'skimage';
export const adaptedRandForms: readonly AdaptedRandForm[] = ['snemi3d', 'singletons', 'skimage'];

/** One form of the adapted Rand error: 1 - the F-score of its precision and recall. */
export interface AdaptedRandScores {
  adaptedRandError: number;
  precision: number;
  recall: number;
}

export interface RandOptions {
  /** Leave out voxels whose truth id is 0 (boundary or unlabelled; default true). */
  ignoreTruthZero?: boolean;
  /** The form of adaptedRandError, precision and recall (default 'snemi3d'); every form is in the result anyway. */
  adaptedRand?: AdaptedRandForm;
}

/**
 * adaptedRandError, precision and recall follow `adaptedRandForm` (the option adaptedRand,
 * default 'snemi3d'); `snemi3d`, `singletons` and `skimage` hold each form, whichever was chosen.
 */
export interface RandScores extends AdaptedRandScores {
  /** The 2D-3D ConvNet paper's V^Rand_merge, V^Rand_split and their harmonic mean. */
  vMerge: number;
  vSplit: number;
  fScore: number;
  /** Rand (1971) index; randError = 1 - randIndex. */
  randIndex: number;
  randError: number;
  /** The form adaptedRandError, precision and recall follow. */
  adaptedRandForm: AdaptedRandForm;
  snemi3d: AdaptedRandScores;
  singletons: AdaptedRandScores;
  skimage: AdaptedRandScores;
  /** Variation of information in bits (as scikit-image): split = H(pred | truth), merge = H(truth | pred). */
  viSplit: number;
  viMerge: number;
}

export interface ClassOverlap {
  dice: number;
  jaccard: number;
  /** Positive predictive value (precision). */
  ppv: number;
  sensitivity: number;
  /** Absolute volume difference in % of the true volume. */
  avd: number;
}

export interface Connectivity {
  /** 4 or 8 (2D, each slice alone), 6 or 26 (3D). Default 8 for 2D shapes, 26 for 3D. */
  connectivity?: 4 | 8 | 6 | 26;
}

function connectivityOf(shape: Shape3, options: Connectivity): number {
  return options.connectivity ?? (shape.length === 2 ? 8 : 26);
}

export interface WatershedOptions {
  /** Affinities below are neither followed nor merged (default 0.3). */
  low?: number;
  /** Affinities above count as equally strong: their voxels share a basin (default 0.99). */
  high?: number;
  /**
   * The size-dependent merge: a number s merges, along edges of affinity >= low, two
   * segments while either has fewer than s voxels (default 25); or steps
   * [[affinity, size], ...] in decreasing affinity: an edge uses the first step it reaches.
   */
  sizeThreshold?: number | ReadonlyArray<readonly [number, number]>;
  /** Segments smaller than this become background (0) after merging (default 0: none). */
  minSize?: number;
}

export interface WatershedSegmentation {
  /** Segment ids 1..count per voxel in scan order, 0 = background. */
  segments: Int32Array;
  /** Basins before merging, and segments after. */
  basins: number;
  count: number;
  /** The maximum spanning tree of the segments' region graph, strongest edge first. */
  tree: { a: Int32Array; b: Int32Array; affinity: Float32Array };
  /** Segments joined along the tree's edges of affinity >= threshold (a coarser level of the hierarchy). */
  cut(threshold: number): Int32Array;
}

export interface RandCurvePoint {
  threshold: number;
  /** The paper's Rand split and merge scores (its precision-recall curve) and their F-score. */
  vSplit: number;
  vMerge: number;
  fScore: number;
  /** Segments at this threshold. */
  segments: number;
}

function runWatershed(affinities: Float32Array, d: number[], threeD: boolean, options: WatershedOptions): WatershedSegmentation {
  const low = options.low ?? 0.3, high = options.high ?? 0.99;
  const size = options.sizeThreshold ?? 25;
  const steps: Array<[number, number]> = typeof size === 'number' ? [[low, size]] : size.map(([w, s]) => [w, s]);
  for (const [w, s] of steps) {
    if (!(w >= 0 && w <= 1) || !Number.isInteger(s) || s < 0) {
      throw new SegvolError('ERR_ARGUMENT', `watershed: expected sizeThreshold steps [affinity in 0..1, size >= 0 voxels], received [${w}, ${s}]`);
    }
  }
  steps.sort((a, b) => b[0] - a[0]);
  const minSize = options.minSize ?? 0;
  if (!Number.isInteger(minSize) || minSize < 0) throw new SegvolError('ERR_ARGUMENT', `watershed: expected minSize as an integer >= 0, received ${describe(minSize)}`);
  const r = native.metricsWatershed(affinities, d, threeD, low, high, steps, minSize);
  const tree = { a: r.treeA, b: r.treeB, affinity: r.treeWeight };
  return {
    segments: r.segments, basins: r.basins, count: r.count, tree,
    cut: (threshold: number) => native.metricsCutTree(r.segments, tree.a, tree.b, tree.affinity, threshold),
  };
}

/** The watershed a threshold search cuts: its tree reaches the lowest cut (see randCurve). */
function searchWatershed(options: WatershedOptions, thresholds: readonly number[]): WatershedOptions {
  if (options.low !== undefined) return options;
  const low = 0.3, size = options.sizeThreshold ?? 25;
  return {
    ...options,
    low: Math.max(0, Math.min(low, 1 - Math.max(...thresholds))),
    sizeThreshold: typeof size === 'number' ? [[low, size]] : size,
  };
}

export const metrics = {
  /**
   * Pixel error of boundary probabilities (p > threshold is boundary) against a binary truth.
   * With `search`, the best error over `steps` thresholds in (0, 1) (line search, as the 2D-3D ConvNet paper reports).
   */
  pixelError(probability: Float32Array, truth: Float32Array, options: { threshold?: number; search?: boolean; steps?: number } = {}): { error: number; threshold: number } {
    sameLength(probability, truth, 'pixelError');
    return options.search ? native.metricsPixelError(probability, truth, options.steps ?? 100, true)
      : native.metricsPixelError(probability, truth, options.threshold ?? 0.5, false);
  },

  /**
   * Rand scores, adapted Rand error and variation of information between two segmentations
   * (ids: integers of 32 bits). The adapted Rand error is the SNEMI3D challenge's by default,
   * scikit-image's with `{ adaptedRand: 'skimage' }` (see AdaptedRandForm); every form is
   * also under its own name (`scores.skimage.adaptedRandError`).
   */
  rand(pred: Labels, truth: Labels, options: RandOptions = {}): RandScores {
    sameLength(pred, truth, 'rand');
    const form = options.adaptedRand ?? 'snemi3d';
    if (!adaptedRandForms.includes(form)) {
      throw new SegvolError('ERR_ARGUMENT', `rand: expected adaptedRand as ${adaptedRandForms.map((f) => `'${f}'`).join(', ')}, received ${describe(form)}`);
    }
    const r = native.metricsRand(pred, truth, options.ignoreTruthZero ?? true);
    return {
      vMerge: r.vMerge, vSplit: r.vSplit, fScore: r.fScore, randIndex: r.randIndex, randError: 1 - r.randIndex,
      ...r[form], adaptedRandForm: form, snemi3d: r.snemi3d, singletons: r.singletons, skimage: r.skimage,
      viSplit: r.viSplit, viMerge: r.viMerge,
    };
  },

  /** Confusion matrix (rows truth, columns prediction) of class labels 0..classes-1. */
  confusion(pred: Labels, truth: Labels, classes: number): number[][] {
    sameLength(pred, truth, 'confusion');
    const flat = native.metricsConfusion(pred, truth, classes);
    return Array.from({ length: classes }, (_, t) => Array.from(flat.subarray(t * classes, (t + 1) * classes)));
  },

  /**
   * Per-class Dice, Jaccard, PPV, sensitivity and AVD, and the mean IU over classes present in
   * either volume. Documented values for empty sets: Dice and Jaccard of two empty sets are 1,
   * PPV with no positive prediction is 1 when the truth is empty too (else 0), AVD with an empty
   * truth is 0 if the prediction is empty too, else Infinity.
   */
  overlap(pred: Labels, truth: Labels, classes: number): { perClass: ClassOverlap[]; meanIU: number; confusion: number[][] } {
    const confusion = metrics.confusion(pred, truth, classes);
    const perClass: ClassOverlap[] = [];
    let iuSum = 0, iuCount = 0;
    for (let c = 0; c < classes; ++c) {
      const tp = confusion[c]![c]!;
      const truthCount = confusion[c]!.reduce((a, b) => a + b, 0);
      const predCount = confusion.reduce((a, row) => a + row[c]!, 0);
      const fp = predCount - tp, fn = truthCount - tp;
      const empty = truthCount === 0 && predCount === 0;
      perClass.push({
        dice: empty ? 1 : (2 * tp) / (2 * tp + fp + fn),
        jaccard: empty ? 1 : tp / (tp + fp + fn),
        ppv: predCount ? tp / predCount : truthCount ? 0 : 1,
        sensitivity: truthCount ? tp / truthCount : predCount ? 0 : 1,
        avd: truthCount ? (100 * Math.abs(predCount - truthCount)) / truthCount : predCount ? Infinity : 0,
      });
      if (!empty) {
        iuSum += tp / (tp + fp + fn);
        ++iuCount;
      }
    }
    return { perClass, meanIU: iuCount ? iuSum / iuCount : 1, confusion };
  },

  /**
   * Modified Hausdorff distance as MRBrainS reports it: the larger of the two directed 95th
   * percentiles of surface distances, in physical units (spacing (z, y, x), e.g. mm).
   * NaN when either mask is empty.
   */
  hausdorff95(pred: Labels, truth: Labels, shape: Shape3, options: { spacing?: readonly [number, number, number]; percentile?: number } = {}): number {
    sameLength(pred, truth, 'hausdorff95');
    const d = dims(shape, pred.length, 'hausdorff95');
    const spacing = [...(options.spacing ?? [1, 1, 1])];
    const predToTruth = native.metricsSurfaceDistances(pred, truth, d, spacing);
    const truthToPred = native.metricsSurfaceDistances(truth, pred, d, spacing);
    if (predToTruth.length === 0 || truthToPred.length === 0) return NaN;
    const q = options.percentile ?? 95;
    return Math.max(percentile(predToTruth, q), percentile(truthToPred, q));
  },

  /**
   * Warping error (ISBI 2012; Jain et al. 2010): the truth is warped toward the prediction by
   * flipping only simple pixels (foreground 8-, background 4-connected), per 2D slice; the
   * error is the fraction of pixels that still disagree, i.e. the topological mistakes.
   * Inputs are binary (non-zero = foreground, e.g. cell interior); pixelError is the plain disagreement.
   */
  warpingError(pred: Labels, truth: Labels, shape: Shape3): { warpingError: number; pixelError: number } {
    sameLength(pred, truth, 'warpingError');
    return native.metricsWarpingError(pred, truth, dims(shape, pred.length, 'warpingError'));
  },

  /** Connected components of the non-zero voxels. */
  connectedComponents(foreground: Labels, shape: Shape3, options: Connectivity = {}): { labels: Int32Array; count: number } {
    return native.metricsConnectedComponents(foreground, dims(shape, foreground.length, 'connectedComponents'), connectivityOf(shape, options));
  },

  /** Segments of a boundary map: connected components of the voxels below the threshold. */
  segmentByThreshold(boundary: Float32Array, shape: Shape3, options: Connectivity & { threshold: number }): Int32Array {
    return native.metricsThresholdSegmentation(boundary, dims(shape, boundary.length, 'segmentByThreshold'), options.threshold,
      connectivityOf(shape, options));
  },

  /**
   * Seeded priority flood on a boundary map: seeds are the components below seedThreshold,
   * grown over voxels below maskThreshold in order of increasing boundary value; segments
   * smaller than minSize removed. (Not Zlateski and Seung's watershed: see watershed.)
   */
  priorityFlood(boundary: Float32Array, shape: Shape3, options: Connectivity & { seedThreshold: number; maskThreshold?: number; minSize?: number }): Int32Array {
    return native.metricsPriorityFlood(boundary, dims(shape, boundary.length, 'priorityFlood'), options.seedThreshold, options.maskThreshold ?? 1,
      options.minSize ?? 0, connectivityOf(shape, options));
  },

  /**
   * Zlateski and Seung's watershed (2015) of a boundary map (high = boundary), on the
   * affinity graph 1 - max(b_u, b_v): steepest ascent, plateau division, basins, the
   * region graph, size-dependent single linkage, and the maximum spanning tree of the
   * result (`cut(t)` merges along its edges of affinity >= t). 2D shapes, and by
   * default each slice of a 3D one, are segmented in-plane; `threeD: true` joins slices.
   */
  watershed(boundary: Float32Array, shape: Shape3, options: WatershedOptions & { threeD?: boolean } = {}): WatershedSegmentation {
    const d = dims(shape, boundary.length, 'watershed');
    const threeD = options.threeD ?? false;
    return runWatershed(native.metricsBoundaryAffinities(boundary, d, threeD), d, threeD, options);
  },

  /**
   * The same on an affinity graph: affinities (3, D, H, W), channel a (z, y, x) the edge
   * between each voxel and its predecessor along axis a (1 = together), as connectomics
   * networks predict them. threeD (default true) uses the z channel.
   */
  affinityWatershed(affinities: Float32Array, shape: readonly [number, number, number], options: WatershedOptions & { threeD?: boolean } = {}): WatershedSegmentation {
    if (!(affinities instanceof Float32Array)) throw new SegvolError('ERR_ARGUMENT', `affinityWatershed: expected a Float32Array, received ${describe(affinities)}`);
    const d = dims(shape, affinities.length / 3, 'affinityWatershed');
    return runWatershed(affinities, d, options.threeD ?? true, options);
  },

  /**
   * Rand scores of a boundary map's segmentations over thresholds: the split/merge curve
   * (the 2D-3D ConvNet paper's Fig. 4). 'threshold': connected components of the voxels
   * below each threshold; 'watershed': one watershed, its tree cut at affinity 1 - threshold.
   * Unless `watershed.low` is given, the watershed's `low` is lowered to the lowest affinity
   * cut (1 - the largest threshold) while the size-dependent merge keeps its default
   * affinity (0.3): at the default low, voxels of boundary above 0.7 would be background,
   * cells parted by such membranes would share no edge, the tree would be empty and every
   * threshold would give the same segmentation (one point, not a curve).
   * Truth label 0 (boundary) is ignored. In-plane (per slice) unless threeD.
   */
  randCurve(boundary: Float32Array, truth: Labels, shape: Shape3, options: Connectivity & {
    method?: 'threshold' | 'watershed'; thresholds?: readonly number[]; watershed?: WatershedOptions; threeD?: boolean;
    onProgress?: (done: number, total: number) => void;
  } = {}): RandCurvePoint[] {
    sameLength(boundary, truth, 'randCurve');
    const thresholds = options.thresholds ?? Array.from({ length: 19 }, (_, i) => (i + 1) / 20);
    const threeD = options.threeD ?? false;
    const connectivity = options.connectivity ?? (shape.length === 2 || !threeD ? 8 : 26);
    const ws = options.method === 'watershed' ? metrics.watershed(boundary, shape, { ...searchWatershed(options.watershed ?? {}, thresholds), threeD }) : undefined;
    return thresholds.map((threshold, k) => {
      const segments = ws ? ws.cut(1 - threshold)
        : metrics.segmentByThreshold(boundary, shape, { threshold, connectivity: connectivity as 4 | 8 | 6 | 26 });
      const s = metrics.rand(segments, truth);
      options.onProgress?.(k + 1, thresholds.length);
      return { threshold, vSplit: s.vSplit, vMerge: s.vMerge, fScore: s.fScore, segments: new Set(segments).size - (segments.includes(0) ? 1 : 0) };
    });
  },

  /**
   * The best Rand F-score over segmentation thresholds (line search), as the 2D-3D ConvNet
   * paper reports: 'threshold' = connected components below a threshold, 'watershed' =
   * Zlateski and Seung's watershed cut at each threshold (see randCurve).
   */
  bestRandFScore(boundary: Float32Array, truth: Labels, shape: Shape3,
    options: Connectivity & { method?: 'threshold' | 'watershed'; thresholds?: readonly number[]; watershed?: WatershedOptions; threeD?: boolean;
      onProgress?: (done: number, total: number) => void } = {}) {
    const curve = metrics.randCurve(boundary, truth, shape, options);
    let best = curve[0]!;
    for (const p of curve) if (p.fScore > best.fScore) best = p;
    return { threshold: best.threshold, scores: best, curve };
  },
};

/** numpy.percentile's default (linear interpolation). */
export function percentile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const position = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(position), hi = Math.ceil(position);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (position - lo);
}
