// Reading and writing volumes by file extension: NIfTI (.nii, .nii.gz), MetaImage (.mha), TIFF
// stacks (.tif, .tiff), NumPy (.npy), folders of single-page TIFF/PNG slices,
// PNG images, and raw binary with a given shape and dtype. Values come back as
// float32 after the format's own scaling, shape (D, H, W) or (C, D, H, W).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { describe, SegvolError } from '../core/errors';
import { parseMetaImage, serializeMetaImage } from './metaimage';
import { parseNifti, serializeNifti } from './nifti';
import { parseNpy, writeNpy } from './npy';
import { encodeGrayPng } from './png';
import { parseTiff, serializeTiff } from './tiff';
import { isZarrPath, openZarr, readZarr, writeZarr, ZarrWriter, type ZarrCompressor } from './zarr';
import { decodeSamples, readBytes, sampleBytes } from './binary';
import { omeAxes, pyramidLevels, writeLevel, writeOmeGroup } from './ome_zarr';

export interface Volume {
  data: Float32Array;
  /** (D, H, W), or (C, D, H, W) for several channels / time points. */
  shape: number[];
  /** (z, y, x) voxel size where the format has it. */
  spacing?: [number, number, number];
  /** The spacing's unit where the format names it: 'millimeter', 'micrometer' or 'meter' (NIfTI's xyzt_units, OME-Zarr's axes). */
  unit?: string;
  affine?: number[][];
  /** The stored type, e.g. 'uint16'. */
  dtype: string;
}

export interface RawOptions {
  shape: readonly number[];
  dtype: 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
  littleEndian?: boolean;
}


function parsePng(buffer: Buffer, source: string): { data: Float32Array; shape: [number, number, number]; dtype: string } {
  let png;
  try {
    png = PNG.sync.read(buffer, { skipRescale: true });
  } catch (error) {
    throw new SegvolError('ERR_FORMAT', `PNG ${source}: cannot decode (${(error as Error).message})`);
  }
  // pngjs expands every image to RGBA; a grayscale image has equal channels: take red.
  const n = png.width * png.height;
  const data = new Float32Array(n);
  const sixteen = png.depth === 16;
  for (let i = 0; i < n; ++i) data[i] = sixteen ? png.data.readUInt16BE(i * 8) : png.data[i * 4]!;
  return { data, shape: [1, png.height, png.width], dtype: sixteen ? 'uint16' : 'uint8' };
}

function readRaw(buffer: Buffer, options: RawOptions, source: string): Volume {
  const count = options.shape.reduce((a, b) => a * b, 1);
  const size = sampleBytes[options.dtype];
  if (!size) throw new SegvolError('ERR_ARGUMENT', `raw ${source}: unsupported dtype ${describe(options.dtype)}`);
  if (buffer.length !== count * size) {
    throw new SegvolError('ERR_FORMAT', `raw ${source}: shape (${options.shape.join(', ')}) of ${options.dtype} needs ${count * size} bytes, the file has ${buffer.length}`);
  }
  const data = decodeSamples(buffer, options.dtype, count, options.littleEndian ?? true);
  return { data, shape: [...options.shape], dtype: options.dtype };
}

/** Reads a volume; the format comes from the extension (a folder: its .tif/.png slices in name order). */
export function readVolume(file: string, options: { raw?: RawOptions } = {}): Volume {
  if (isZarrPath(file)) {
    throw new SegvolError('ERR_ARGUMENT', `${file}: Zarr stores are read asynchronously; use readVolumeAsync (the segvol commands do), or openZarr for regions`);
  }
  const lower = file.toLowerCase();
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `cannot read ${file}: ${(error as Error).message}`);
  }
  if (stat.isDirectory()) {
    const slices = fs.readdirSync(file).filter((f) => /\.(png|tiff?)$/i.test(f)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (slices.length === 0) throw new SegvolError('ERR_FORMAT', `${file}: the folder holds no .png or .tif slices`);
    const planes = slices.map((s) => readVolume(path.join(file, s)));
    const [, h, w] = planes[0]!.shape as [number, number, number];
    planes.forEach((p, i) => {
      if (p.shape.length !== 3 || p.shape[0] !== 1 || p.shape[1] !== h || p.shape[2] !== w) {
        throw new SegvolError('ERR_FORMAT', `${file}: slice ${slices[i]} is (${p.shape.join(', ')}), the first (1, ${h}, ${w})`);
      }
    });
    const data = new Float32Array(planes.length * h * w);
    planes.forEach((p, i) => data.set(p.data, i * h * w));
    return { data, shape: [planes.length, h, w], dtype: planes[0]!.dtype };
  }
  const bytes = readBytes(file);
  if (lower.endsWith('.nii') || lower.endsWith('.nii.gz')) return parseNifti(bytes, file);
  if (lower.endsWith('.tif') || lower.endsWith('.tiff')) return parseTiff(bytes, file);
  if (lower.endsWith('.npy')) {
    const a = parseNpy(bytes, file);
    return { data: a.data, shape: a.shape, dtype: 'npy' };
  }
  if (lower.endsWith('.png')) return parsePng(bytes, file);
  if (lower.endsWith('.mha')) return parseMetaImage(bytes, file);
  if (options.raw) return readRaw(bytes, options.raw, file);
  throw new SegvolError('ERR_ARGUMENT', `${file}: unknown format; expected .nii, .nii.gz, .mha, .tif, .tiff, .npy, .png, a folder of slices, or raw data with a shape and dtype`);
}

