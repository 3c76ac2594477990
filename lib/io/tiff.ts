// TIFF stacks: multi-page files decoded with utif (8/16/32-bit integers, 32-bit
// floats, grayscale), pages are D; written uncompressed, one strip per page.
import * as UTIF from 'utif';
import { SegvolError } from '../core/errors';
import { decodeSamples, sampleBytes, type SampleType } from './binary';

const TYPE_BYTES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8 };

/**
 * Checks the file's structure before utif sees it: utif allocates arrays from tag
 * counts and image sizes, and a corrupt count can ask V8 for more memory than it
 * can give, which aborts the process instead of throwing. Every IFD, tag and
 * value must lie inside the file, and images must be of a plausible size.
 */
function validateTiff(buffer: Buffer, source: string): void {
  const fail = (problem: string) => new SegvolError('ERR_FORMAT', `TIFF ${source}: ${problem}; is the file truncated or corrupt?`);
  if (buffer.length < 8) throw fail('shorter than a TIFF header');
  const order = buffer.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') throw fail('no II/MM byte-order mark');
  const le = order === 'II';
  const u16 = (o: number) => (le ? buffer.readUInt16LE(o) : buffer.readUInt16BE(o));
  const u32 = (o: number) => (le ? buffer.readUInt32LE(o) : buffer.readUInt32BE(o));
  if (u16(2) !== 42) throw fail(u16(2) === 43 ? 'BigTIFF is not supported' : 'not a TIFF file (magic is not 42)');
  const seen = new Set<number>();
  let offset = u32(4);
  let pages = 0;
  while (offset !== 0) {
    if (offset + 2 > buffer.length || seen.has(offset)) throw fail(`IFD at ${offset} is outside the file or repeats`);
    seen.add(offset);
    if (++pages > 100000) throw fail('more than 100000 pages');
    const entries = u16(offset);
    if (offset + 2 + entries * 12 + 4 > buffer.length) throw fail(`IFD at ${offset} with ${entries} entries runs past the end`);
    let width = 0, height = 0, bits = 8, samples = 1;
    for (let e = 0; e < entries; ++e) {
      const at = offset + 2 + e * 12;
      const tag = u16(at), type = u16(at + 2), count = u32(at + 4);
      const size = TYPE_BYTES[type];
      if (!size) throw fail(`tag ${tag} has unknown type ${type}`);
      const bytes = size * count;
      if (bytes > buffer.length) throw fail(`tag ${tag} claims ${bytes} bytes`);
      if (bytes > 4 && u32(at + 8) + bytes > buffer.length) throw fail(`tag ${tag} points past the end`);
      const value = type === 3 ? u16(at + 8) : u32(at + 8);
      if (tag === 256) width = value;
      if (tag === 257) height = value;
      if (tag === 258 && count === 1) bits = value;
      if (tag === 277) samples = value;
    }
    if (width * height * Math.max(1, bits / 8) * Math.max(1, samples) > 1 << 30) throw fail(`an image of ${width}x${height} is implausibly large`);
    offset = u32(offset + 2 + entries * 12);
  }
}

