// The pieces of out-of-core prediction below a block: the global window grid (the one
// predictVolume walks), the input of a set of windows read once as one region, and the
// store of shared window results. A window that lies inside one output block is computed
// by that block alone; a window that straddles blocks is computed by the first block that
// needs it, stored in the output's .segvol/windows, and read by the others, so the blocks
// of one output compute each window once (blocks running at the same moment in different
// processes may both compute a shared window not yet stored: same bytes, more work). A
// stored window goes once every block it touches is done.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NonFiniteScan } from '../core/non_finite';
import type { ZarrArray } from '../io/zarr';
import { writeAtomic } from '../io/zarr';
import type { ChunkedPlan } from './chunked_plan';
import { mirror, windowStarts } from './predict_volume';

type Triple = [number, number, number];

/** The global window grid: starts per axis, in predictVolume's order (z slowest). */
export interface WindowGrid {
  starts: [number[], number[], number[]];
  count: number;
}

export function windowGrid(plan: ChunkedPlan): WindowGrid {
  const starts = plan.dims.map((v, a) => windowStarts(v, plan.window[a]!, plan.overlap[a]!)) as [number[], number[], number[]];
  return { starts, count: starts[0].length * starts[1].length * starts[2].length };
}

/** A block's output box: its chunk coordinates, first voxel and size. */
export function blockBox(plan: ChunkedPlan, block: number): { coords: Triple; start: Triple; size: Triple } {
  const [, gy, gx] = plan.grid;
  const coords: Triple = [Math.floor(block / (gy * gx)), Math.floor(block / gx) % gy, block % gx];
  const start = coords.map((c, a) => c * plan.chunks[a]!) as Triple;
  const size = start.map((s, a) => Math.min(plan.chunks[a]!, plan.dims[a]! - s)) as Triple;
  return { coords, start, size };
}

/** One window of the grid: its index in grid order, its first voxel, and the blocks it touches. */
export interface GridWindow {
  index: number;
  start: Triple;
  blocks: number[];
}

/** The block ids along one axis that [s, s + w) touches. */
function chunkRange(s: number, w: number, chunk: number): number[] {
  const out: number[] = [];
  for (let c = Math.floor(s / chunk); c * chunk < s + w; ++c) out.push(c);
  return out;
}

/** The windows that touch a block, in grid order, each with every block it touches. */
export function windowsOfBlock(plan: ChunkedPlan, grid: WindowGrid, block: number): GridWindow[] {
  const { start, size } = blockBox(plan, block);
  const touching = grid.starts.map((list, a) => list.map((s, i) => [s, i] as const).filter(([s]) => s < start[a]! + size[a]! && s + plan.window[a]! > start[a]!));
  const [, ny, nx] = grid.starts.map((s) => s.length);
  const [, gy, gx] = plan.grid;
  const out: GridWindow[] = [];
  for (const [z0, iz] of touching[0]!) for (const [y0, iy] of touching[1]!) for (const [x0, ix] of touching[2]!) {
    const [bz, by, bx] = [chunkRange(z0, plan.window[0], plan.chunks[0]), chunkRange(y0, plan.window[1], plan.chunks[1]), chunkRange(x0, plan.window[2], plan.chunks[2])];
    const blocks = bz.flatMap((z) => by.flatMap((y) => bx.map((x) => (z * gy + y) * gx + x)));
    out.push({ index: (iz * ny! + iy) * nx! + ix, start: [z0, y0, x0], blocks });
  }
  return out;
}

/**
 * The model input of a set of windows, read as one region: in padded coordinates (the
 * output box widened by the field of view, borders mirrored as predictVolume's mirrorPad),
 * pre-processed as planned. Non-finite voxels go to `scan` (with policy 'error') and read 0.
 */
export interface InputRegion {
  /** (C, D, H, W) of the region, in padded coordinates from `origin`. */
  data: Float32Array;
  origin: Triple;
  size: Triple;
}