export type StoredType = 'float32' | 'uint8' | 'int16' | 'uint16';

/**
 * The stored type of class ids, in every format that has integers: uint8, or uint16 past 255
 * classes (NIfTI, which has no uint16 writer here, stores those as int16). Probabilities are float32.
 */
export function labelDtype(classes: number): 'uint8' | 'uint16' {
  return classes > 255 ? 'uint16' : 'uint8';
}

export interface WriteOptions {
  /** Stored type where the format allows it (NIfTI: float32, uint8, int16; TIFF: float32, uint8, uint16). Default float32. */
  dtype?: StoredType;
  /**
   * Integer types that cannot hold every value exactly: NIfTI scales them into the type
   * (scl_slope, scl_inter) and reports the rounding; other formats refuse unless this is
   * true, then round and clip. PNG slices always map the value range to 0..255.
   */
  allowLossy?: boolean;
}

/** What writing did to the values: voxels rounded or clipped, the largest change, the NIfTI scaling used. */
export interface WriteReport {
  dtype: string;
  rounded: number;
  clipped: number;
  maxError: number;
  scale?: { slope: number; inter: number };
}

const integerRanges: Record<string, [number, number]> = { uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535] };

/** How storing data in an integer range with a scaling changes it. */
function storageLoss(data: Float32Array, range: [number, number], slope = 1, inter = 0): { rounded: number; clipped: number; maxError: number } {
  let rounded = 0, clipped = 0, maxError = 0;
  for (const v of data) {
    const q = (v - inter) / slope;
    const stored = Math.min(range[1], Math.max(range[0], Math.round(q)));
    if (stored !== Math.round(q)) ++clipped;
    else if (stored !== q) ++rounded;
    maxError = Math.max(maxError, Math.abs(stored * slope + inter - v));
  }
  return { rounded, clipped, maxError };
}

/** What storing values as dtype does to them; refuses a lossy integer type unless allowed. */
function integerReport(file: string, format: string, data: Float32Array, dtype: StoredType, allowLossy = false): WriteReport {
  if (dtype === 'float32') return { dtype, rounded: 0, clipped: 0, maxError: 0 };
  const report = { dtype, ...storageLoss(data, integerRanges[dtype]!) };
  if ((report.rounded || report.clipped) && !allowLossy) {
    throw new SegvolError('ERR_ARGUMENT', `${format} ${file}: ${dtype} cannot hold these values (${report.rounded} rounded, ${report.clipped} clipped, ` +
      `by up to ${report.maxError.toPrecision(3)}); write float32 or allow the loss (--allow-lossy)`);
  }
  return report;
}

/**
 * Writes a volume; the format comes from the extension (.nii, .nii.gz, .tif, .npy, or a
 * folder ending in / for PNG slices). Returns what storing did to the values.
 */
