// OME-Zarr (OME-NGFF) multiscale images: the group metadata (NGFF 0.4 on Zarr v2, 0.5 on
// Zarr v3), the levels of a pyramid and how each is computed from the one above it, chunk by
// chunk: labels by the most frequent value of each 2x2(x2) group (ties to the smaller value),
// anything else by the mean. Each chunk of a level is written whole (a temporary file renamed)
// and marked done, so a level is resumable like the blocks that wrote level 0.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { writeAtomic, type ZarrArray, type ZarrWriter } from './zarr';

export type OmeVersion = '0.4' | '0.5';
export type Downsampling = 'mode' | 'mean';

/** One level: its array's path in the group, its spatial shape and its voxel size relative to level 0. */
export interface OmeLevel {
  path: string;
  shape: [number, number, number];
  factor: [number, number, number];
}

/**
 * The levels of a pyramid over a (D, H, W) grid. Each level halves y and x (rounding up); it
 * halves z too when the current level's z voxel is no larger than its y and x voxels (an
 * anisotropic EM stack keeps its slices until the in-plane voxels have grown to the slice
 * thickness; without a known spacing every axis halves). Levels are added while the last one
 * is wider or taller than one chunk, or until `levels` (counting level 0) when it is given.
 */
export function pyramidLevels(dims: readonly [number, number, number], chunks: readonly [number, number, number],
  spacing: readonly [number, number, number] = [1, 1, 1], levels?: number): OmeLevel[] {
  if (levels !== undefined && (!Number.isInteger(levels) || levels < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `OME-Zarr: expected levels as a positive integer, received ${levels}`);
  }
  const out: OmeLevel[] = [{ path: '0', shape: [...dims], factor: [1, 1, 1] }];
  for (;;) {
    const last = out[out.length - 1]!;
    const [d, h, w] = last.shape;
    if (levels !== undefined ? out.length >= levels : !(h > chunks[1] || w > chunks[2])) break;
    if (h === 1 && w === 1 && d === 1) break;
    const size = last.factor.map((f, a) => f * spacing[a]!);
    const z = d > 1 && size[0]! <= Math.min(size[1]!, size[2]!) ? 2 : 1;
    const y = h > 1 ? 2 : 1, x = w > 1 ? 2 : 1;
    out.push({
      path: String(out.length), shape: [Math.ceil(d / z), Math.ceil(h / y), Math.ceil(w / x)],
      factor: [last.factor[0] * z, last.factor[1] * y, last.factor[2] * x],
    });
  }
  return out;
}

export interface OmeImage {
  version: OmeVersion;
  name: string;
  levels: readonly OmeLevel[];
  /** Level 0's voxel size (z, y, x); [1, 1, 1] when unknown. */
  spacing: readonly [number, number, number];
  /** The spatial unit ('micrometer', 'millimeter'); none when unknown. */
  unit?: string;
  /** A leading channel axis (class probabilities: c, z, y, x). */
  channels: boolean;
  downsampling: Downsampling;
  /** A label image (class ids): adds OME-Zarr's image-label metadata. */
  label: boolean;
}

/** The axes of the image's arrays: (c,) z, y, x. */
export function omeAxes(image: Pick<OmeImage, 'channels' | 'unit'>): Array<{ name: string; type: string; unit?: string }> {
  const space = ['z', 'y', 'x'].map((name) => ({ name, type: 'space', ...(image.unit ? { unit: image.unit } : {}) }));
  return image.channels ? [{ name: 'c', type: 'channel' }, ...space] : space;
}

/** The group's attributes: multiscales (axes, datasets with their scale) and image-label for labels. */
export function omeAttributes(image: OmeImage): Record<string, unknown> {
  const multiscale = {
    ...(image.version === '0.4' ? { version: '0.4' } : {}),
    name: image.name,
    axes: omeAxes(image),
    datasets: image.levels.map((level) => ({
      path: level.path,
      coordinateTransformations: [{ type: 'scale', scale: [...(image.channels ? [1] : []), ...level.factor.map((f, a) => f * image.spacing[a]!)] }],
    })),
    type: image.downsampling,
    metadata: {
      description: image.downsampling === 'mode' ? 'each level from the one above: the most frequent value of each 2x2 (or 2x2x2) group, ties to the smaller'
        : 'each level from the one above: the mean of each 2x2 (or 2x2x2) group',
      method: 'segvol',
    },
  };
  const label = image.label ? { 'image-label': { ...(image.version === '0.4' ? { version: '0.4' } : {}) } } : {};
  return image.version === '0.4' ? { multiscales: [multiscale], ...label } : { ome: { version: '0.5', multiscales: [multiscale], ...label } };
}

