// Chunked volumes: Zarr v2 and v3 arrays and OME-Zarr multiscale images. Reading goes
// through zarrita (local folders, and read-only HTTP(S) stores); writing is segvol's own,
// chunk by chunk, each chunk written to a temporary file and renamed into place, so a
// crash never leaves a half-written chunk. Compressors: gzip and zlib (Node's zlib),
// blosc (the numcodecs package's WebAssembly build), or none.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, SegvolError } from '../core/errors';
import { watchedStore, type ChunkBytesCache, type ZarrStore } from './chunk_store';

// zarrita and numcodecs are ES modules only: load them with a real dynamic import.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

export type ZarrCompressor = 'gzip' | 'zlib' | 'blosc' | 'none';
export const zarrCompressors: readonly ZarrCompressor[] = ['gzip', 'zlib', 'blosc', 'none'];
export type ZarrDtype = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

const dtypeInfo: Record<ZarrDtype, { v2: string; size: number; array: new (n: number) => ArrayLike<number> & { buffer: ArrayBufferLike; [i: number]: number } }> = {
  uint8: { v2: '|u1', size: 1, array: Uint8Array }, int8: { v2: '|i1', size: 1, array: Int8Array },
  uint16: { v2: '<u2', size: 2, array: Uint16Array }, int16: { v2: '<i2', size: 2, array: Int16Array },
  uint32: { v2: '<u4', size: 4, array: Uint32Array }, int32: { v2: '<i4', size: 4, array: Int32Array },
  float32: { v2: '<f4', size: 4, array: Float32Array }, float64: { v2: '<f8', size: 8, array: Float64Array },
};

/** Whether a path names a Zarr store (a folder or URL ending in .zarr, or a path inside one). */
export function isZarrPath(location: string): boolean {
  return /\.zarr(\/|$)/i.test(location.replace(/\\/g, '/').replace(/\/+$/, '/'));
}

/** Splits "store.zarr/inner/path" into the store root and the node path inside it. */
function splitLocation(location: string): { root: string; inner: string; remote: boolean } {
  const remote = /^https?:\/\//i.test(location);
  const normal = location.replace(/\\/g, '/');
  const m = /^(.*?\.zarr)(\/.*)?$/i.exec(normal.replace(/\/+$/, ''));
  if (!m) throw new SegvolError('ERR_ARGUMENT', `${location}: not a Zarr location; expected a folder or URL ending in .zarr (or a path inside one)`);
  return { root: m[1]!, inner: (m[2] ?? '').replace(/^\/+/, ''), remote };
}

interface ZarritaArray {
  shape: number[];
  chunks: number[];
  dtype: string;
  attrs: Record<string, unknown>;
}
interface Zarrita {
  root(store: unknown): { resolve(path: string): unknown };
  open(location: unknown, options?: { kind: 'array' | 'group' }): Promise<ZarritaArray & { kind: string; attrs: Record<string, unknown> }>;
  get(array: unknown, selection: Array<unknown | null>): Promise<{ data: ArrayLike<number>; shape: number[] }>;
  slice(start: number, stop: number): unknown;
}

let modules: Promise<{ zarr: Zarrita; storage: { FileSystemStore: new (root: string) => unknown; FetchStore: new (url: string) => unknown } }> | undefined;
function zarrita() {
  modules ??= Promise.all([importEsm('zarrita'), importEsm('@zarrita/storage')]).then(([zarr, storage]) => ({
    zarr: zarr as Zarrita, storage: storage as { FileSystemStore: new (root: string) => unknown; FetchStore: new (url: string) => unknown },
  })).catch((error: unknown) => {
    modules = undefined;
    throw new SegvolError('ERR_ARGUMENT', `Zarr support needs the zarrita and @zarrita/storage packages (installed with segvol): ${(error as Error).message}`);
  });
  return modules;
}

