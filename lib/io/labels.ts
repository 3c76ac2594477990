// Object ids read exactly. Volumes are read as float32 elsewhere, which holds integers
// exactly only up to 2^24 = 16777216: two neurons with ids above that could merge. .npy
// and Zarr label volumes of any integer type (64-bit included) are read here as float64,
// exact up to 2^53; other formats go through float32 and are refused when an id is large
// enough to have been rounded.
import { SegvolError } from '../core/errors';
import { readBytes } from './binary';
import { parseNpyExact } from './npy';
import { openVolume } from './volume_array';
import { readVolumeAsync } from './volume_io';
import { isZarrPath, openZarr } from './zarr';

/** The largest integer float32 holds exactly, with all below it. */
export const float32ExactIntegers = 2 ** 24;

export interface LabelVolume {
  shape: number[];
  /** Object ids, exact. */
  data: Float64Array;
}

function checkRounding(data: ArrayLike<number>, location: string): void {
  for (let i = 0; i < data.length; ++i) {
    if (Math.abs(data[i]!) > float32ExactIntegers) {
      throw new SegvolError('ERR_FORMAT', `${location}: voxel ${i} holds the id ${data[i]}, above 16777216 (2^24), which this format is read through float32 ` +
        'and may have rounded; store the labels as .npy or Zarr (read exactly), or renumber them (relabelSequential)');
    }
  }
}

/** A whole label volume, exactly (see the top of this file). */
export async function readLabels(location: string): Promise<LabelVolume> {
  if (location.toLowerCase().endsWith('.npy')) return parseNpyExact(readBytes(location), location);
  if (isZarrPath(location)) {
    const array = await openZarr(location);
    return { shape: array.shape, data: await array.readExact!(array.shape.map(() => 0), array.shape) };
  }
  const volume = await readVolumeAsync(location);
  checkRounding(volume.data, location);
  return { shape: volume.shape, data: Float64Array.from(volume.data) };
}

/** Frame z of a label volume (D, H, W) (or the one frame of (H, W) labels), exactly. */
export async function readLabelFrame(location: string, z = 0): Promise<LabelVolume> {
  if (isZarrPath(location)) {
    const array = await openZarr(location);
    const s = array.shape;
    if (s.length === 2) return { shape: s, data: await array.readExact!([0, 0], s) };
    if (s.length !== 3) throw new SegvolError('ERR_SHAPE', `${location}: expected labels (D, H, W) or one frame (H, W), received (${s.join(', ')})`);
    return { shape: s.slice(1), data: await array.readExact!([z, 0, 0], [1, s[1]!, s[2]!]) };
  }
  const all = location.toLowerCase().endsWith('.npy') ? await readLabels(location) : await (async () => {
    const array = await openVolume(location);
    const data = await array.read(array.shape.map(() => 0), array.shape);
    checkRounding(data, location);
    return { shape: array.shape, data: Float64Array.from(data) };
  })();
  const s = all.shape;
  if (s.length === 2) return all;
  if (s.length !== 3) throw new SegvolError('ERR_SHAPE', `${location}: expected labels (D, H, W) or one frame (H, W), received (${s.join(', ')})`);
  const plane = s[1]! * s[2]!;
  return { shape: s.slice(1), data: all.data.slice(z * plane, (z + 1) * plane) };
}

/**
 * Ids renumbered 1, 2, ... in order of their value (0 stays 0), as Int32Array: object ids
 * any network or measure of segvol takes. Returns the ids and how many objects there are.
 */
export function relabelSequential(ids: ArrayLike<number>): { labels: Int32Array; count: number } {
  const distinct = [...new Set(Array.from(ids))].filter((v) => v !== 0).sort((a, b) => a - b);
  if (distinct.length > 2147483647) throw new SegvolError('ERR_ARGUMENT', `relabelSequential: ${distinct.length} objects do not fit 32-bit ids`);
  const index = new Map(distinct.map((v, i) => [v, i + 1]));
  const labels = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; ++i) labels[i] = ids[i] === 0 ? 0 : index.get(ids[i]!)!;
  return { labels, count: distinct.length };
}
