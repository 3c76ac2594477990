// Any volume as a region-readable array (ZarrArray): a Zarr store is read region by region;
// another format (NIfTI, TIFF, .npy, ...) is read whole once per process and served from
// memory, so out-of-core prediction and OME-Zarr output take every input format.
import * as fs from 'node:fs';
import { SegvolError } from '../core/errors';
import { readVolume, type Volume } from './volume_io';
import { isZarrPath, openZarr, type ZarrArray } from './zarr';

/**
 * A (D, H, W) or (C, D, H, W) volume in memory, read by region like a Zarr array; `chunks` only
 * sets the slab a streaming pass reads. `exact` (the same values in float64: object ids read
 * exactly from .npy) adds readExact.
 */
export function volumeArray(location: string, volume: Volume, exact?: Float64Array): ZarrArray {
  const shape = [...volume.shape];
  const rank = shape.length;
  const strides = new Array<number>(rank);
  for (let a = rank - 1, s = 1; a >= 0; --a) {
    strides[a] = s;
    s *= shape[a]!;
  }
  const region = <T extends Float32Array | Float64Array>(source: T, out: T, start: readonly number[], size: readonly number[]): T => {
    if (start.length !== rank || size.length !== rank || start.some((s, a) => s < 0 || size[a]! < 0 || s + size[a]! > shape[a]!)) {
      throw new SegvolError('ERR_SHAPE', `${location}: region [${start.join(', ')}] + (${size.join(', ')}) leaves the volume (${shape.join(', ')})`);
    }
    const w = size[rank - 1]!;
    const rows = out.length / Math.max(1, w);
    const idx = new Array<number>(rank - 1).fill(0);
    for (let r = 0; r < rows; ++r) {
      let offset = start[rank - 1]!;
      for (let a = 0; a < rank - 1; ++a) offset += (start[a]! + idx[a]!) * strides[a]!;
      out.set(source.subarray(offset, offset + w), r * w);
      for (let a = rank - 2; a >= 0; --a) {
        if (++idx[a]! < size[a]!) break;
        idx[a] = 0;
      }
    }
    return out;
  };
  const count = (size: readonly number[]) => size.reduce((a, b) => a * b, 1);
  return {
    location, shape, dtype: volume.dtype, chunks: shape.map((n, a) => (a < rank - 3 ? 1 : Math.min(n, 64))),
    ...(volume.spacing ? { spacing: volume.spacing } : {}), ...(volume.unit ? { unit: volume.unit } : {}),
    read: (start, size) => Promise.resolve(region(volume.data, new Float32Array(count(size)), start, size)),
    ...(exact ? { readExact: (start: readonly number[], size: readonly number[]) => Promise.resolve(region(exact, new Float64Array(count(size)), start, size)) } : {}),
  };
}

let cached: { location: string; mtime: number; array: ZarrArray } | undefined;

/** Opens a volume of any format for region reads (a non-Zarr file is read whole, and kept for the next call). */
export async function openVolume(location: string): Promise<ZarrArray> {
  if (isZarrPath(location)) return openZarr(location);
  let mtime: number;
  try {
    mtime = fs.statSync(location).mtimeMs;
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `cannot read ${location}: ${(error as Error).message}`);
  }
  if (cached?.location !== location || cached.mtime !== mtime) cached = { location, mtime, array: volumeArray(location, readVolume(location)) };
  return cached.array;
}