export async function readRegion(array: ZarrArray, plan: ChunkedPlan, fov: readonly number[], from: Triple, to: Triple, scan: NonFiniteScan): Promise<InputRegion> {
  const [D] = plan.dims;
  const c = plan.channels;
  // Padded coordinate p holds source voxel mirror(p - lo); a window at output start s reads padded [s, s + w + fov - 1).
  const lo = fov.map((f) => Math.floor((f - 1) / 2));
  const size = from.map((f, a) => to[a]! - f + fov[a]! - 1) as Triple;
  const idx = from.map((f, a) => Int32Array.from({ length: size[a]! }, (_, i) => mirror(f + i - lo[a]!, plan.dims[a]!)));
  const min = idx.map((v) => v.reduce((m, x) => Math.min(m, x), Infinity)), max = idx.map((v) => v.reduce((m, x) => Math.max(m, x), -Infinity));
  const box = min.map((m, a) => max[a]! - m + 1);
  const raw = array.shape.length === 4 ? await array.read([0, min[0]!, min[1]!, min[2]!], [c, ...box]) : await array.read(min, box);
  const [sd, sh, sw] = size;
  const data = new Float32Array(c * sd * sh * sw);
  const xs = Int32Array.from(idx[2]!, (x) => x - min[2]!);
  for (let ch = 0; ch < c; ++ch) for (let z = 0; z < sd; ++z) {
    const sz = idx[0]![z]!;
    const [mean, std] = plan.normalize === 'slice' ? plan.stats[ch * D + sz]! : plan.normalize === 'nonzero' ? plan.stats[ch]! : [0, 1];
    for (let y = 0; y < sh; ++y) {
      const sy = idx[1]![y]!;
      const rowSrc = ((ch * box[0]! + sz - min[0]!) * box[1]! + sy - min[1]!) * box[2]!;
      const dst = ((ch * sd + z) * sh + y) * sw;
      for (let x = 0; x < sw; ++x) {
        const v = raw[rowSrc + xs[x]!]!;
        if (!Number.isFinite(v)) {
          if (plan.nonFinite === 'error') scan.point(v, [ch, sz, sy, idx[2]![x]!], sz);
          data[dst + x] = 0;
          continue;
        }
        // The same arithmetic as predictVolume's pre-processing of the whole volume.
        data[dst + x] = plan.normalize === 'none' ? v : plan.normalize === 'nonzero' ? (v !== 0 && std > 0 ? (v - mean) / std : 0) : std > 0 ? (v - mean) / std : 0;
      }
    }
  }
  return { data, origin: from, size };
}

/** One window's input (C, ...inWindow) cut from a region that holds it. */
export function cropWindow(region: InputRegion, start: Triple, inWindow: Triple, channels: number): Float32Array {
  const [id, ih, iw] = inWindow;
  const [rd, rh, rw] = region.size;
  const [oz, oy, ox] = start.map((s, a) => s - region.origin[a]!);
  const crop = new Float32Array(channels * id * ih * iw);
  for (let ch = 0; ch < channels; ++ch) for (let z = 0; z < id; ++z) for (let y = 0; y < ih; ++y) {
    const src = ((ch * rd + oz! + z) * rh + oy! + y) * rw + ox!;
    crop.set(region.data.subarray(src, src + iw), ((ch * id + z) * ih + y) * iw);
  }
  return crop;
}

/** The folder of shared window results: one file per window, its (K, d, h, w) float32 probabilities. */
export const windowStore = (out: string): string => path.join(out, '.segvol', 'windows');
export const storedWindowFile = (out: string, index: number): string => path.join(windowStore(out), String(index));

/** A stored window's result, or undefined when absent (or cut short: then it is computed again). */
export function readStoredWindow(out: string, index: number, values: number): Float32Array | undefined {
  let fd: number;
  try {
    fd = fs.openSync(storedWindowFile(out, index), 'r');
  } catch {
    return undefined;
  }
  try {
    if (fs.fstatSync(fd).size !== values * 4) return undefined;
    const result = new Float32Array(values);
    const bytes = new Uint8Array(result.buffer);
    for (let at = 0; at < bytes.length;) {
      const n = fs.readSync(fd, bytes, at, bytes.length - at, at);
      if (n === 0) return undefined;
      at += n;
    }
    return result;
  } finally {
    fs.closeSync(fd);
  }
}

/** Stores a window's result whole (temporary file, then rename). */
export function storeWindow(out: string, index: number, result: Float32Array): void {
  fs.mkdirSync(windowStore(out), { recursive: true });
  writeAtomic(storedWindowFile(out, index), new Uint8Array(result.buffer, result.byteOffset, result.byteLength));
}

/** Deletes a stored window (no error if it is gone already). */
export function dropStoredWindow(out: string, index: number): void {
  fs.rmSync(storedWindowFile(out, index), { force: true });
}
