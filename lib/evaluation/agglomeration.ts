// The native pieces of affinity agglomeration (native/metrics/agglomeration.h), checked and
// typed: fragments from the affinity watershed, a block's region graph as bytes, the
// agglomeration of region graphs into lookup tables, and relabelling through them. The
// heavy ones run off the main thread and return Promises. lib/segmentation builds the
// in-memory and block-wise pipelines from them.
import { describe, SegvolError } from '../core/errors';
import { native } from '../core/native';

export type Dims3 = readonly [number, number, number];

/** How an edge between two regions is scored (lower merges first): 1 - the mean affinity, or 1 - a quantile (q in 0..100). */
export type AgglomerationScoring = 'mean' | { quantile: number };

/** The watershed's affinity thresholds: edges below low are cut, edges above high count as equally strong (waterz's 0.0001, 0.9999). */
export interface FragmentOptions {
  low?: number;
  high?: number;
}

export const defaultWatershed = { low: 0.0001, high: 0.9999 } as const;

/** The largest fragment or segment id: ids are int32 and a segmentation's ids stay below 2^31. */
export const maxFragmentId = 2147483646;

function voxels(dims: Dims3, where: string): number {
  if (!Array.isArray(dims) || dims.length !== 3 || dims.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new SegvolError('ERR_SHAPE', `${where}: expected dims (D, H, W) of positive integers, received ${describe(dims)}`);
  }
  return dims[0] * dims[1] * dims[2];
}

/** Refuses affinities that are not (3, D, H, W) float32 values. */
export function checkAffinities(affinities: Float32Array, dims: Dims3, where: string): void {
  const n = voxels(dims, where);
  if (!(affinities instanceof Float32Array)) throw new SegvolError('ERR_ARGUMENT', `${where}: expected affinities as a Float32Array, received ${describe(affinities)}`);
  if (affinities.length !== 3 * n) {
    const channels = affinities.length / n;
    throw new SegvolError('ERR_SHAPE', `${where}: expected affinities (3, ${dims.join(', ')}) = ${3 * n} values (channels z, y, x), received ${affinities.length}` +
      `${Number.isInteger(channels) ? ` (${channels} channel${channels === 1 ? '' : 's'})` : ''}`);
  }
}

/** The scoring's native name and quantile, checked. */
export function scoringArgs(scoring: AgglomerationScoring, where: string): ['mean' | 'quantile', number] {
  if (scoring === 'mean') return ['mean', 0];
  const q = typeof scoring === 'object' && scoring !== null ? scoring.quantile : undefined;
  if (!Number.isInteger(q) || q! < 0 || q! > 100) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected scoring 'mean' or { quantile: q } with q an integer in 0..100, received ${describe(q ?? scoring)}`);
  }
  return ['quantile', q!];
}

/** Thresholds in [0, 1], sorted ascending; repeats refused. */
export function checkThresholds(thresholds: readonly number[], where: string): number[] {
  if (!Array.isArray(thresholds) || thresholds.length === 0) throw new SegvolError('ERR_ARGUMENT', `${where}: expected thresholds as a non-empty array of numbers in [0, 1], received ${describe(thresholds)}`);
  for (const t of thresholds) {
    if (typeof t !== 'number' || !(t >= 0 && t <= 1)) throw new SegvolError('ERR_ARGUMENT', `${where}: expected thresholds in [0, 1] (scores are 1 - affinity), received ${describe(t)}`);
  }
  const sorted = [...thresholds].sort((a, b) => a - b);
  sorted.forEach((t, i) => {
    if (i > 0 && t === sorted[i - 1]) throw new SegvolError('ERR_ARGUMENT', `${where}: the threshold ${t} is given twice`);
  });
  return sorted;
}

/** The affinity watershed's basins, unmerged (fragments 1..count in scan order, 0 where no edge reaches low). */
export function affinityFragments(affinities: Float32Array, dims: Dims3, options: FragmentOptions = {}): Promise<{ fragments: Int32Array; count: number }> {
  checkAffinities(affinities, dims, 'fragments');
  const low = options.low ?? defaultWatershed.low, high = options.high ?? defaultWatershed.high;
  if (!(low >= 0 && low <= high && high <= 1)) {
    throw new SegvolError('ERR_ARGUMENT', `fragments: expected watershed thresholds 0 <= low <= high <= 1, received low ${describe(low)}, high ${describe(high)}`);
  }
  return native.agglomerationFragments(affinities, [...dims], low, high);
}

/**
 * A block's region graph as bytes: the statistics of the voxel edges between its fragments,
 * and (faces: the fragment ids just before the block along z, y, x; null at the volume's
 * start) those reaching into the preceding blocks. withLevels keeps the histograms quantile
 * scoring needs.
 */
export function regionGraphBytes(fragments: Int32Array, affinities: Float32Array, dims: Dims3,
  faces: readonly [Int32Array | null, Int32Array | null, Int32Array | null], withLevels: boolean): Promise<Uint8Array> {
  checkAffinities(affinities, dims, 'regionGraph');
  return native.agglomerationRegionGraph(fragments, affinities, [...dims], [faces[0], faces[1], faces[2]], withLevels);
}

/**
 * Region graphs (bytes of regionGraphBytes, over fragments 1..fragmentCount) merged and
 * agglomerated: per threshold (ascending), a lookup table fragment id -> segment id
 * (fragmentCount + 1 entries, [0] = 0).
 */
export function agglomerateRegionGraphs(graphs: readonly Uint8Array[], fragmentCount: number, scoring: AgglomerationScoring,
  thresholds: readonly number[]): Promise<Int32Array[]> {
  if (!Number.isInteger(fragmentCount) || fragmentCount < 0 || fragmentCount > maxFragmentId) {
    throw new SegvolError('ERR_ARGUMENT', `agglomerate: expected a fragment count in 0..${maxFragmentId}, received ${describe(fragmentCount)}`);
  }
  const [kind, q] = scoringArgs(scoring, 'agglomerate');
  return native.agglomerationAgglomerateGraphs([...graphs], fragmentCount, kind, q, checkThresholds(thresholds, 'agglomerate'));
}

/** Fragments (any positive int32 ids) agglomerated over the whole volume: one segmentation per threshold (ascending). */
export function agglomerateFragments(fragments: Int32Array, affinities: Float32Array, dims: Dims3, scoring: AgglomerationScoring,
  thresholds: readonly number[]): Promise<Int32Array[]> {
  checkAffinities(affinities, dims, 'agglomerate');
  const [kind, q] = scoringArgs(scoring, 'agglomerate');
  return native.agglomerationAgglomerateVolume(fragments, affinities, [...dims], kind, q, checkThresholds(thresholds, 'agglomerate'));
}

/** ids through a lookup table (0 stays 0). */
export function relabelIds(ids: Int32Array, table: Int32Array): Int32Array {
  return native.agglomerationRelabel(ids, table);
}
