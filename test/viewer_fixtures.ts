// What both viewer test files need: the segvol command as a child process, and a 512^3 Zarr
// whose chunks each hold one value, so that a voxel tells which chunk it came from.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ZarrWriter } from '../lib';

export const root = path.join(__dirname, '..');

/** Node arguments that run `segvol <args>` from the sources. */
export const segvolArgs = (...args: string[]): string[] => ['-r', 'ts-node/register/transpile-only', path.join(root, 'lib', 'cli', 'main.ts'), ...args];

/** The value of every voxel of chunk (cz, cy, cx) in blockStore's array. */
export const blockValue = (cz: number, cy: number, cx: number): number => ((cz * 64 + cy * 8 + cx) % 251) + 1;

/** A 512^3 uint8 Zarr v2 in 64^3 chunks (zlib), chunk (cz, cy, cx) filled with blockValue: 512 small files. */
export function writeBlockStore(store: string): void {
  const writer = ZarrWriter.create(store, { shape: [512, 512, 512], chunks: [64, 64, 64], dtype: 'uint8', compressor: 'zlib' });
  for (let cz = 0; cz < 8; ++cz) {
    for (let cy = 0; cy < 8; ++cy) {
      for (let cx = 0; cx < 8; ++cx) fs.writeFileSync(writer.chunkPath([cz, cy, cx]), zlib.deflateSync(Buffer.alloc(64 ** 3, blockValue(cz, cy, cx))));
    }
  }
}
