// segvol inspect: shape, stored type, spacing and value range of a volume.
import type { Command } from 'commander';
import { describeVolume, describeZarr, readVolume, type RawOptions } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { rawOption } from '../context';

export function registerInspect(program: Command): void {
  program.command('inspect')
    .description('print shape, stored type, spacing and value range of a volume (Zarr: also its chunks, read chunk slab by chunk slab)')
    .argument('<file>', 'volume (.nii, .nii.gz, .mha, .tif, .npy, .png, Zarr, a folder of slices, or raw data with --raw)')
    .option('--raw <shape:dtype>', 'read raw binary data, e.g. 30,512,512:uint16', rawOption)
    .action(async (file: string, o: { raw?: RawOptions }) => {
      const d = isZarrPath(file) ? await describeZarr(file) : { ...describeVolume(readVolume(file, o.raw ? { raw: o.raw } : {})), chunks: undefined };
      console.log(`${file}\n  shape    ${d.shape.join(' x ')}${d.chunks ? `\n  chunks   ${d.chunks.join(' x ')}` : ''}\n  dtype    ${d.dtype}\n  spacing  ${d.spacing ? d.spacing.map((v) => Number(v.toPrecision(6))).join(' x ') : 'unknown'}` +
        `\n  range    ${d.min} .. ${d.max} (mean ${d.mean.toFixed(4)})${d.nan ? `\n  NaN      ${d.nan} voxels` : ''}`);
    });
}