/** An opened Zarr array: its geometry and region reads (float32 out). */
export interface ZarrArray {
  location: string;
  shape: number[];
  chunks: number[];
  dtype: string;
  /** The voxel size (z, y, x): an OME-Zarr image's scale of the level read, or the spacing segvol recorded with an array. */
  spacing?: [number, number, number];
  /** The spatial axes' unit ('micrometer', 'millimeter', ...) where the store names one. */
  unit?: string;
  /** An OME-Zarr image's levels, finest first: each one's scale (z, y, x), null where the metadata gives none; `level` is the one opened. */
  multiscale?: { level: number; scales: Array<[number, number, number] | null> };
  /** Values of the region [start, start + size) in C order. */
  read(start: readonly number[], size: readonly number[]): Promise<Float32Array>;
  /** The same values exactly (integers up to 2^53: object ids of any integer type). */
  readExact?(start: readonly number[], size: readonly number[]): Promise<Float64Array>;
}

export interface OpenZarrOptions {
  /** An OME-Zarr image's level to read (0, the finest, by default). */
  level?: number;
  /** Told the key of each chunk read from the store (metadata reads are not chunks): the viewer counts them. */
  onChunk?: (key: string) => void;
  /** Keeps recently read chunk bytes: a chunk read again comes from memory (and is not told to onChunk). */
  cache?: ChunkBytesCache;
}

/**
 * Opens a Zarr array: a v2 or v3 array, or an OME-Zarr multiscale group (its finest level,
 * or `options.level`). `location` is a folder or an http(s) URL ending in .zarr, optionally
 * followed by the array's path inside the store ("image.ome.zarr/1").
 */
export async function openZarr(location: string, options: OpenZarrOptions = {}): Promise<ZarrArray> {
  const { zarr, storage } = await zarrita();
  const { root, inner, remote } = splitLocation(location);
  if (!remote && !fs.existsSync(root)) throw new SegvolError('ERR_ARGUMENT', `cannot read ${root}: no such Zarr store`);
  const plain = (remote ? new storage.FetchStore(root) : new storage.FileSystemStore(path.resolve(root))) as ZarrStore;
  const store = watchedStore(plain, root, options);
  const base = zarr.root(store);
  let node: ZarritaArray & { kind: string; attrs: Record<string, unknown> };
  let spacing: [number, number, number] | undefined;
  let unit: string | undefined;
  let multiscale: ZarrArray['multiscale'];
  try {
    node = await zarr.open(base.resolve(inner || '/'));
    if (node.kind === 'group') {
      // OME-Zarr 0.4 keeps multiscales among the attributes, 0.5 (Zarr v3) under attributes.ome.
      type Multiscale = { axes?: Array<{ type?: string; unit?: string }>; datasets: Array<{ path: string; coordinateTransformations?: Array<{ type: string; scale?: number[] }> }> };
      const scales = (node.attrs.multiscales ?? (node.attrs.ome as { multiscales?: unknown } | undefined)?.multiscales) as Multiscale[] | undefined;
      const datasets = scales?.[0]?.datasets ?? [];
      const level = options.level ?? 0;
      const first = datasets[level];
      if (!datasets.length) {
        throw new SegvolError('ERR_FORMAT', `${location} is a Zarr group without OME-Zarr multiscales; name the array inside it (${root}/<array>)`);
      }
      if (!first) throw new SegvolError('ERR_ARGUMENT', `${location}: level ${level} requested, the image has levels 0..${datasets.length - 1}`);
      const scaleOf = (d: (typeof datasets)[number]) => d.coordinateTransformations?.find((t) => t.type === 'scale')?.scale;
      const scale = scaleOf(first);
      if (scale && scale.length >= 3) spacing = scale.slice(-3) as [number, number, number];
      multiscale = { level, scales: datasets.map((d) => ((scaleOf(d)?.length ?? 0) >= 3 ? scaleOf(d)!.slice(-3) as [number, number, number] : null)) };
      const units = new Set((scales![0]!.axes ?? []).filter((a) => a.type === 'space').map((a) => a.unit));
      if (units.size === 1 && [...units][0]) unit = [...units][0];
      node = await zarr.open(base.resolve(`${inner ? `${inner}/` : ''}${first.path}`), { kind: 'array' });
    } else {
      // A plain array segvol wrote from a volume with a known voxel size.
      const own = node.attrs?.segvol as { spacing?: unknown; unit?: unknown } | undefined;
      if (Array.isArray(own?.spacing) && own!.spacing.length === 3) spacing = own!.spacing as [number, number, number];
      if (typeof own?.unit === 'string') unit = own.unit;
    }
  } catch (error) {
    if (error instanceof SegvolError) throw error;
    throw new SegvolError('ERR_FORMAT', `${location}: cannot open the Zarr array (${(error as Error).message}); expected .zarray (v2) or zarr.json (v3) metadata`);
  }
  const array = node;
  const region = async (start: readonly number[], size: readonly number[]) => {
    if (start.length !== array.shape.length || size.length !== array.shape.length) {
      throw new SegvolError('ERR_SHAPE', `${location}: a region of ${array.shape.length} axes is needed, received start (${start.join(', ')}) size (${size.join(', ')})`);
    }
    start.forEach((s, a) => {
      if (s < 0 || size[a]! < 0 || s + size[a]! > array.shape[a]!) {
        throw new SegvolError('ERR_SHAPE', `${location}: region [${start.join(', ')}] + (${size.join(', ')}) leaves the array (${array.shape.join(', ')})`);
      }
    });
    try {
      return (await zarr.get(array, start.map((s, a) => zarr.slice(s, s + size[a]!)))).data as ArrayLike<number | bigint>;
    } catch (error) {
      throw new SegvolError('ERR_FORMAT', `${location}: reading region [${start.join(', ')}] + (${size.join(', ')}) failed: ${(error as Error).message}; a chunk may be corrupt`);
    }
  };
  return {
    location, shape: [...array.shape], chunks: [...array.chunks], dtype: String(array.dtype), ...(spacing ? { spacing } : {}), ...(unit ? { unit } : {}), ...(multiscale ? { multiscale } : {}),
    async readExact(start, size) {
      const values = await region(start, size);
      const out = new Float64Array(values.length);
      for (let i = 0; i < values.length; ++i) out[i] = Number(values[i]!);
      return out;
    },
    async read(start, size) {
      const data = await region(start, size);
      // float32 arrays come back as they are; other types are converted (one copy; 64-bit integers through Number).
      if (data instanceof Float32Array) return data;
      if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Float32Array.from(data, (v) => Number(v));
      return Float32Array.from(data as ArrayLike<number>);
    },
  };
}

