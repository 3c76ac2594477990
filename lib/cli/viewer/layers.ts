// The volumes a viewer shows, opened for region reads. A Zarr store (and each level of an
// OME-Zarr pyramid) is read region by region, so a slice costs the chunks it crosses and
// no more; every read chunk is counted (GET /api/stats). Other formats are read whole
// once and served from memory. URLs never name files: a layer is found by its id.
import { SegvolError } from '../../core/errors';
import { readBytes } from '../../io/binary';
import { parseNpyExact } from '../../io/npy';
import { readVolume } from '../../io/volume_io';
import { volumeArray } from '../../io/volume_array';
import { isZarrPath, openZarr, type ZarrArray } from '../../io/zarr';
import type { ChunkBytesCache } from '../../io/chunk_store';

export type LayerRole = 'image' | 'labels' | 'pred' | 'prob';
export type Triple = [number, number, number];

export interface LayerLevel {
  /** (D, H, W) of this level. */
  shape: Triple;
  /** Level-0 voxels per voxel of this level, (z, y, x). */
  factor: Triple;
  array: ZarrArray;
}

export interface LayerStats {
  chunkReads: number;
  distinctChunks: number;
  keys?: string[];
}

export interface Layer {
  id: string;
  role: LayerRole;
  name: string;
  /** Channels (modalities, or a probability map's classes); 1 for a (D, H, W) volume. */
  channels: number;
  channelNames: string[];
  dtype: string;
  spacing: Triple | null;
  unit: string | null;
  chunks: number[] | null;
  levels: LayerLevel[];
  /** Object ids, read and served exactly (float64): labels and predictions. */
  ids: boolean;
  stats: { chunkReads: number; keys: Set<string> };
}

export interface LayerSource {
  id: string;
  role: LayerRole;
  location: string;
  channelNames?: string[];
}

const baseName = (location: string) => location.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? location;

/** Opens a layer's levels: their metadata only (no chunk is read). Chunk bytes go through `cache` when given. */
export async function openLayer(source: LayerSource, cache?: ChunkBytesCache): Promise<Layer> {
  const stats = { chunkReads: 0, keys: new Set<string>() };
  const onChunk = (key: string) => {
    stats.chunkReads += 1;
    stats.keys.add(key);
  };
  let levels: ZarrArray[];
  if (isZarrPath(source.location)) {
    const first = await openZarr(source.location, { onChunk, ...(cache ? { cache } : {}) });
    levels = [first];
    for (let k = 1; k < (first.multiscale?.scales.length ?? 1); ++k) levels.push(await openZarr(source.location, { onChunk, level: k, ...(cache ? { cache } : {}) }));
  } else {
    const volume = readVolume(source.location);
    // .npy ids are read again exactly: float32 holds integers exactly only up to 2^24.
    const exact = source.role !== 'image' && source.role !== 'prob' && source.location.toLowerCase().endsWith('.npy')
      ? parseNpyExact(readBytes(source.location), source.location).data : undefined;
    levels = [volumeArray(source.location, volume, exact)];
  }
  const top = levels[0]!;
  if (top.shape.length !== 3 && top.shape.length !== 4) {
    throw new SegvolError('ERR_SHAPE', `${source.location}: expected a (D, H, W) or (C, D, H, W) volume, received (${top.shape.join(', ')}); view 2D images as (1, H, W)`);
  }
  const spatial = (a: ZarrArray) => a.shape.slice(-3) as Triple;
  const channels = top.shape.length === 4 ? top.shape[0]! : 1;
  if (source.role !== 'image' && source.role !== 'prob' && channels !== 1) {
    throw new SegvolError('ERR_SHAPE', `${source.location}: ${source.role} must be one (D, H, W) volume of ids, received (${top.shape.join(', ')})`);
  }
  // Factors from the OME scales where every level has one, else from the shapes.
  const given = top.multiscale?.scales;
  const scales = given && given.every((v) => v !== null) ? given as Triple[] : undefined;
  const channelNames = Array.from({ length: channels }, (_, c) => source.channelNames?.[c] ?? (channels > 1 ? `${baseName(source.location)}[${c}]` : baseName(source.location)));
  return {
    id: source.id, role: source.role, name: baseName(source.location), channels, channelNames, dtype: top.dtype,
    spacing: top.spacing ?? null, unit: top.unit ?? null, chunks: isZarrPath(source.location) ? top.chunks : null, stats,
    ids: source.role === 'labels' || source.role === 'pred',
    levels: levels.map((array, k) => ({
      array, shape: spatial(array),
      factor: (scales ? scales[k]!.map((s, a) => s / scales[0]![a]!) : spatial(array).map((n, a) => spatial(top)[a]! / n)) as Triple,
    })),
  };
}

export interface SliceQuery {
  channel: number;
  /** The axis the plane is normal to: 0 (z, an (H, W) plane), 1 (y, (D, W)) or 2 (x, (D, H)). */
  axis: 0 | 1 | 2;
  /** The plane's index in level-0 voxels. */
  index: number;
  level: number;
  /** Rows [r0, r1) and columns [c0, c1) of the plane, in the level's voxels. */
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  /** Every step-th row and column (a zoomed-out view of a volume without a coarse enough level). */
  step: number;
}

/** The most values one slice request returns: a 4096 x 4096 plane. */
export const sliceValueLimit = 4096 * 4096;

/**
 * An integer query parameter in low..high (`fallback` when absent, if given); anything else is
 * ERR_ARGUMENT naming the range (`where` adds what it is for).
 */
