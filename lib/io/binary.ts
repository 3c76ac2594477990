// Reading files and decoding their samples: what every volume format shares.
import * as fs from 'node:fs';
import { SegvolError } from '../core/errors';

/** The sample types volume files store. */
export type SampleType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export const sampleBytes: Readonly<Record<SampleType, number>> = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, float64: 8 };

/** A whole file, or the error naming it. */
export function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `cannot read ${file}: ${(error as Error).message}`);
  }
}

/** `count` samples of a type from bytes (any alignment, either byte order) as float32. */
export function decodeSamples(bytes: Uint8Array, type: SampleType, count: number, littleEndian = true, out = new Float32Array(count)): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = littleEndian;
  for (let i = 0; i < count; ++i) {
    switch (type) {
      case 'uint8': out[i] = view.getUint8(i); break;
      case 'int8': out[i] = view.getInt8(i); break;
      case 'uint16': out[i] = view.getUint16(2 * i, le); break;
      case 'int16': out[i] = view.getInt16(2 * i, le); break;
      case 'uint32': out[i] = view.getUint32(4 * i, le); break;
      case 'int32': out[i] = view.getInt32(4 * i, le); break;
      case 'float32': out[i] = view.getFloat32(4 * i, le); break;
      case 'float64': out[i] = view.getFloat64(8 * i, le); break;
    }
  }
  return out;
}