/** Reads a whole Zarr array (or OME-Zarr image) into memory: (D, H, W) or (C, D, H, W). */
export async function readZarr(location: string): Promise<{ data: Float32Array; shape: number[]; dtype: string; spacing?: [number, number, number]; unit?: string }> {
  const array = await openZarr(location);
  const data = await array.read(array.shape.map(() => 0), array.shape);
  return { data, shape: array.shape, dtype: array.dtype, ...(array.spacing ? { spacing: array.spacing } : {}), ...(array.unit ? { unit: array.unit } : {}) };
}

export interface ZarrCreateOptions {
  shape: readonly number[];
  chunks: readonly number[];
  dtype?: ZarrDtype;
  compressor?: ZarrCompressor;
  /** Zarr format (default 2, which every reader knows). */
  zarrVersion?: 2 | 3;
  /** Attributes stored with the array. */
  attributes?: Record<string, unknown>;
  /** Zarr v2: '.' (default; chunk files "0.1.2") or '/' (nested folders "0/1/2", as OME-Zarr 0.4 asks). */
  dimensionSeparator?: '.' | '/';
  /** Zarr v3: the axes' names (OME-Zarr 0.5 asks for them, matching its axes). */
  dimensionNames?: readonly string[];
}

/** A Zarr array being written chunk by chunk. */
export class ZarrWriter {
  readonly shape: number[];
  readonly chunks: number[];
  readonly dtype: ZarrDtype;
  private readonly compressor: ZarrCompressor;
  private readonly version: 2 | 3;
  private readonly separator: '.' | '/';

  private constructor(readonly dir: string, options: ZarrCreateOptions) {
    this.shape = [...options.shape];
    this.chunks = [...options.chunks];
    this.dtype = options.dtype ?? 'float32';
    this.compressor = options.compressor ?? 'zlib';
    this.version = options.zarrVersion ?? 2;
    this.separator = options.dimensionSeparator ?? '.';
  }

  /** Creates the array's metadata (overwriting metadata, keeping chunks already there: a resumed write). */
  static create(dir: string, options: ZarrCreateOptions): ZarrWriter {
    return ZarrWriter.define(dir, options, true);
  }

  /** A writer for chunks of an array whose metadata create() wrote already (another block of the same output). */
  static attach(dir: string, options: ZarrCreateOptions): ZarrWriter {
    return ZarrWriter.define(dir, options, false);
  }

