// The volumes a viewer shows, opened for region reads. A Zarr store (and each level of an
// OME-Zarr pyramid) is read region by region, so a slice costs the chunks it crosses and
// no more; every read chunk is counted (GET /api/stats). Other formats are read whole
// once and served from memory. URLs never name files: a layer is found by its id.
import { SegvolError } from '../../core/errors';
import { readVolume } from '../../io/volume_io';
import { volumeArray } from '../../io/volume_array';
import { isZarrPath, openZarr, type ZarrArray } from '../../io/zarr';

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
  keys: string[];
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
  stats: { chunkReads: number; keys: Set<string> };
}

export interface LayerSource {
  id: string;
  role: LayerRole;
  location: string;
  channelNames?: string[];
}

const baseName = (location: string) => location.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? location;

/** Opens a layer's levels: their metadata only (no chunk is read). */
export async function openLayer(source: LayerSource): Promise<Layer> {
  const stats = { chunkReads: 0, keys: new Set<string>() };
  const onChunk = (key: string) => {
    stats.chunkReads += 1;
    stats.keys.add(key);
  };
  let levels: ZarrArray[];
  if (isZarrPath(source.location)) {
    const first = await openZarr(source.location, { onChunk });
    levels = [first];
    for (let k = 1; k < (first.multiscale?.scales.length ?? 1); ++k) levels.push(await openZarr(source.location, { onChunk, level: k }));
  } else {
    levels = [volumeArray(source.location, readVolume(source.location))];
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
  const scales = top.multiscale?.scales;
  const channelNames = Array.from({ length: channels }, (_, c) => source.channelNames?.[c] ?? (channels > 1 ? `${baseName(source.location)}[${c}]` : baseName(source.location)));
  return {
    id: source.id, role: source.role, name: baseName(source.location), channels, channelNames, dtype: top.dtype,
    spacing: top.spacing ?? null, unit: top.unit ?? null, chunks: isZarrPath(source.location) ? top.chunks : null, stats,
    levels: levels.map((array, k) => ({
      array, shape: spatial(array),
      // Factors from the OME scales where given, else from the shapes.
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
}

/** Parses and checks a slice query against the layer; every failure is ERR_ARGUMENT naming the range. */
export function sliceQuery(layer: Layer, params: URLSearchParams): SliceQuery {
  const int = (name: string, low: number, high: number, fallback?: number): number => {
    const text = params.get(name);
    if (text === null && fallback !== undefined) return fallback;
    const v = Number(text);
    if (text === null || text.trim() === '' || !Number.isInteger(v) || v < low || v > high) {
      throw new SegvolError('ERR_ARGUMENT', `${name} must be an integer in ${low}..${high} for layer ${layer.id}, received ${JSON.stringify(text)}`);
    }
    return v;
  };
  const level = int('level', 0, layer.levels.length - 1, 0);
  const axis = int('axis', 0, 2) as 0 | 1 | 2;
  const channel = int('channel', 0, layer.channels - 1, 0);
  const index = int('index', 0, layer.levels[0]!.shape[axis] - 1);
  const [rows, cols] = planeShape(layer.levels[level]!.shape, axis);
  const r0 = int('r0', 0, rows - 1, 0), r1 = int('r1', r0 + 1, rows, rows);
  const c0 = int('c0', 0, cols - 1, 0), c1 = int('c1', c0 + 1, cols, cols);
  return { channel, axis, index, level, r0, r1, c0, c1 };
}

/** (rows, cols) of a plane normal to `axis` of a (D, H, W) volume. */
export function planeShape(shape: Triple, axis: 0 | 1 | 2): [number, number] {
  return axis === 0 ? [shape[1], shape[2]] : axis === 1 ? [shape[0], shape[2]] : [shape[0], shape[1]];
}

/** The region of a slice: (rows, cols) float32 values in row order, with what the page needs to place it. */
export async function readSlice(layer: Layer, q: SliceQuery): Promise<{ data: Float32Array; rows: number; cols: number; factor: Triple }> {
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
  const data = await level.array.read(channelAxis ? [q.channel, ...start] : start, channelAxis ? [1, ...size] : size);
  return { data, rows: q.r1 - q.r0, cols: q.c1 - q.c0, factor: level.factor };
}

/** Every channel's value at one level-0 voxel. */
export async function readVoxel(layer: Layer, at: Triple): Promise<number[]> {
  const array = layer.levels[0]!.array;
  if (array.shape.length === 4) return [...(await array.read([0, ...at], [layer.channels, 1, 1, 1]))];
  return [...(await array.read(at, [1, 1, 1]))];
}

export function layerStats(layer: Layer): LayerStats {
  return { chunkReads: layer.stats.chunkReads, distinctChunks: layer.stats.keys.size, keys: [...layer.stats.keys].sort() };
}

/** What the page is told of a layer. */
export function describeLayer(layer: Layer): object {
  return {
    id: layer.id, role: layer.role, name: layer.name, channels: layer.channelNames, dtype: layer.dtype,
    spacing: layer.spacing, unit: layer.unit, chunks: layer.chunks, shape: layer.levels[0]!.shape,
    levels: layer.levels.map((l) => ({ shape: l.shape, factor: l.factor })),
  };
}
