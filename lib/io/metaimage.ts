// MetaImage (.mha): ITK's format, in which BRATS 2013-2015 ship their volumes. An
// ASCII header of "Key = Value" lines up to "ElementDataFile = LOCAL", then the voxels,
// x fastest, zlib-compressed when CompressedData = True. Only single-file .mha with
// embedded data is read (an .mhd header with a separate .raw file is not).
import * as zlib from 'node:zlib';
import { SegvolError } from '../core/errors';

const elementTypes: Record<string, { size: number; read: (v: DataView, o: number, le: boolean) => number; name: string }> = {
  MET_UCHAR: { size: 1, read: (v, o) => v.getUint8(o), name: 'uint8' },
  MET_CHAR: { size: 1, read: (v, o) => v.getInt8(o), name: 'int8' },
  MET_USHORT: { size: 2, read: (v, o, le) => v.getUint16(o, le), name: 'uint16' },
  MET_SHORT: { size: 2, read: (v, o, le) => v.getInt16(o, le), name: 'int16' },
  MET_UINT: { size: 4, read: (v, o, le) => v.getUint32(o, le), name: 'uint32' },
  MET_INT: { size: 4, read: (v, o, le) => v.getInt32(o, le), name: 'int32' },
  MET_FLOAT: { size: 4, read: (v, o, le) => v.getFloat32(o, le), name: 'float32' },
  MET_DOUBLE: { size: 8, read: (v, o, le) => v.getFloat64(o, le), name: 'float64' },
};

/** Parses an .mha file: (D, H, W) float32 voxels (or (C, D, H, W) with ElementNumberOfChannels), spacing (z, y, x). */
export function parseMetaImage(bytes: Buffer, source: string): { data: Float32Array; shape: number[]; spacing?: [number, number, number]; dtype: string } {
  const header = new Map<string, string>();
  let offset = 0;
  for (;;) {
    const end = bytes.indexOf(0x0a, offset);
    if (end < 0 || end - offset > 4096) throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: no 'ElementDataFile = LOCAL' line ends the header`);
    const line = bytes.subarray(offset, end).toString('latin1').replace(/\r$/, '');
    offset = end + 1;
    const eq = line.indexOf('=');
    if (eq < 0) {
      if (line.trim() === '') continue;
      throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: expected 'Key = Value' header lines, received '${line.slice(0, 60)}'`);
    }
    const key = line.slice(0, eq).trim(), value = line.slice(eq + 1).trim();
    header.set(key, value);
    if (key === 'ElementDataFile') {
      if (value !== 'LOCAL') {
        throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: the voxels are in a separate file (${value}); segvol reads .mha files with embedded data ` +
          '(ElementDataFile = LOCAL); convert with ITK or SimpleITK (sitk.WriteImage(sitk.ReadImage(f), "out.mha"))');
      }
      break;
    }
  }
  const dims = (header.get('DimSize') ?? '').split(/\s+/).filter(Boolean).map(Number);
  if (dims.length < 2 || dims.length > 3 || dims.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: expected DimSize of 2 or 3 positive integers, received '${header.get('DimSize') ?? ''}'`);
  }
  const type = elementTypes[header.get('ElementType') ?? ''];
  if (!type) {
    throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: unsupported ElementType '${header.get('ElementType') ?? ''}'; expected one of ${Object.keys(elementTypes).join(', ')}`);
  }
  const channels = Number(header.get('ElementNumberOfChannels') ?? 1);
  const littleEndian = !/^true$/i.test(header.get('BinaryDataByteOrderMSB') ?? header.get('ElementByteOrderMSB') ?? 'False');
  const compressed = /^true$/i.test(header.get('CompressedData') ?? 'False');
  let payload = bytes.subarray(offset);
  if (compressed) {
    try {
      payload = zlib.inflateSync(payload);
    } catch (error) {
      throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: cannot inflate the compressed voxels (${(error as Error).message})`);
    }
  }
  const [w, h, d] = [dims[0]!, dims[1]!, dims[2] ?? 1];
  const count = w * h * d * channels;
  if (payload.length < count * type.size) {
    throw new SegvolError('ERR_FORMAT', `MetaImage ${source}: DimSize ${dims.join(' ')} of ${header.get('ElementType')} needs ${count * type.size} bytes, the file has ${payload.length}`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const data = new Float32Array(count);
  if (channels === 1) {
    for (let i = 0; i < count; ++i) data[i] = type.read(view, i * type.size, littleEndian);
  } else {
    // Channels are interleaved per voxel; segvol keeps them as the leading axis.
    const voxels = w * h * d;
    for (let i = 0; i < voxels; ++i) for (let c = 0; c < channels; ++c) data[c * voxels + i] = type.read(view, (i * channels + c) * type.size, littleEndian);
  }
  const spacing = (header.get('ElementSpacing') ?? header.get('ElementSize') ?? '').split(/\s+/).filter(Boolean).map(Number);
  const shape = channels === 1 ? [d, h, w] : [channels, d, h, w];
  return {
    data, shape, dtype: type.name,
    ...(spacing.length >= 2 && spacing.every((s) => s > 0) ? { spacing: [spacing[2] ?? 1, spacing[1]!, spacing[0]!] as [number, number, number] } : {}),
  };
}

const written = {
  float32: { tag: 'MET_FLOAT', size: 4, put: (b: Buffer, v: number, o: number) => b.writeFloatLE(v, o) },
  int16: { tag: 'MET_SHORT', size: 2, put: (b: Buffer, v: number, o: number) => b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v))), o) },
  uint8: { tag: 'MET_UCHAR', size: 1, put: (b: Buffer, v: number, o: number) => b.writeUInt8(Math.max(0, Math.min(255, Math.round(v))), o) },
  uint16: { tag: 'MET_USHORT', size: 2, put: (b: Buffer, v: number, o: number) => b.writeUInt16LE(Math.max(0, Math.min(65535, Math.round(v))), o) },
} as const;