/** Writes the group's metadata: .zgroup and .zattrs (Zarr v2, NGFF 0.4) or zarr.json (Zarr v3, NGFF 0.5). */
export function writeOmeGroup(dir: string, image: OmeImage): void {
  fs.mkdirSync(dir, { recursive: true });
  const attributes = omeAttributes(image);
  if (image.version === '0.4') {
    writeAtomic(path.join(dir, '.zgroup'), JSON.stringify({ zarr_format: 2 }, null, 2));
    writeAtomic(path.join(dir, '.zattrs'), JSON.stringify(attributes, null, 2));
  } else {
    writeAtomic(path.join(dir, 'zarr.json'), JSON.stringify({ zarr_format: 3, node_type: 'group', attributes }, null, 2));
  }
}

/** The value of one group: the most frequent (ties to the smaller) or the mean. */
function reduce(values: number[], how: Downsampling): number {
  if (how === 'mean') {
    let s = 0;
    for (const v of values) s += v;
    return s / values.length;
  }
  let best = values[0]!, bestCount = 0;
  for (const v of values) {
    let n = 0;
    for (const u of values) if (u === v) ++n;
    if (n > bestCount || (n === bestCount && v < best)) {
      best = v;
      bestCount = n;
    }
  }
  return best;
}

/**
 * Writes every chunk of `target` (a level) from `source` (the level above), `factor` per axis
 * of the arrays (1 on a channel axis), skipping chunks already marked done in `doneDir` (unless
 * resume is false). Memory: one target chunk and its source region.
 */
export async function writeLevel(source: ZarrArray, target: ZarrWriter, factor: readonly number[], how: Downsampling, doneDir: string,
  resume = true): Promise<{ computed: number; skipped: number }> {
  const rank = target.shape.length;
  const grid = target.grid;
  const total = grid.reduce((a, b) => a * b, 1);
  fs.mkdirSync(doneDir, { recursive: true });
  let computed = 0, skipped = 0;
  for (let k = 0; k < total; ++k) {
    const marker = path.join(doneDir, String(k));
    if (resume && fs.existsSync(marker)) {
      ++skipped;
      continue;
    }
    const coords = new Array<number>(rank);
    for (let a = rank - 1, rest = k; a >= 0; --a) {
      coords[a] = rest % grid[a]!;
      rest = Math.floor(rest / grid[a]!);
    }
    const start = coords.map((c, a) => c * target.chunks[a]!);
    const size = start.map((s, a) => Math.min(target.chunks[a]!, target.shape[a]! - s));
    const from = start.map((s, a) => s * factor[a]!);
    const span = from.map((f, a) => Math.min(size[a]! * factor[a]!, source.shape[a]! - f));
    const src = await source.read(from, span);
    const count = size.reduce((a, b) => a * b, 1);
    const out = new Float64Array(count);
    const srcStride = new Array<number>(rank);
    for (let a = rank - 1, s = 1; a >= 0; --a) {
      srcStride[a] = s;
      s *= span[a]!;
    }
    const idx = new Array<number>(rank).fill(0);
    const group: number[] = [];
    for (let i = 0; i < count; ++i) {
      // The source voxels of target voxel idx: [idx * f, min((idx + 1) * f, span)) per axis.
      group.length = 0;
      const lo = idx.map((v, a) => v * factor[a]!), hi = idx.map((v, a) => Math.min((v + 1) * factor[a]!, span[a]!));
      const at = [...lo];
      for (;;) {
        let offset = 0;
        for (let a = 0; a < rank; ++a) offset += at[a]! * srcStride[a]!;
        group.push(src[offset]!);
        let a = rank - 1;
        while (a >= 0 && ++at[a]! >= hi[a]!) {
          at[a] = lo[a]!;
          --a;
        }
        if (a < 0) break;
      }
      out[i] = reduce(group, how);
      for (let a = rank - 1; a >= 0; --a) {
        if (++idx[a]! < size[a]!) break;
        idx[a] = 0;
      }
    }
    await target.writeChunk(coords, out);
    writeAtomic(marker, '');
    ++computed;
  }
  return { computed, skipped };
}
