// Where segmentations go. A Zarr output `seg.zarr` is a group of int32 arrays, each readable
// by any segvol command as the volume path `seg.zarr/<array>`:
//   seg.zarr/fragments            the fragments (ids unique over the volume)
//   seg.zarr/segmentation_<t>     the segmentation at threshold t (as written by String(t): 0.3, 0.05)
//   seg.zarr/.segvol/             the block-wise run's plan, done markers, block graphs, lookup tables
// Another output path `seg.<ext>` (.nii.gz, .npy, .tif, ...) gets seg_fragments.<ext> and
// seg_<t>.<ext> beside it (float32 values, exact for ids up to 2^24: use Zarr beyond).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { writeVolumeAsync } from '../io/volume_io';
import { isZarrPath, writeAtomic, ZarrWriter, type ZarrCompressor } from '../io/zarr';

export const fragmentsArray = 'fragments';
export const segmentationArray = (threshold: number): string => `segmentation_${threshold}`;

/** Makes `out` a Zarr group (so readers see its arrays as members). */
export function writeGroup(out: string): void {
  fs.mkdirSync(out, { recursive: true });
  if (!fs.existsSync(path.join(out, '.zgroup'))) writeAtomic(path.join(out, '.zgroup'), JSON.stringify({ zarr_format: 2 }));
}

/** The file of one volume of a non-Zarr output: seg.nii.gz -> seg_<name>.nii.gz. */
export function siblingPath(out: string, name: string): string {
  const ext = ['.nii.gz', '.nii', '.mha', '.tiff', '.tif', '.npy'].find((e) => out.toLowerCase().endsWith(e));
  if (!ext) throw new SegvolError('ERR_ARGUMENT', `${out}: expected an output ending in .zarr, .nii, .nii.gz, .mha, .tif, .tiff or .npy`);
  return `${out.slice(0, out.length - ext.length)}_${name}${ext}`;
}

/** Where a threshold's segmentation (or, with 'fragments', the fragments) of an output lives, as a volume path. */
export function outputVolumePath(out: string, what: number | 'fragments'): string {
  const name = what === 'fragments' ? fragmentsArray : segmentationArray(what);
  if (isZarrPath(out)) return path.join(out, name);
  return siblingPath(out, what === 'fragments' ? 'fragments' : String(what));
}

/**
 * Writes in-memory results (fragments, one segmentation per threshold) in the layout above.
 * Zarr arrays are int32 with chunks of at most `chunk` per axis.
 */
export async function writeSegmentations(out: string, dims: readonly [number, number, number], fragments: Int32Array, thresholds: readonly number[],
  segmentations: readonly Int32Array[], options: { compressor?: ZarrCompressor; chunk?: number; spacing?: [number, number, number] } = {}): Promise<string[]> {
  const volumes: Array<[number | 'fragments', Int32Array]> = [['fragments', fragments], ...thresholds.map((t, i) => [t, segmentations[i]!] as [number, Int32Array])];
  const written: string[] = [];
  if (isZarrPath(out)) {
    writeGroup(out);
    const chunks = dims.map((n) => Math.min(n, options.chunk ?? 64));
    for (const [what, ids] of volumes) {
      const dir = outputVolumePath(out, what);
      const writer = ZarrWriter.create(dir, { shape: dims, chunks, dtype: 'int32', compressor: options.compressor ?? 'zlib',
        ...(options.spacing ? { attributes: { segvol: { spacing: options.spacing } } } : {}) });
      const grid = writer.grid;
      for (let cz = 0; cz < grid[0]!; ++cz) for (let cy = 0; cy < grid[1]!; ++cy) for (let cx = 0; cx < grid[2]!; ++cx) {
        const start = [cz * chunks[0]!, cy * chunks[1]!, cx * chunks[2]!];
        const size = start.map((s, a) => Math.min(chunks[a]!, dims[a]! - s));
        const values = new Int32Array(size[0]! * size[1]! * size[2]!);
        for (let z = 0, i = 0; z < size[0]!; ++z) for (let y = 0; y < size[1]!; ++y, i += size[2]!) {
          const from = ((start[0]! + z) * dims[1] + start[1]! + y) * dims[2] + start[2]!;
          values.set(ids.subarray(from, from + size[2]!), i);
        }
        await writer.writeChunk([cz, cy, cx], values);
      }
      written.push(dir);
    }
    return written;
  }
  for (const [what, ids] of volumes) {
    let max = 0;
    for (const v of ids) if (v > max) max = v;
    if (max > 2 ** 24) throw new SegvolError('ERR_ARGUMENT', `${out}: ids up to ${max} do not fit float32 volumes exactly; write a .zarr output (int32)`);
    const file = outputVolumePath(out, what);
    await writeVolumeAsync(file, { data: Float32Array.from(ids), shape: [...dims], dtype: 'int32', ...(options.spacing ? { spacing: options.spacing } : {}) });
    written.push(file);
  }
  return written;
}
