// segvol convert: a volume from one format to another (by extension), Zarr included.
import type { Command } from 'commander';
import { SegvolError } from '../../core/errors';
import { checkOutputPath, readVolumeAsync, writeVolumeAsync, type RawOptions, type StoredType } from '../../io/volume_io';
import { isZarrPath, zarrCompressors, type ZarrCompressor } from '../../io/zarr';
import { integerList, positiveIntegerOption, rawOption, terminal } from '../context';

export function registerConvert(program: Command): void {
  program.command('convert')
    .description('convert a volume between formats by extension: .nii(.gz), .mha, .tif, .npy, Zarr (a path ending in .zarr), a folder of slices (PNG output: a path ending in /)')
    .argument('<in>', 'input volume (a Zarr store: local folder or http(s) URL)')
    .argument('<out>', 'output volume')
    .option('--dtype <type>', 'stored type where the format allows: float32, uint8, int16, uint16 (NIfTI scales values that do not fit)')
    .option('--allow-lossy', 'TIFF, Zarr: round and clip values an integer type cannot hold, instead of refusing')
    .option('--raw <shape:dtype>', 'read raw binary input, e.g. 30,512,512:uint16', rawOption)
    .option('--chunks <d,h,w>', 'Zarr output: chunk shape (default 64 per axis)', integerList)
    .option('--compressor <name>', 'Zarr output: zlib (v2 default), gzip (v3 default), blosc (lz4, via numcodecs) or none')
    .option('--zarr-version <n>', 'Zarr output: 2 (default) or 3', (v) => Number(v))
    .option('--ome-levels <n>', 'OME-Zarr output (a path ending in .ome.zarr): n resolution levels, counting the full one, each half the one above, for viewers (segvol view) to read the one that fits', positiveIntegerOption)
    .option('--downsample <how>', "with --ome-levels: mean (images, default) or mode (labels: the most frequent id)", (v) => {
      if (v !== 'mean' && v !== 'mode') throw new SegvolError('ERR_ARGUMENT', `--downsample: expected mean or mode, received ${v}`);
      return v;
    })
    .action(async (input: string, output: string, o: { dtype?: StoredType; allowLossy?: boolean; raw?: RawOptions; chunks?: number[]; compressor?: string; zarrVersion?: number;
      omeLevels?: number; downsample?: 'mean' | 'mode' }) => {
      checkOutputPath(output);
      if (o.dtype !== undefined && !['float32', 'uint8', 'int16', 'uint16'].includes(o.dtype)) {
        throw new SegvolError('ERR_ARGUMENT', `--dtype: expected float32, uint8, int16 or uint16, received ${o.dtype}`);
      }
      if (o.zarrVersion !== undefined && o.zarrVersion !== 2 && o.zarrVersion !== 3) throw new SegvolError('ERR_ARGUMENT', `--zarr-version: expected 2 or 3, received ${o.zarrVersion}`);
      if (o.compressor !== undefined && !zarrCompressors.includes(o.compressor as ZarrCompressor)) {
        throw new SegvolError('ERR_ARGUMENT', `--compressor: expected ${zarrCompressors.join(', ')}, received ${o.compressor}`);
      }
      if ((o.chunks || o.compressor || o.zarrVersion) && !isZarrPath(output)) throw new SegvolError('ERR_ARGUMENT', '--chunks, --compressor and --zarr-version are for Zarr output (a path ending in .zarr)');
      if ((o.omeLevels !== undefined || o.downsample) && !/\.ome\.zarr\/*$/i.test(output)) throw new SegvolError('ERR_ARGUMENT', '--ome-levels and --downsample are for OME-Zarr output (a path ending in .ome.zarr)');
      const started = Date.now();
      const volume = await readVolumeAsync(input, o.raw ? { raw: o.raw } : {});
      const big = volume.data.length > 64 << 20;
      if (big) console.error(`read ${input} (${volume.shape.join('x')}, ${volume.dtype}) in ${terminal.duration((Date.now() - started) / 1000)}; writing`);
      if (o.chunks && o.chunks.length !== volume.shape.length) {
        if (o.chunks.length === 3 && volume.shape.length === 4) o.chunks = [1, ...o.chunks];
        else throw new SegvolError('ERR_ARGUMENT', `--chunks: expected ${volume.shape.length} sizes for a (${volume.shape.join(', ')}) volume, received ${o.chunks.length}`);
      }
      const report = await writeVolumeAsync(output, volume, {
        ...(o.dtype ? { dtype: o.dtype } : {}), ...(o.allowLossy ? { allowLossy: true } : {}), ...(o.chunks ? { chunks: o.chunks } : {}),
        ...(o.compressor ? { compressor: o.compressor as ZarrCompressor } : {}), ...(o.zarrVersion ? { zarrVersion: o.zarrVersion as 2 | 3 } : {}),
        ...(o.omeLevels ? { omeLevels: o.omeLevels } : {}), ...(o.downsample ? { downsampling: o.downsample } : {}),
      });
      const n = volume.data.length;
      const share = (k: number) => `${k} voxels (${((100 * k) / n).toFixed(1)}%)`;
      if (report.rounded || report.clipped) {
        console.error(`warning: storing as ${report.dtype} ${report.scale ? `with scale ${report.scale.slope.toPrecision(6)} and offset ${report.scale.inter.toPrecision(6)} ` : ''}` +
          `rounded ${share(report.rounded)} and clipped ${share(report.clipped)}; values changed by up to ${report.maxError.toPrecision(3)} ` +
          '(use --dtype float32 for an exact copy)');
      }
      console.log(`wrote ${output} (${volume.shape.join('x')}, ${report.dtype}, from ${volume.dtype})`);
    });
}