export function writeVolume(file: string, volume: Volume, options: WriteOptions = {}): WriteReport {
  const lower = file.toLowerCase();
  const clean: WriteReport = { dtype: options.dtype ?? 'float32', rounded: 0, clipped: 0, maxError: 0 };
  const atomic = (bytes: Buffer) => {
    const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
    fs.writeFileSync(temporary, bytes);
    fs.renameSync(temporary, file);
  };
  const spatial = volume.shape.slice(-3) as [number, number, number];
  if (lower.endsWith('.nii') || lower.endsWith('.nii.gz')) {
    const dtype = options.dtype === 'uint16' ? 'int16' : options.dtype;
    let report: WriteReport = { ...clean, dtype: dtype ?? 'float32' };
    let scale: { slope: number; inter: number } | undefined;
    if (dtype && dtype !== 'float32') {
      const range = integerRanges[dtype]!;
      const plain = storageLoss(volume.data, range);
      if (plain.rounded || plain.clipped) {
        // Map the value range onto the type's: the rounding error is at most half a slope.
        let lo = Infinity, hi = -Infinity;
        for (const v of volume.data) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        const slope = Math.fround(hi > lo ? (hi - lo) / (range[1] - range[0]) : 1);
        scale = { slope, inter: Math.fround(lo - range[0] * slope) };
        report = { dtype, ...storageLoss(volume.data, range, scale.slope, scale.inter), scale };
      }
    }
    atomic(serializeNifti(volume.data, volume.shape, {
      ...(volume.spacing ? { spacing: volume.spacing } : {}), ...(volume.affine ? { affine: volume.affine } : {}),
      ...(dtype ? { dtype } : {}), ...(scale ? { scale } : {}), gzip: lower.endsWith('.gz'), ...(volume.unit ? { unit: volume.unit } : {}),
    }));
    return report;
  } else if (lower.endsWith('.tif') || lower.endsWith('.tiff')) {
    if (volume.shape.length !== 3) throw new SegvolError('ERR_SHAPE', `TIFF ${file}: expected a (D, H, W) volume, received (${volume.shape.join(', ')})`);
    const dtype = options.dtype === 'int16' ? 'uint16' : options.dtype ?? 'float32';
    let report: WriteReport = { ...clean, dtype };
    if (dtype !== 'float32') {
      report = { dtype, ...storageLoss(volume.data, integerRanges[dtype]!) };
      if ((report.rounded || report.clipped) && !options.allowLossy) {
        const n = volume.data.length;
        throw new SegvolError('ERR_ARGUMENT', `TIFF ${file}: ${dtype} cannot hold these values: ${report.rounded} voxels ` +
          `(${((100 * report.rounded) / n).toFixed(1)}%) would be rounded and ${report.clipped} (${((100 * report.clipped) / n).toFixed(1)}%) clipped ` +
          `to ${integerRanges[dtype]!.join('..')}, changing values by up to ${report.maxError.toPrecision(3)}; write float32, use NIfTI (which ` +
          'scales into the type), or allow the loss (--allow-lossy)');
      }
    }
    atomic(serializeTiff(volume.data, spatial, dtype));
    return report;
  } else if (lower.endsWith('.mha')) {
    const dtype = options.dtype ?? 'float32';
    const report = integerReport(file, 'MetaImage', volume.data, dtype, options.allowLossy);
    atomic(serializeMetaImage(volume.data, spatial, { dtype, ...(volume.spacing ? { spacing: volume.spacing } : {}) }));
    return report;
  } else if (lower.endsWith('.npy')) {
    const dtype = options.dtype ?? 'float32';
    const report = integerReport(file, 'npy', volume.data, dtype, options.allowLossy);
    writeNpy(file, { shape: volume.shape, data: volume.data }, dtype);
    return report;
  } else if (file.endsWith('/') || file.endsWith(path.sep)) {
    // PNG slices, values scaled from the volume's range to 0..255.
    fs.mkdirSync(file, { recursive: true });
    const [d, h, w] = spatial;
    let lo = Infinity, hi = -Infinity;
    for (const v of volume.data) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let z = 0; z < d; ++z) {
      const pixels = Uint8Array.from(volume.data.subarray(z * h * w, (z + 1) * h * w), (v) => Math.round((v - lo) * scale));
      fs.writeFileSync(path.join(file, `slice_${String(z).padStart(4, '0')}.png`), encodeGrayPng(pixels, w, h));
    }
    return { dtype: 'uint8', ...storageLoss(volume.data, [0, 255], scale > 0 ? 1 / scale : 1, lo), scale: { slope: scale > 0 ? 1 / scale : 1, inter: lo } };
  } else {
    throw new SegvolError('ERR_ARGUMENT', `${file}: unknown output format; use .nii, .nii.gz, .mha, .tif, .npy, or a folder path ending in / for PNG slices`);
  }
}

