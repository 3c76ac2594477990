// safetensors: 8-byte little-endian header length, a JSON header mapping names to
// { dtype, shape, data_offsets } (plus optional string __metadata__), then raw
// little-endian data. segvol writes F32; it reads F32, F64, F16, BF16 and integer
// tensors, converting to float32.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import { readBytes } from './binary';

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedArray>;
  metadata: Record<string, string>;
}

const bytesPerElement: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

function formatError(source: string, problem: string): SegvolError {
  return new SegvolError('ERR_FORMAT', `safetensors ${source}: ${problem}; is this a safetensors file written whole?`);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function decode(dtype: string, bytes: Buffer, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; ++i) {
    switch (dtype) {
      case 'F32': out[i] = view.getFloat32(i * 4, true); break;
      case 'F64': out[i] = view.getFloat64(i * 8, true); break;
      case 'F16': out[i] = halfToFloat(view.getUint16(i * 2, true)); break;
      case 'BF16': {
        const scratch = new DataView(new ArrayBuffer(4));
        scratch.setUint32(0, view.getUint16(i * 2, true) << 16, true);
        out[i] = scratch.getFloat32(0, true);
        break;
      }
      case 'I64': out[i] = Number(view.getBigInt64(i * 8, true)); break;
      case 'I32': out[i] = view.getInt32(i * 4, true); break;
      case 'I16': out[i] = view.getInt16(i * 2, true); break;
      case 'I8': out[i] = view.getInt8(i); break;
      default: out[i] = view.getUint8(i); break;  // U8, BOOL
    }
  }
  return out;
}

/** Parses safetensors bytes; source names the file in errors. */
export function parseSafetensors(buffer: Buffer, source = '(buffer)'): SafetensorsFile {
  if (buffer.length < 8) throw formatError(source, `expected at least 8 bytes, received ${buffer.length}`);
  const headerLength = Number(buffer.readBigUInt64LE(0));
  if (headerLength > buffer.length - 8 || headerLength > 100 * 1024 * 1024) {
    throw formatError(source, `header length ${headerLength} exceeds the file's ${buffer.length - 8} remaining bytes`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw formatError(source, 'the header is not valid JSON');
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw formatError(source, 'the header is not a JSON object');
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const size = typeof e.dtype === 'string' ? bytesPerElement[e.dtype] : undefined;
    if (!size) throw formatError(source, `tensor '${name}' has unsupported dtype ${String(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.some((s) => !Number.isInteger(s) || s < 0)) {
      throw formatError(source, `tensor '${name}' has an invalid shape`);
    }
    const shape = e.shape as number[];
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw formatError(source, `tensor '${name}' has invalid data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * size || dataStart + end > buffer.length) {
      throw formatError(source, `tensor '${name}' (${e.dtype} ${JSON.stringify(shape)}) expects ${count * size} bytes at ` +
        `[${begin}, ${end}), beyond or unlike the ${buffer.length - dataStart} data bytes present`);
    }
    tensors.set(name, { shape, data: decode(e.dtype as string, buffer.subarray(dataStart + begin, dataStart + end), count) });
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): SafetensorsFile {
  return parseSafetensors(readBytes(file), file);
}

/** Serialises float32 arrays (names sorted, as the reference implementation does). */
export function serializeSafetensors(tensors: ReadonlyMap<string, NamedArray>, metadata: Record<string, string> = {}): Buffer {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SegvolError('ERR_SHAPE', `safetensors: tensor '${name}' has shape ${JSON.stringify(t.shape)} ` +
        `(${count} values) but ${t.data.length} values`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);  // keeps the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let position = 8 + headerBytes.length;
  for (const name of names) {
    const data = tensors.get(name)!.data;
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, position);
    position += data.byteLength;
  }
  return out;
}

/** Writes atomically: a temporary file in the same folder, then a rename. */
export function writeSafetensors(file: string, tensors: ReadonlyMap<string, NamedArray>, metadata: Record<string, string> = {}): void {
  const bytes = serializeSafetensors(tensors, metadata);
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temporary, bytes);
  fs.renameSync(temporary, file);
}
