// NumPy .npy files (format 1.0/2.0/3.0), C order, little-endian: float32/64,
// (u)int8/16/32/64 read as float32 (or exactly, as float64, for object ids); float32, uint8, uint16 or int16 written.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { readBytes } from './binary';

export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export function parseNpy(buffer: Buffer, source = '(buffer)'): NpyArray {
  return parseNpyAs(buffer, source, Float32Array) as NpyArray;
}

/** The values exactly (integers up to 2^53, int64 and uint64 included): what object ids need. */
export function parseNpyExact(buffer: Buffer, source = '(buffer)'): { shape: number[]; data: Float64Array } {
  return parseNpyAs(buffer, source, Float64Array) as { shape: number[]; data: Float64Array };
}

function parseNpyAs(buffer: Buffer, source: string, Out: Float32ArrayConstructor | Float64ArrayConstructor): { shape: number[]; data: Float32Array | Float64Array } {
  const fail = (problem: string) => new SegvolError('ERR_FORMAT', `npy ${source}: ${problem}`);
  if (buffer.length < 10 || !buffer.subarray(0, 6).equals(MAGIC)) throw fail('not a .npy file (no \\x93NUMPY magic)');
  const major = buffer[6]!;
  const headerLength = major === 1 ? buffer.readUInt16LE(8) : buffer.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (start + headerLength > buffer.length) throw fail(`header of ${headerLength} bytes is truncated`);
  const header = buffer.subarray(start, start + headerLength).toString('latin1');
  const descr = /'descr':\s*'([<>|=]?)([a-z]\d+)'/.exec(header);
  const order = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeMatch = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shapeMatch) throw fail('unreadable header');
  if (order[1] === 'True') throw fail('Fortran-ordered arrays are not supported; save with np.ascontiguousarray');
  if (descr[1] === '>') throw fail('big-endian data is not supported');
  const shape = shapeMatch[1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.some((s) => !Number.isInteger(s) || s < 0)) throw fail(`invalid shape (${shapeMatch[1]})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const sizes: Record<string, number> = { f4: 4, f8: 8, u1: 1, i1: 1, u2: 2, i2: 2, u4: 4, i4: 4, i8: 8, u8: 8, b1: 1 };
  const size = sizes[descr[2]!];
  if (!size) throw fail(`unsupported dtype ${descr[2]}`);
  const offset = start + headerLength;
  if (buffer.length - offset < count * size) throw fail(`expected ${count * size} data bytes, found ${buffer.length - offset}`);
  const view = new DataView(buffer.buffer, buffer.byteOffset + offset, count * size);
  const data = new Out(count);
  for (let i = 0; i < count; ++i) {
    switch (descr[2]) {
      case 'f4': data[i] = view.getFloat32(i * 4, true); break;
      case 'f8': data[i] = view.getFloat64(i * 8, true); break;
      case 'u1': case 'b1': data[i] = view.getUint8(i); break;
      case 'i1': data[i] = view.getInt8(i); break;
      case 'u2': data[i] = view.getUint16(i * 2, true); break;
      case 'i2': data[i] = view.getInt16(i * 2, true); break;
      case 'u4': data[i] = view.getUint32(i * 4, true); break;
      case 'i4': data[i] = view.getInt32(i * 4, true); break;
      case 'u8': data[i] = Number(view.getBigUint64(i * 8, true)); break;
      default: data[i] = Number(view.getBigInt64(i * 8, true));
    }
  }
  return { shape, data };
}

export function readNpy(file: string): NpyArray {
  return parseNpy(readBytes(file), file);
}

const stored = {
  float32: { descr: '<f4', array: Float32Array }, uint8: { descr: '|u1', array: Uint8Array },
  uint16: { descr: '<u2', array: Uint16Array }, int16: { descr: '<i2', array: Int16Array },
} as const;

/** Writes an array (atomically); an integer dtype stores the values rounded (the caller checks they fit). */
export function writeNpy(file: string, array: NpyArray, dtype: keyof typeof stored = 'float32'): void {
  const type = stored[dtype];
  if (!type) throw new SegvolError('ERR_ARGUMENT', `npy ${file}: expected dtype ${Object.keys(stored).join(', ')}, received ${String(dtype)}`);
  let values: Float32Array | Uint8Array | Uint16Array | Int16Array = array.data;
  if (dtype !== 'float32') {
    values = new type.array(array.data.length);
    for (let i = 0; i < values.length; ++i) values[i] = Math.round(array.data[i]!);
  }
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '${type.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  MAGIC.copy(prefix);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const body = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temporary, Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(temporary, file);
}