/** Shape, type, spacing and value range, as `segvol inspect` prints them. */
export function describeVolume(volume: Volume): { shape: number[]; dtype: string; spacing: number[] | null; min: number; max: number; mean: number; nan: number } {
  let min = Infinity, max = -Infinity, sum = 0, nan = 0;
  for (const v of volume.data) {
    if (Number.isNaN(v)) {
      ++nan;
      continue;
    }
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  return { shape: volume.shape, dtype: volume.dtype, spacing: volume.spacing ?? null, min, max, mean: sum / Math.max(1, volume.data.length - nan), nan };
}

/** Several modalities (e.g. T1, IR, FLAIR) stacked as channels: (C, D, H, W). Their (D, H, W) shapes must agree. */
export function stackModalities(volumes: readonly Volume[], names: readonly string[] = []): Volume {
  if (volumes.length === 0) throw new SegvolError('ERR_ARGUMENT', 'stackModalities: expected at least one volume');
  const shape = volumes[0]!.shape;
  volumes.forEach((v, i) => {
    if (v.shape.length !== 3 || v.shape.join() !== shape.join()) {
      throw new SegvolError('ERR_SHAPE', `stackModalities: ${names[i] ?? `volume ${i}`} has shape (${v.shape.join(', ')}), ` +
        `${names[0] ?? 'volume 0'} (${shape.join(', ')}); register and resample the modalities to one grid first`);
    }
  });
  const size = volumes[0]!.data.length;
  const data = new Float32Array(volumes.length * size);
  volumes.forEach((v, i) => data.set(v.data, i * size));
  return { data, shape: [volumes.length, ...shape], dtype: 'float32', ...(volumes[0]!.spacing ? { spacing: volumes[0]!.spacing } : {}) };
}

/** readVolume for every format, Zarr stores (v2, v3, OME-Zarr; local or http(s)) included. */
export async function readVolumeAsync(file: string, options: { raw?: RawOptions } = {}): Promise<Volume> {
  if (!isZarrPath(file)) return readVolume(file, options);
  const z = await readZarr(file);
  return { data: z.data, shape: z.shape, dtype: z.dtype, ...(z.spacing ? { spacing: z.spacing } : {}), ...(z.unit ? { unit: z.unit } : {}) };
}

/** Whether a path names an OME-Zarr image to write (a store ending in .ome.zarr). */
export function isOmeZarrPath(location: string): boolean {
  return /\.ome\.zarr\/*$/i.test(location.replace(/\\/g, '/'));
}

export interface ZarrWriteOptions extends WriteOptions {
  /** Chunk shape (default 64 per spatial axis, 1 on leading axes). */
  chunks?: readonly number[];
  /** Default zlib (v2) or gzip (v3). */
  compressor?: ZarrCompressor;
  zarrVersion?: 2 | 3;
  /** An OME-Zarr output's levels, counting level 0 (default 1: the volume as it is); each halves y and x (z too where its voxels allow). */
  omeLevels?: number;
  /** How a level is made from the one above: the mean (images, default) or the most frequent value (labels). */
  downsampling?: 'mean' | 'mode';
}

/** The output formats, by how a path ends. */
export const writableFormats = ['.nii', '.nii.gz', '.mha', '.tif', '.tiff', '.npy', '.zarr', 'a folder path ending in / (PNG slices)'] as const;

/**
 * Refuses an output path before any work is done: a format segvol cannot write (by its
 * extension), or a folder that does not exist. `what` names it in the message (--out).
 */
export function checkOutputPath(file: string, what = 'output'): void {
  const lower = file.toLowerCase();
  const folder = file.endsWith('/') || file.endsWith(path.sep);
  const known = folder || isZarrPath(file) || ['.nii', '.nii.gz', '.mha', '.tif', '.tiff', '.npy'].some((e) => lower.endsWith(e));
  if (!known) {
    throw new SegvolError('ERR_ARGUMENT', `${what} ${file}: no format writes '${path.extname(file) || path.basename(file)}'; ` +
      `give a path ending in ${writableFormats.join(', ')}`);
  }
  const parent = path.dirname(folder ? file.replace(/[/\\]+$/, '') : file);
  if (!fs.existsSync(parent)) throw new SegvolError('ERR_ARGUMENT', `${what} ${file}: the folder ${parent} does not exist; create it first`);
  if (!fs.statSync(parent).isDirectory()) throw new SegvolError('ERR_ARGUMENT', `${what} ${file}: ${parent} is not a folder`);
}

/** writeVolume for every format, Zarr stores included (a path ending in .zarr). */
export async function writeVolumeAsync(file: string, volume: Volume, options: ZarrWriteOptions = {}): Promise<WriteReport> {
  if (!isZarrPath(file)) return writeVolume(file, volume, options);
  const dtype = options.dtype ?? 'float32';
  let report: WriteReport = { dtype, rounded: 0, clipped: 0, maxError: 0 };
  if (dtype !== 'float32') {
    report = { dtype, ...storageLoss(volume.data, integerRanges[dtype]!) };
    if ((report.rounded || report.clipped) && !options.allowLossy) {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${file}: ${dtype} cannot hold these values: ${report.rounded} voxels would be rounded and ${report.clipped} clipped, ` +
        `changing values by up to ${report.maxError.toPrecision(3)}; write float32 or allow the loss (--allow-lossy)`);
    }
  }
  const version = options.zarrVersion ?? 2;
  const storage = { dtype, zarrVersion: version, compressor: options.compressor ?? (version === 3 ? 'gzip' : 'zlib'), ...(options.chunks ? { chunks: options.chunks } : {}) } as const;
  if (isOmeZarrPath(file)) {
    // An OME-Zarr image: level 0 the volume as it is (its voxel size as the scale), and with
    // omeLevels each further level made from the one above, chunk by chunk.
    const channels = volume.shape.length === 4;
    const dims = volume.shape.slice(-3) as [number, number, number];
    const chunks = (options.chunks ?? volume.shape.map((n, a) => (a < volume.shape.length - 3 ? 1 : Math.min(n, 64)))).slice(-3) as [number, number, number];
    const spacing = volume.spacing ?? [1, 1, 1];
    const levels = (options.omeLevels ?? 1) > 1 ? pyramidLevels(dims, chunks, spacing, options.omeLevels) : [{ path: '0', shape: dims, factor: [1, 1, 1] as [number, number, number] }];
    const how = options.downsampling ?? 'mean';
    writeOmeGroup(file, {
      version: version === 3 ? '0.5' : '0.4', name: path.basename(file).replace(/\.ome\.zarr\/*$/i, ''), levels,
      spacing, ...(volume.unit ? { unit: volume.unit } : {}), channels, downsampling: how, label: false,
    });
    const layout = version === 2 ? { dimensionSeparator: '/' as const } : { dimensionNames: omeAxes({ channels }).map((a) => a.name) };
    await writeZarr(path.join(file, '0'), volume.data, volume.shape, { ...storage, ...layout });
    for (let l = 1; l < levels.length; ++l) {
      const [above, level] = [levels[l - 1]!, levels[l]!];
      const target = ZarrWriter.create(path.join(file, level.path), {
        ...storage, ...layout, shape: channels ? [volume.shape[0]!, ...level.shape] : level.shape, chunks: channels ? [1, ...chunks] : chunks,
      });
      const factor = level.factor.map((f, a) => f / above.factor[a]!);
      const done = fs.mkdtempSync(path.join(file, '.levels-'));
      await writeLevel(await openZarr(path.join(file, above.path)), target, channels ? [1, ...factor] : factor, how, done, false);
      fs.rmSync(done, { recursive: true, force: true });
    }
    return report;
  }
  await writeZarr(file, volume.data, volume.shape, {
    ...storage, ...(volume.spacing ? { attributes: { segvol: { spacing: volume.spacing, ...(volume.unit ? { unit: volume.unit } : {}) } } } : {}),
  });
  return report;
}

/** describeVolume for a Zarr store, read slab by slab (memory bounded by one slab of chunks), with its chunking. */
export async function describeZarr(file: string): Promise<ReturnType<typeof describeVolume> & { chunks: number[] }> {
  const a = await openZarr(file);
  let min = Infinity, max = -Infinity, sum = 0, nan = 0, count = 0;
  const axis = a.shape.length - 3 >= 0 ? a.shape.length - 3 : 0;
  const step = a.chunks[axis]!;
  for (let z = 0; z < a.shape[axis]!; z += step) {
    const start = a.shape.map(() => 0), size = [...a.shape];
    start[axis] = z;
    size[axis] = Math.min(step, a.shape[axis]! - z);
    // Leading (channel) axes are read whole.
    for (const v of await a.read(start, size)) {
      if (Number.isNaN(v)) {
        ++nan;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      ++count;
    }
  }
  return { shape: a.shape, dtype: a.dtype, spacing: a.spacing ?? null, min, max, mean: sum / Math.max(1, count), nan, chunks: a.chunks };
}