  private static define(dir: string, options: ZarrCreateOptions, writeMetadata: boolean): ZarrWriter {
    const { shape, chunks } = options;
    if (!Array.isArray(shape) || shape.length < 1 || !shape.every((n) => Number.isInteger(n) && n >= 1) ||
      !Array.isArray(chunks) || chunks.length !== shape.length || !chunks.every((n) => Number.isInteger(n) && n >= 1)) {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${dir}: expected shape and chunks as positive integers of the same length, received (${describe(shape)}) and (${describe(chunks)})`);
    }
    if (options.compressor !== undefined && !zarrCompressors.includes(options.compressor)) {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${dir}: expected compressor ${zarrCompressors.join(', ')}, received ${describe(options.compressor)}`);
    }
    if (options.dtype !== undefined && !(options.dtype in dtypeInfo)) {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${dir}: expected dtype ${Object.keys(dtypeInfo).join(', ')}, received ${describe(options.dtype)}`);
    }
    const w = new ZarrWriter(dir, options);
    if (w.version === 3 && w.compressor === 'zlib') {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${dir}: Zarr v3 has no zlib codec; use gzip, blosc or none (or write v2)`);
    }
    if (!writeMetadata) return w;
    fs.mkdirSync(dir, { recursive: true });
    const blosc = { cname: 'lz4', clevel: 5, shuffle: 1, blocksize: 0 };
    if (w.version === 2) {
      const compressor = w.compressor === 'none' ? null : w.compressor === 'blosc' ? { id: 'blosc', ...blosc } : { id: w.compressor, level: 5 };
      writeAtomic(path.join(dir, '.zarray'), JSON.stringify({
        zarr_format: 2, shape: w.shape, chunks: w.chunks, dtype: dtypeInfo[w.dtype].v2, compressor, fill_value: 0, order: 'C', filters: null,
        dimension_separator: w.separator,
      }, null, 2));
      if (options.attributes) writeAtomic(path.join(dir, '.zattrs'), JSON.stringify(options.attributes, null, 2));
    } else {
      const codecs: unknown[] = [{ name: 'bytes', configuration: { endian: 'little' } }];
      if (w.compressor === 'gzip') codecs.push({ name: 'gzip', configuration: { level: 5 } });
      if (w.compressor === 'blosc') {
        codecs.push({ name: 'blosc', configuration: { cname: 'lz4', clevel: 5, shuffle: 'shuffle', typesize: dtypeInfo[w.dtype].size, blocksize: 0 } });
      }
      writeAtomic(path.join(dir, 'zarr.json'), JSON.stringify({
        zarr_format: 3, node_type: 'array', shape: w.shape, data_type: w.dtype,
        chunk_grid: { name: 'regular', configuration: { chunk_shape: w.chunks } },
        chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
        fill_value: 0, codecs, attributes: options.attributes ?? {}, ...(options.dimensionNames ? { dimension_names: [...options.dimensionNames] } : {}),
      }, null, 2));
    }
    return w;
  }

  /** The chunk grid: chunks per axis. */
  get grid(): number[] {
    return this.shape.map((n, a) => Math.ceil(n / this.chunks[a]!));
  }

  /** The file a chunk lives in. */
  chunkPath(coords: readonly number[]): string {
    if (this.version === 3) return path.join(this.dir, 'c', ...coords.map(String));
    return this.separator === '/' ? path.join(this.dir, ...coords.map(String)) : path.join(this.dir, coords.join('.'));
  }

  /**
   * Writes one chunk from values of the chunk's region of the array (C order, the region
   * clipped at the array's end). Written whole or not at all; writing it again with the
   * same values gives the same bytes.
   */
  async writeChunk(coords: readonly number[], values: ArrayLike<number>): Promise<void> {
    const region = coords.map((c, a) => Math.min(this.chunks[a]!, this.shape[a]! - c * this.chunks[a]!));
    if (coords.length !== this.shape.length || region.some((n) => n < 1)) {
      throw new SegvolError('ERR_ARGUMENT', `Zarr ${this.dir}: chunk (${coords.join(', ')}) is outside the grid (${this.grid.join(', ')})`);
    }
    const count = region.reduce((a, b) => a * b, 1);
    if (values.length !== count) throw new SegvolError('ERR_SHAPE', `Zarr ${this.dir}: chunk (${coords.join(', ')}) holds ${count} values, received ${values.length}`);
    // A stored chunk always has the full chunk shape; past the array's end it holds the fill value.
    const info = dtypeInfo[this.dtype];
    const full = new info.array(this.chunks.reduce((a, b) => a * b, 1));
    const rank = this.shape.length;
    const strideFull = new Array<number>(rank), strideRegion = new Array<number>(rank);
    let sf = 1, sr = 1;
    for (let a = rank - 1; a >= 0; --a) {
      strideFull[a] = sf;
      strideRegion[a] = sr;
      sf *= this.chunks[a]!;
      sr *= region[a]!;
    }
    const integer = this.dtype !== 'float32' && this.dtype !== 'float64';
    for (let i = 0; i < count; ++i) {
      let rest = i, target = 0;
      for (let a = 0; a < rank; ++a) {
        const k = Math.floor(rest / strideRegion[a]!);
        rest -= k * strideRegion[a]!;
        target += k * strideFull[a]!;
      }
      full[target] = integer ? Math.round(values[i]!) : values[i]!;
    }
    const bytes = new Uint8Array(full.buffer as ArrayBuffer);
    const file = this.chunkPath(coords);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeAtomic(file, await compress(bytes, this.compressor, info.size));
  }
}

