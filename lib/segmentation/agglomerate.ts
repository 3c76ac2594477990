// Segmentation of an affinity volume in memory, as waterz does it: fragments from the
// affinity watershed (or given), their region graph scored by the affinities between
// regions, and greedy agglomeration, one segmentation per threshold. The block-wise
// pipeline (blockwise.ts) gives the same segmentations for the same fragments.
import { describe, SegvolError } from '../core/errors';
import {
  affinityFragments, agglomerateFragments, checkAffinities, checkThresholds, defaultWatershed, maxFragmentId, scoringArgs,
  type AgglomerationScoring, type Dims3, type FragmentOptions,
} from '../evaluation/agglomeration';

export type { AgglomerationScoring, FragmentOptions } from '../evaluation/agglomeration';

export interface AgglomerateOptions {
  /** Scores (1 - affinity statistic) below which regions merge; each gives one segmentation. */
  thresholds: readonly number[];
  /** 'mean' (default: waterz's OneMinus<MeanAffinity>) or { quantile: q }, q in 0..100. */
  scoring?: AgglomerationScoring;
  /** Fragments to agglomerate (ids > 0, 0 background), instead of the watershed's. */
  fragments?: ArrayLike<number>;
  /** The watershed that makes the fragments (default low 0.0001, high 0.9999). */
  watershed?: FragmentOptions;
  /** After each step (fragments, agglomeration): steps done of total. */
  onProgress?: (done: number, total: number, step: string) => void;
}

export interface Agglomeration {
  /** The thresholds, ascending; segmentations[i] belongs to thresholds[i]. */
  thresholds: number[];
  /** Segment ids 1..n per voxel (numbered by their smallest fragment id), 0 background; each a coarsening of the one before. */
  segmentations: Int32Array[];
  /** The fragments agglomerated (the watershed's: 1..fragmentCount in scan order). */
  fragments: Int32Array;
  fragmentCount: number;
}

/** Fragment ids as int32, checked: integers in 0..2^31-2. */
export function fragmentIds(values: ArrayLike<number>, voxels: number, where: string): Int32Array {
  if (values.length !== voxels) throw new SegvolError('ERR_SHAPE', `${where}: expected ${voxels} fragment ids (one per voxel), received ${values.length}`);
  if (values instanceof Int32Array) {
    for (let i = 0; i < values.length; ++i) {
      if (values[i]! < 0) throw new SegvolError('ERR_ARGUMENT', `${where}: expected fragment ids >= 0, received ${values[i]} at voxel ${i}`);
    }
    return values;
  }
  const out = new Int32Array(voxels);
  for (let i = 0; i < voxels; ++i) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < 0 || v > maxFragmentId) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: expected fragment ids as integers in 0..${maxFragmentId}, received ${v} at voxel ${i}`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Fragments of the affinities (or the given ones), agglomerated: one segmentation per
 * threshold. affinities: (3, D, H, W), channel a (z, y, x) holding each voxel's affinity to
 * its predecessor along axis a (MALA's offsets (-1, 0, 0), (0, -1, 0), (0, 0, -1)), in [0, 1].
 */
export async function agglomerate(affinities: Float32Array, dims: Dims3, options: AgglomerateOptions): Promise<Agglomeration> {
  const where = 'agglomerate';
  if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `${where}: expected options { thresholds, ... }, received ${describe(options)}`);
  checkAffinities(affinities, dims, where);
  const thresholds = checkThresholds(options.thresholds, where);
  const scoring = options.scoring ?? 'mean';
  scoringArgs(scoring, where);
  let fragments: Int32Array, fragmentCount: number;
  if (options.fragments !== undefined) {
    fragments = fragmentIds(options.fragments, dims[0] * dims[1] * dims[2], where);
    fragmentCount = new Set(fragments).size - (fragments.includes(0) ? 1 : 0);
  } else {
    ({ fragments, count: fragmentCount } = await affinityFragments(affinities, dims, { ...defaultWatershed, ...options.watershed }));
  }
  options.onProgress?.(1, 2, `${fragmentCount} fragments`);
  const segmentations = await agglomerateFragments(fragments, affinities, dims, scoring, thresholds);
  options.onProgress?.(2, 2, 'agglomerated');
  return { thresholds, segmentations, fragments, fragmentCount };
}