export function parseTiff(buffer: Buffer, source = '(buffer)'): { data: Float32Array; shape: [number, number, number]; dtype: string } {
  validateTiff(buffer, source);
  let ifds: UTIF.IFD[];
  try {
    ifds = UTIF.decode(buffer);
  } catch (error) {
    throw new SegvolError('ERR_FORMAT', `TIFF ${source}: cannot decode (${(error as Error).message}); is the file truncated?`);
  }
  const pages = ifds.filter((ifd) => ifd.t256 !== undefined);
  if (pages.length === 0) throw new SegvolError('ERR_FORMAT', `TIFF ${source}: no image pages`);
  let width = 0, height = 0, dtype = '';
  const planes: Float32Array[] = [];
  for (const [index, ifd] of pages.entries()) {
    try {
      UTIF.decodeImage(buffer, ifd);
    } catch (error) {
      throw new SegvolError('ERR_FORMAT', `TIFF ${source}: page ${index} cannot be decoded (${(error as Error).message})`);
    }
    const bits = ((ifd.t258 as number[] | undefined) ?? [1])[0]!;
    const samples = ((ifd.t277 as number[] | undefined) ?? [1])[0]!;
    const format = ((ifd.t339 as number[] | undefined) ?? [1])[0]!;  // 1 uint, 2 int, 3 float
    if (samples !== 1) throw new SegvolError('ERR_FORMAT', `TIFF ${source}: page ${index} has ${samples} samples per pixel; convert to grayscale`);
    if (index === 0) {
      width = ifd.width;
      height = ifd.height;
    } else if (ifd.width !== width || ifd.height !== height) {
      throw new SegvolError('ERR_FORMAT', `TIFF ${source}: page ${index} is ${ifd.width}x${ifd.height}, page 0 ${width}x${height}`);
    }
    const n = width * height;
    const data = ifd.data;
    if (!data || data.length < (n * bits) / 8) throw new SegvolError('ERR_FORMAT', `TIFF ${source}: page ${index} has too little pixel data`);
    const le = (buffer[0] === 0x49);  // 'II' little-endian, 'MM' big-endian
    const plane = new Float32Array(n);
    const kind = format === 3 ? 'float' : format === 2 ? 'int' : 'uint';
    dtype = `${kind}${bits}`;
    // Little-endian data at an aligned offset converts through a typed-array view (no per-pixel DataView calls).
    const views: Record<string, new (b: ArrayBufferLike, o: number, n: number) => ArrayLike<number>> = {
      uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array, uint32: Uint32Array, int32: Int32Array, float32: Float32Array,
    };
    const View = views[dtype];
    if (View && le && data.byteOffset % (bits / 8) === 0) {
      plane.set(new View(data.buffer, data.byteOffset, n));
      planes.push(plane);
      continue;
    }
    if (!(dtype in sampleBytes) || dtype === 'float64') throw new SegvolError('ERR_FORMAT', `TIFF ${source}: unsupported pixel type ${dtype}`);
    planes.push(decodeSamples(data, dtype as SampleType, n, le, plane));
  }
  const out = new Float32Array(planes.length * width * height);
  planes.forEach((p, i) => out.set(p, i * width * height));
  return { data: out, shape: [planes.length, height, width], dtype };
}

/** An uncompressed little-endian multi-page TIFF of a (D, H, W) volume. */
export function serializeTiff(data: Float32Array, shape: readonly [number, number, number], dtype: 'float32' | 'uint16' | 'uint8' = 'float32'): Buffer {
  const [d, h, w] = shape;
  if (d * h * w !== data.length) throw new SegvolError('ERR_SHAPE', `TIFF: shape (${shape.join(', ')}) does not hold ${data.length} values`);
  const bytes = dtype === 'float32' ? 4 : dtype === 'uint16' ? 2 : 1;
  const tags = 10;
  const ifdSize = 2 + tags * 12 + 4;
  const pageBytes = w * h * bytes;
  const chunks: Buffer[] = [];
  const headerBuf = Buffer.alloc(8);
  headerBuf.write('II', 0, 'latin1');
  headerBuf.writeUInt16LE(42, 2);
  headerBuf.writeUInt32LE(8, 4);
  chunks.push(headerBuf);
  let offset = 8;
  for (let z = 0; z < d; ++z) {
    const dataOffset = offset + ifdSize;
    const next = z + 1 < d ? dataOffset + pageBytes : 0;
    const ifd = Buffer.alloc(ifdSize);
    ifd.writeUInt16LE(tags, 0);
    const entries: Array<[number, number, number, number]> = [  // tag, type (3 short, 4 long), count, value
      [256, 4, 1, w], [257, 4, 1, h], [258, 3, 1, bytes * 8], [259, 3, 1, 1], [262, 3, 1, 1],
      [273, 4, 1, dataOffset], [277, 3, 1, 1], [278, 4, 1, h], [279, 4, 1, pageBytes], [339, 3, 1, dtype === 'float32' ? 3 : 1],
    ];
    entries.forEach(([tag, type, count, value], i) => {
      const o = 2 + i * 12;
      ifd.writeUInt16LE(tag, o);
      ifd.writeUInt16LE(type, o + 2);
      ifd.writeUInt32LE(count, o + 4);
      if (type === 3) ifd.writeUInt16LE(value, o + 8); else ifd.writeUInt32LE(value, o + 8);
    });
    ifd.writeUInt32LE(next, 2 + tags * 12);
    const page = Buffer.alloc(pageBytes);
    for (let i = 0; i < w * h; ++i) {
      const v = data[z * w * h + i]!;
      if (dtype === 'float32') page.writeFloatLE(v, 4 * i);
      else if (dtype === 'uint16') page.writeUInt16LE(Math.min(65535, Math.max(0, Math.round(v))), 2 * i);
      else page.writeUInt8(Math.min(255, Math.max(0, Math.round(v))), i);
    }
    chunks.push(ifd, page);
    offset = dataOffset + pageBytes;
  }
  return Buffer.concat(chunks);
}