/** Serialises a (D, H, W) volume as an .mha file (MET_FLOAT, or MET_SHORT, MET_UCHAR, MET_USHORT for integers), zlib-compressed like BRATS's. */
export function serializeMetaImage(data: Float32Array, shape: readonly number[],
  options: { dtype?: 'float32' | 'int16' | 'uint8' | 'uint16'; spacing?: readonly number[]; compress?: boolean } = {}): Buffer {
  if (shape.length !== 3) throw new SegvolError('ERR_SHAPE', `MetaImage: expected a (D, H, W) volume, received (${shape.join(', ')})`);
  const [d, h, w] = shape as [number, number, number];
  const type = written[options.dtype ?? 'float32'];
  const raw = Buffer.alloc(data.length * type.size);
  for (let i = 0; i < data.length; ++i) type.put(raw, data[i]!, type.size * i);
  const compress = options.compress ?? true;
  const payload = compress ? zlib.deflateSync(raw) : raw;
  const s = options.spacing ?? [1, 1, 1];
  const lines = [
    'ObjectType = Image', 'NDims = 3', 'BinaryData = True', 'BinaryDataByteOrderMSB = False',
    `CompressedData = ${compress ? 'True' : 'False'}`, ...(compress ? [`CompressedDataSize = ${payload.length}`] : []),
    'TransformMatrix = 1 0 0 0 1 0 0 0 1', 'Offset = 0 0 0', 'AnatomicalOrientation = RAI',
    `ElementSpacing = ${s[2]} ${s[1]} ${s[0]}`, `DimSize = ${w} ${h} ${d}`, `ElementType = ${type.tag}`, 'ElementDataFile = LOCAL',
  ];
  return Buffer.concat([Buffer.from(`${lines.join('\n')}\n`, 'latin1'), payload]);
}
