// A minimal 8-bit grayscale PNG writer (for slices: input | truth | prediction).
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; ++n) {
    let c = n;
    for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** pixels: height * width bytes, row-major. */
export function encodeGrayPng(pixels: Uint8Array, width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;  // bit depth
  header[9] = 0;  // grayscale
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; ++y) {
    raw[y * (width + 1)] = 0;  // filter: none
    Buffer.from(pixels.buffer, pixels.byteOffset + y * width, width).copy(raw, y * (width + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Panels of equal size (values mapped from [lo, hi] to 0..255) side by side with a 4-pixel gap. */
export function writePanelsPng(file: string, panels: Array<{ data: Float32Array; lo: number; hi: number }>, width: number, height: number): void {
  const gap = 4;
  const total = panels.length * width + (panels.length - 1) * gap;
  const pixels = new Uint8Array(total * height).fill(255);
  panels.forEach((panel, p) => {
    for (let y = 0; y < height; ++y)
      for (let x = 0; x < width; ++x) {
        const v = (panel.data[y * width + x]! - panel.lo) / (panel.hi - panel.lo);
        pixels[y * total + p * (width + gap) + x] = Math.max(0, Math.min(255, Math.round(v * 255)));
      }
  });
  fs.writeFileSync(file, encodeGrayPng(pixels, total, height));
}