async function compress(bytes: Uint8Array, compressor: ZarrCompressor, typesize: number): Promise<Uint8Array> {
  if (compressor === 'gzip') return zlib.gzipSync(bytes, { level: 5 });
  if (compressor === 'zlib') return zlib.deflateSync(bytes, { level: 5 });
  if (compressor === 'blosc') {
    const codecs = (await importEsm('numcodecs').catch((error: unknown) => {
      throw new SegvolError('ERR_ARGUMENT', `blosc needs the numcodecs package (installed with segvol): ${(error as Error).message}`);
    })) as { Blosc: { fromConfig(c: object): { encode(b: Uint8Array): Promise<Uint8Array> } } };
    return codecs.Blosc.fromConfig({ id: 'blosc', cname: 'lz4', clevel: 5, shuffle: 1, blocksize: 0, typesize }).encode(bytes);
  }
  return bytes;
}

/** Writes a file whole or not at all: a temporary file in the same folder, renamed over the target. */
export function writeAtomic(file: string, data: string | Uint8Array): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  fs.writeFileSync(temporary, data);
  fs.renameSync(temporary, file);
}

/** Writes a whole in-memory volume as a Zarr array. */
export async function writeZarr(dir: string, data: Float32Array, shape: readonly number[], options: Omit<ZarrCreateOptions, 'shape' | 'chunks'> & { chunks?: readonly number[] } = {}): Promise<ZarrWriter> {
  const chunks = options.chunks ?? shape.map((n, a) => (a < shape.length - 3 ? 1 : Math.min(n, 64)));
  const writer = ZarrWriter.create(dir, { ...options, shape, chunks });
  const rank = shape.length;
  const grid = writer.grid;
  const total = grid.reduce((a, b) => a * b, 1);
  const strides = new Array<number>(rank);
  let s = 1;
  for (let a = rank - 1; a >= 0; --a) {
    strides[a] = s;
    s *= shape[a]!;
  }
  for (let k = 0; k < total; ++k) {
    const coords = new Array<number>(rank);
    let rest = k;
    for (let a = rank - 1; a >= 0; --a) {
      coords[a] = rest % grid[a]!;
      rest = Math.floor(rest / grid[a]!);
    }
    const start = coords.map((c, a) => c * chunks[a]!);
    const size = start.map((st, a) => Math.min(chunks[a]!, shape[a]! - st));
    const values = new Float32Array(size.reduce((a, b) => a * b, 1));
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < values.length; ++i) {
      let offset = 0;
      for (let a = 0; a < rank; ++a) offset += (start[a]! + idx[a]!) * strides[a]!;
      values[i] = data[offset]!;
      for (let a = rank - 1; a >= 0; --a) {
        if (++idx[a]! < size[a]!) break;
        idx[a] = 0;
      }
    }
    await writer.writeChunk(coords, values);
  }
  return writer;
}
