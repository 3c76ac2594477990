// NIfTI-1 (.nii, .nii.gz): read any common datatype as float32 after the header's
// scaling (scl_slope, scl_inter); keep spacing and the affine; write float32,
// uint8 or int16 volumes with a given or default affine. A volume stored x
// fastest is read as (D, H, W) = (z, y, x), so its memory order is kept; a 4th
// dimension (time, modalities) comes first: (T, D, H, W).
import * as zlib from 'node:zlib';
import { SegvolError } from '../core/errors';

export interface NiftiVolume {
  data: Float32Array;
  shape: number[];
  /** (z, y, x) voxel size, e.g. mm. */
  spacing: [number, number, number];
  /** 4x4 voxel-to-world matrix (sform if set, else qform-free pixdim scaling). */
  affine: number[][];
  dtype: string;
  /** The spatial unit xyzt_units names ('meter', 'millimeter', 'micrometer'); absent when unknown (0). */
  unit?: string;
}

/** NIfTI's spatial unit codes (xyzt_units & 7) and OME-Zarr's names for them. */
const niftiUnits: Record<number, string> = { 1: 'meter', 2: 'millimeter', 3: 'micrometer' };

const DATATYPES: Record<number, { name: string; bytes: number; read: (v: DataView, o: number, le: boolean) => number }> = {
  2: { name: 'uint8', bytes: 1, read: (v, o) => v.getUint8(o) },
  4: { name: 'int16', bytes: 2, read: (v, o, le) => v.getInt16(o, le) },
  8: { name: 'int32', bytes: 4, read: (v, o, le) => v.getInt32(o, le) },
  16: { name: 'float32', bytes: 4, read: (v, o, le) => v.getFloat32(o, le) },
  64: { name: 'float64', bytes: 8, read: (v, o, le) => v.getFloat64(o, le) },
  256: { name: 'int8', bytes: 1, read: (v, o) => v.getInt8(o) },
  512: { name: 'uint16', bytes: 2, read: (v, o, le) => v.getUint16(o, le) },
  768: { name: 'uint32', bytes: 4, read: (v, o, le) => v.getUint32(o, le) },
};

function formatError(source: string, problem: string): SegvolError {
  return new SegvolError('ERR_FORMAT', `NIfTI ${source}: ${problem}`);
}

