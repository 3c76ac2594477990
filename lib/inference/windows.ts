// The model passes of stitched inference, shared by predictVolume and the out-of-core blocks
// so both compute every window the same way: the options they share (overlap per axis,
// test-time augmentation, windows per pass), and one pass over a batch of windows.
//
// Batches: windowBatch windows are stacked on the batch axis. Every pass has the same batch
// size, min(windowBatch, windows in the volume): a short last batch is padded by repeating its
// last window (whose extra outputs are dropped). A window's prediction then never depends on
// how many windows a process happened to have left, which keeps a block's values those of the
// whole volume on backends whose algorithms depend on the batch size.
//
// Test-time augmentation: each pass runs on every flipped copy of its windows (every
// combination of the chosen axes, the unflipped one first), each prediction flipped back, and
// their sum divided by their count. An axis one voxel thick in the window is not flipped
// (its flip is the window itself).
import { describe, SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import type { ModelBase } from '../nn/model';
import { ops } from '../ops';
import type { NonFinitePolicy } from '../core/non_finite';

export type FlipAxis = 'z' | 'y' | 'x';
/** 'none', 'mirror' (all 8 flips of z, y and x) or every combination of flips of the given axes. */
export type Tta = 'none' | 'mirror' | { flips: readonly FlipAxis[] };
/** A fraction of a window shared with the next one: one for all axes, or (d, h, w). */
export type Overlap = number | readonly [number, number, number];

const flipAxes: readonly FlipAxis[] = ['z', 'y', 'x'];

/** The overlap per axis (default 0.5 each), each 0 <= o < 1. */
export function resolveOverlap(overlap: unknown, where: string): [number, number, number] {
  const value = overlap ?? 0.5;
  const triple = typeof value === 'number' ? [value, value, value] : value;
  if (!Array.isArray(triple) || triple.length !== 3 || triple.some((o) => typeof o !== 'number' || !(o >= 0 && o < 1))) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected overlap as a fraction 0 <= o < 1, or three of them (d, h, w), received ${describe(overlap)}`);
  }
  return [...triple] as [number, number, number];
}

/** The axes whose flips are combined, in z, y, x order ([] for none). */
export function resolveTta(tta: unknown, where: string): FlipAxis[] {
  if (tta === undefined || tta === 'none') return [];
  if (tta === 'mirror') return [...flipAxes];
  const flips = (tta as { flips?: unknown } | null)?.flips;
  if (typeof tta !== 'object' || !Array.isArray(flips) || flips.length === 0 || flips.some((a) => !flipAxes.includes(a as FlipAxis)) ||
    new Set(flips).size !== flips.length) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected tta 'none', 'mirror' or { flips: [...] } of distinct axes 'z', 'y', 'x', received ${describe(tta)}`);
  }
  return flipAxes.filter((a) => flips.includes(a));
}

/** Windows per pass (default 1). */
export function resolveWindowBatch(value: unknown, where: string): number {
  if (value === undefined) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected windowBatch as a positive integer, received ${describe(value)}`);
  }
  return value;
}

/** The flips one pass runs, as tensor axes (2: z, 3: y, 4: x): [] (none) first, then every other combination in a fixed order. */
export function flipSets(axes: readonly FlipAxis[], inWindow: readonly number[]): number[][] {
  const usable = axes.map((a) => flipAxes.indexOf(a)).filter((a) => inWindow[a]! > 1);
  const sets: number[][] = [];
  for (let mask = 0; mask < 1 << usable.length; ++mask) sets.push(usable.filter((_, i) => mask & (1 << i)).map((a) => a + 2));
  return sets;
}

/**
 * One pass over a batch of windows: `windows` holds each window's input per name, (C, d, h, w)
 * values already pre-processed; the pass runs `size` windows (the batch padded by repeating
 * its last window). Returns each window's class probabilities (K, ...output window), averaged
 * over the flips.
 */
export async function predictWindowBatch(model: ModelBase, windows: ReadonlyArray<Record<string, Float32Array>>, inWindow: readonly [number, number, number],
  size: number, flips: readonly number[][]): Promise<Float32Array[]> {
  const names = Object.keys(model.inputs);
  const count = windows.length;
  if (count < 1 || count > size) throw new SegvolError('ERR_ARGUMENT', `window batch: ${count} windows for passes of ${size}`);
  const voxels = inWindow[0] * inWindow[1] * inWindow[2];
  const inputs: Record<string, Tensor> = {};
  for (const name of names) {
    const c = model.inputs[name]!;
    const stacked = new Float32Array(size * c * voxels);
    for (let j = 0; j < size; ++j) stacked.set(windows[Math.min(j, count - 1)]![name]!, j * c * voxels);
    inputs[name] = Tensor.fromArray(stacked, [size, c, ...inWindow], { device: model.device });
  }
  let sum: Float32Array | undefined;
  try {
    for (const axes of flips.length ? flips : [[]]) {
      const flipped = Object.fromEntries(names.map((n) => [n, axes.length ? ops.flip(inputs[n]!, axes) : inputs[n]!]));
      let probs: Tensor;
      try {
        probs = await model.predict(names.length === 1 ? flipped[names[0]!]! : flipped, { preprocess: false });
      } finally {
        if (axes.length) for (const t of Object.values(flipped)) t.dispose();
      }
      const back = axes.length ? ops.flip(probs, axes) : probs;
      if (back !== probs) probs.dispose();
      const values = back.toArray();
      back.dispose();
      if (!sum) sum = values;
      else for (let i = 0; i < sum.length; ++i) sum[i]! += values[i]!;
    }
  } finally {
    for (const t of Object.values(inputs)) t.dispose();
  }
  const out = sum!;
  const passes = Math.max(1, flips.length);
  if (passes > 1) for (let i = 0; i < out.length; ++i) out[i]! /= passes;
  const m = out.length / size;
  return windows.map((_, j) => out.subarray(j * m, (j + 1) * m));
}

/** How volumes are windowed and predicted: the options in-memory stitching and out-of-core prediction share. */
export interface WindowingOptions {
  /** The output window (d, h, w) of each model pass; clipped to the volume. */
  window: readonly [number, number, number];
  /** Fraction of a window shared with the next: one for every axis, or (d, h, w) (default 0.5). */
  overlap?: Overlap;
  /** Gaussian sigma as a fraction of the window size per axis (default 1/8). */
  sigma?: number;
  /** Test-time augmentation: 'mirror' (the 8 flips of z, y, x) or { flips: ['x', 'y'] } (every combination of those); default none. */
  tta?: Tta;
  /** Windows per forward pass, stacked on the batch axis (default 1). */
  windowBatch?: number;
  /** NaN or infinite input voxels: 'error' (default: refused before any window, nothing written) or 'zero' (0 after pre-processing). */
  nonFinite?: NonFinitePolicy;
}