export function integerParam(params: URLSearchParams, name: string, low: number, high: number, where = '', fallback?: number): number {
  const text = params.get(name);
  if (text === null && fallback !== undefined) return fallback;
  const v = Number(text);
  if (text === null || text.trim() === '' || !Number.isInteger(v) || v < low || v > high) {
    throw new SegvolError('ERR_ARGUMENT', `${name} must be an integer in ${low}..${high}${where}, received ${JSON.stringify(text)}`);
  }
  return v;
}

/** Parses and checks a slice query against the layer; every failure is ERR_ARGUMENT naming the range. */
export function sliceQuery(layer: Layer, params: URLSearchParams): SliceQuery {
  const int = (name: string, low: number, high: number, fallback?: number) => integerParam(params, name, low, high, ` for layer ${layer.id}`, fallback);
  const level = int('level', 0, layer.levels.length - 1, 0);
  const axis = int('axis', 0, 2) as 0 | 1 | 2;
  const channel = int('channel', 0, layer.channels - 1, 0);
  const index = int('index', 0, layer.levels[0]!.shape[axis] - 1);
  const [rows, cols] = planeShape(layer.levels[level]!.shape, axis);
  const r0 = int('r0', 0, rows - 1, 0), r1 = int('r1', r0 + 1, rows, rows);
  const c0 = int('c0', 0, cols - 1, 0), c1 = int('c1', c0 + 1, cols, cols);
  const step = int('step', 1, 4096, 1);
  const values = Math.ceil((r1 - r0) / step) * Math.ceil((c1 - c0) / step);
  if (values > sliceValueLimit) {
    throw new SegvolError('ERR_ARGUMENT', `a slice of ${Math.ceil((r1 - r0) / step)} x ${Math.ceil((c1 - c0) / step)} values was asked of layer ${layer.id}; ` +
      `at most ${sliceValueLimit} are served: ask a smaller region, a coarser level or a larger step`);
  }
  return { channel, axis, index, level, r0, r1, c0, c1, step };
}

/** (rows, cols) of a plane normal to `axis` of a (D, H, W) volume. */
export function planeShape(shape: Triple, axis: 0 | 1 | 2): [number, number] {
  return axis === 0 ? [shape[1], shape[2]] : axis === 1 ? [shape[0], shape[2]] : [shape[0], shape[1]];
}

/**
 * The region of a slice: (rows, cols) values in row order, every step-th row and column of
 * the region, with what the page needs to place it. Ids come as float64 (exact), the rest as float32.
 */
export async function readSlice(layer: Layer, q: SliceQuery): Promise<{ data: Float32Array | Float64Array; rows: number; cols: number; factor: Triple }> {
  const level = layer.levels[q.level]!;
  const planeIndex = Math.min(level.shape[q.axis] - 1, Math.floor(q.index / level.factor[q.axis]));
  const start: number[] = [0, 0, 0], size: number[] = [0, 0, 0];
  const [rowAxis, colAxis] = q.axis === 0 ? [1, 2] : q.axis === 1 ? [0, 2] : [0, 1];
  start[q.axis] = planeIndex;
  size[q.axis] = 1;
  start[rowAxis] = q.r0;
  size[rowAxis] = q.r1 - q.r0;
  start[colAxis] = q.c0;
  size[colAxis] = q.c1 - q.c0;
  const channelAxis = level.array.shape.length === 4;
  const from = channelAxis ? [q.channel, ...start] : start, extent = channelAxis ? [1, ...size] : size;
  const data = layer.ids && level.array.readExact ? await level.array.readExact(from, extent) : await level.array.read(from, extent);
  const rows = q.r1 - q.r0, cols = q.c1 - q.c0;
  if (q.step === 1) return { data, rows, cols, factor: level.factor };
  const sampledRows = Math.ceil(rows / q.step), sampledCols = Math.ceil(cols / q.step);
  const sampled = new (data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(sampledRows * sampledCols);
  for (let i = 0; i < sampledRows; ++i) for (let j = 0; j < sampledCols; ++j) sampled[i * sampledCols + j] = data[i * q.step * cols + j * q.step]!;
  return { data: sampled, rows: sampledRows, cols: sampledCols, factor: level.factor };
}

/** Every channel's value at one level-0 voxel. */
export async function readVoxel(layer: Layer, at: Triple): Promise<number[]> {
  const array = layer.levels[0]!.array;
  if (array.shape.length === 4) return [...(await array.read([0, ...at], [layer.channels, 1, 1, 1]))];
  return [...(layer.ids && array.readExact ? await array.readExact(at, [1, 1, 1]) : await array.read(at, [1, 1, 1]))];
}

/** Chunk reads of a layer; the keys themselves only when asked (a large store reads thousands). */
export function layerStats(layer: Layer, withKeys: boolean): LayerStats {
  return { chunkReads: layer.stats.chunkReads, distinctChunks: layer.stats.keys.size, ...(withKeys ? { keys: [...layer.stats.keys].sort() } : {}) };
}

/** What the page is told of a layer. */
export function describeLayer(layer: Layer): object {
  return {
    id: layer.id, role: layer.role, name: layer.name, channels: layer.channelNames, dtype: layer.dtype,
    spacing: layer.spacing, unit: layer.unit, chunks: layer.chunks, shape: layer.levels[0]!.shape,
    levels: layer.levels.map((l) => ({ shape: l.shape, factor: l.factor })),
  };
}