export function parseNifti(input: Buffer, source = '(buffer)'): NiftiVolume {
  let buffer = input;
  if (buffer.length >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b) {
    try {
      buffer = zlib.gunzipSync(buffer);
    } catch (error) {
      throw formatError(source, `the gzip stream is corrupt or truncated (${(error as Error).message})`);
    }
  } else if (source.endsWith('.gz')) {
    throw formatError(source, 'the name ends in .gz but the file is not gzip-compressed');
  }
  if (buffer.length < 348) throw formatError(source, `expected a 348-byte header, the file has ${buffer.length} bytes`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const le = view.getInt32(0, true) === 348;
  if (!le && view.getInt32(0, false) !== 348) throw formatError(source, 'sizeof_hdr is not 348: not a NIfTI-1 file');
  const magic = buffer.subarray(344, 347).toString('latin1');
  if (magic !== 'n+1' && magic !== 'ni1') throw formatError(source, `unknown magic '${magic}' (expected n+1)`);
  if (magic === 'ni1') throw formatError(source, 'a two-file .hdr/.img pair; convert it to a single .nii file');
  const ndim = view.getInt16(40, le);
  if (ndim < 1 || ndim > 7) throw formatError(source, `dim[0] = ${ndim} is not in 1..7`);
  const dim = Array.from({ length: ndim }, (_, i) => view.getInt16(42 + 2 * i, le));
  if (dim.some((d) => d < 1)) throw formatError(source, `a dimension is zero or negative: (${dim.join(', ')})`);
  if (ndim > 4 && dim.slice(4).some((d) => d > 1)) throw formatError(source, `only up to 4 dimensions are supported, received (${dim.join(', ')})`);
  const code = view.getInt16(70, le);
  const type = DATATYPES[code];
  if (!type) throw formatError(source, `unsupported datatype code ${code} (supported: uint8, int8, int16, uint16, int32, uint32, float32, float64)`);
  const pixdim = Array.from({ length: 8 }, (_, i) => view.getFloat32(76 + 4 * i, le));
  const offset = Math.round(view.getFloat32(108, le));
  let slope = view.getFloat32(112, le);
  const inter = view.getFloat32(116, le);
  if (!Number.isFinite(slope) || slope === 0) slope = 1;
  const [nx = 1, ny = 1, nz = 1, nt = 1] = dim;
  const count = nx * ny * nz * nt;
  if (offset < 348 || offset + count * type.bytes > buffer.length) {
    throw formatError(source, `expected ${count * type.bytes} data bytes at offset ${offset}, the file has ${Math.max(0, buffer.length - offset)}; is it truncated?`);
  }
  const data = new Float32Array(count);
  const shift = Number.isFinite(inter) ? inter : 0;
  const views: Record<string, new (b: ArrayBufferLike, o: number, n: number) => ArrayLike<number>> = {
    uint8: Uint8Array, int8: Int8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
    float32: Float32Array, float64: Float64Array,
  };
  const View = views[type.name]!;
  if (le && (buffer.byteOffset + offset) % type.bytes === 0) {
    // Aligned little-endian data: convert through a typed-array view.
    data.set(new View(buffer.buffer, buffer.byteOffset + offset, count));
    if (slope !== 1 || shift !== 0) for (let i = 0; i < count; ++i) data[i] = data[i]! * slope + shift;
  } else {
    for (let i = 0; i < count; ++i) data[i] = type.read(view, offset + i * type.bytes, le) * slope + shift;
  }
  const sformCode = view.getInt16(254, le);
  const spacing: [number, number, number] = [Math.abs(pixdim[3]!) || 1, Math.abs(pixdim[2]!) || 1, Math.abs(pixdim[1]!) || 1];
  const affine = sformCode > 0
    ? [0, 1, 2].map((r) => Array.from({ length: 4 }, (_, c) => view.getFloat32(280 + 16 * r + 4 * c, le))).concat([[0, 0, 0, 1]])
    : [[spacing[2], 0, 0, 0], [0, spacing[1], 0, 0], [0, 0, spacing[0], 0], [0, 0, 0, 1]];
  const shape = nt > 1 ? [nt, nz, ny, nx] : [nz, ny, nx];
  const unit = niftiUnits[view.getUint8(123) & 7];
  return { data, shape, spacing, affine, dtype: type.name, ...(unit ? { unit } : {}) };
}

export interface NiftiWriteOptions {
  spacing?: readonly [number, number, number];
  affine?: readonly (readonly number[])[];
  /** Stored type (default float32); labels fit uint8 or int16. */
  dtype?: 'float32' | 'uint8' | 'int16';
  /** For integer types: values are stored as round((v - inter) / slope), and the header's scl_slope, scl_inter restore them. */
  scale?: { slope: number; inter: number };
  gzip?: boolean;
  /** The spacing's unit: 'meter', 'millimeter' (the default) or 'micrometer' (xyzt_units). */
  unit?: string;
}

/** A single-file NIfTI-1 image of a (D, H, W) or (T, D, H, W) volume. */
export function serializeNifti(data: Float32Array, shape: readonly number[], options: NiftiWriteOptions = {}): Buffer {
  const [nt, nz, ny, nx] = shape.length === 4 ? shape : [1, ...shape];
  if (shape.length < 3 || shape.length > 4 || nx! * ny! * nz! * nt! !== data.length) {
    throw new SegvolError('ERR_SHAPE', `NIfTI: expected a (D, H, W) or (T, D, H, W) shape holding ${data.length} values, received (${shape.join(', ')})`);
  }
  const dtype = options.dtype ?? 'float32';
  const code = { float32: 16, uint8: 2, int16: 4 }[dtype];
  const bytes = { float32: 4, uint8: 1, int16: 2 }[dtype];
  const spacing = options.spacing ?? [1, 1, 1];
  // Stored integers s mean s * slope + inter.
  const slope = options.scale?.slope ?? 1, inter = options.scale?.inter ?? 0;
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  header.writeInt16LE(nt! > 1 ? 4 : 3, 40);
  [nx!, ny!, nz!, nt!].forEach((d, i) => header.writeInt16LE(d, 42 + 2 * i));
  for (let i = 4; i < 7; ++i) header.writeInt16LE(1, 42 + 2 * i);
  header.writeInt16LE(code, 70);
  header.writeInt16LE(bytes * 8, 72);
  [1, spacing[2], spacing[1], spacing[0], 1, 1, 1, 1].forEach((v, i) => header.writeFloatLE(v, 76 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeFloatLE(slope, 112);
  header.writeFloatLE(inter, 116);
  header.writeUInt8(Number(Object.keys(niftiUnits).find((k) => niftiUnits[Number(k)] === options.unit) ?? 2), 123);  // xyzt_units: mm unless told
  const affine = options.affine ?? [[spacing[2], 0, 0, 0], [0, spacing[1], 0, 0], [0, 0, spacing[0], 0]];
  header.writeInt16LE(0, 252);  // qform_code
  header.writeInt16LE(1, 254);  // sform_code: scanner
  for (let r = 0; r < 3; ++r) for (let c = 0; c < 4; ++c) header.writeFloatLE(affine[r]![c]!, 280 + 16 * r + 4 * c);
  header.write('n+1\0', 344, 'latin1');
  const body = Buffer.alloc(data.length * bytes);
  for (let i = 0; i < data.length; ++i) {
    const v = dtype === 'float32' ? data[i]! : (data[i]! - inter) / slope;
    if (dtype === 'float32') body.writeFloatLE(v, i * 4);
    else if (dtype === 'uint8') body.writeUInt8(Math.min(255, Math.max(0, Math.round(v))), i);
    else body.writeInt16LE(Math.min(32767, Math.max(-32768, Math.round(v))), i * 2);
  }
  const file = Buffer.concat([header, body]);
  return options.gzip ? zlib.gzipSync(file) : file;
}
