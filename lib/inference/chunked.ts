// Out-of-core inference: an input read by regions (with their halo), the output written
// as Zarr chunk by chunk. The output is split into blocks, one output chunk each; a block
// blends every window of the whole-volume window grid that touches it, in the grid's order,
// so its values are exactly those predictVolume gives in memory, whatever the split,
// whichever process computes it, however often. A window inside one block is computed by
// it; a window shared by blocks is computed once by the first of them and stored for the
// others (chunked_windows.ts), so the blocks together compute the windows predictVolume
// computes, no more. A block's chunk is written whole (temporary file and rename) and then
// marked done, so a crash leaves whole chunks only and a resumed run skips finished blocks.
// Memory: one block, its input region and one batch of windows. The plan (geometry,
// options, statistics) is chunked_plan.ts's; an OME-Zarr output's lower levels are written
// from level 0 once every block is done.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { NonFiniteScan } from '../core/non_finite';
import { writeLevel } from '../io/ome_zarr';
import { openVolume } from '../io/volume_array';
import { openZarr, type ZarrArray } from '../io/zarr';
import type { ModelBase } from '../nn/model';
import { argmaxClasses } from '../ops';
import { blockDone, blockMarkers, levelDoneDir, markBlockDone, outputWriter, planChunkedPrediction, type ChunkedPlan, type ChunkedPlanOptions } from './chunked_plan';
import { cachedChunks } from './chunk_cache';
import { runStages } from './stages';

/** Decoded input chunks kept between the blocks of one process. */
const inputCacheBytes = 256 * 2 ** 20;
import { gaussianWeight } from './predict_volume';
import {
  blockBox, cropWindow, dropStoredWindow, readRegion, readStoredWindow, storedWindowFile, storeWindow, windowGrid, windowsOfBlock, windowStore, type GridWindow, type InputRegion,
} from './chunked_windows';
import { flipSets, predictWindowBatch } from './windows';

export {
  planChunkedPrediction, readChunkedPlan, blockDone, blockMarkers, type ChunkedPlan, type ChunkedPlanOptions, type ChunkedOutput,
} from './chunked_plan';

/**
 * Computes one block (one output chunk) and writes it: every window of the global grid that
 * touches it, blended as predictVolume blends them. A window inside the block is computed
 * here; one shared with other blocks is read from the window store, or computed here and
 * stored for them. Safe to run twice or in parallel with itself: the same bytes land in the
 * same chunk. Returns the windows this call computed.
 */
export async function predictBlock(model: ModelBase, out: string, plan: ChunkedPlan, block: number, input?: ZarrArray): Promise<{ windows: number }> {
  if (!Number.isInteger(block) || block < 0 || block >= plan.blocks) {
    throw new SegvolError('ERR_ARGUMENT', `predictBlock: expected a block in 0..${plan.blocks - 1}, received ${describe(block)}`);
  }
  const array = input ?? await openVolume(plan.input);
  const { coords, start, size } = blockBox(plan, block);
  const [bd, bh, bw] = size;
  const [wd, wh, ww] = plan.window;
  const fov = model.fieldOfView() ?? [1, 1, 1];
  const inWindow = [wd + fov[0]! - 1, wh + fov[1]! - 1, ww + fov[2]! - 1] as [number, number, number];
  const weight = gaussianWeight(plan.window, plan.sigma);
  const grid = windowGrid(plan);
  const windows = windowsOfBlock(plan, grid, block);
  const k = plan.classes, c = plan.channels;
  const n = bd * bh * bw;
  const values = k * wd * wh * ww;  // one window's result: (K, wd, wh, ww)
  const sum = new Float32Array(k * n), norm = new Float32Array(n);
  const name = Object.keys(model.inputs)[0]!;
  const flips = flipSets(plan.tta, inWindow);
  const passSize = Math.min(plan.windowBatch, plan.windows);
  // Shared windows another block computed already are read when their turn comes; the rest are computed here, in grid order.
  const present = new Set(windows.filter((w) => w.blocks.length > 1 && fs.existsSync(storedWindowFile(out, w.index))).map((w) => w.index));
  const pending = windows.filter((w) => !present.has(w.index));
  const scan = new NonFiniteScan(['c', 'z', 'y', 'x']);
  /** The input of these windows, read once: the box around them, with the field of view. */
  const regionOf = async (list: readonly GridWindow[]): Promise<InputRegion> => {
    const from = [0, 1, 2].map((a) => Math.min(...list.map((w) => w.start[a]!))) as [number, number, number];
    const to = [0, 1, 2].map((a) => Math.max(...list.map((w) => w.start[a]! + plan.window[a]!))) as [number, number, number];
    const region = await readRegion(array, plan, fov, from, to, scan);
    // A non-finite voxel here means the input changed since the plan's pass (or the plan zeroes them).
    if (scan.count) throw scan.error(`block ${block}`, `the input ${plan.input} (changed since the plan was made?)`);
    return region;
  };
  let computed = 0;
  const stored = new Map<number, Float32Array>();  // computed, not blended yet: at most one batch
  const compute = async (group: readonly GridWindow[], region: InputRegion): Promise<void> => {
    const results = await predictWindowBatch(model, group.map((g) => ({ [name]: cropWindow(region, g.start, inWindow, c) })), inWindow, passSize, flips);
    computed += group.length;
    group.forEach((g, j) => {
      const result = results[j]!;
      if (g.blocks.length > 1) storeWindow(out, g.index, result);
      stored.set(g.index, result);
    });
  };
  const region = pending.length ? await regionOf(pending) : undefined;
  let next = 0;  // the first pending window not computed yet
  for (const w of windows) {
    if (present.has(w.index)) {
      const read = readStoredWindow(out, w.index, values);
      // Gone since (a rerun of finished blocks dropped it): computed alone.
      if (read) stored.set(w.index, read);
      else await compute([w], await regionOf([w]));
    } else if (!stored.has(w.index)) {
      // The next batch of pending windows, this one first.
      const group = pending.slice(next, next + plan.windowBatch);
      next += group.length;
      await compute(group, region!);
    }
    const p = stored.get(w.index)!;
    stored.delete(w.index);
    const [z0, y0, x0] = w.start;
    // Only this block's part of the window.
    for (let z = Math.max(0, start[0] - z0); z < Math.min(wd, start[0] + bd - z0); ++z)
      for (let y = Math.max(0, start[1] - y0); y < Math.min(wh, start[1] + bh - y0); ++y)
        for (let xx = Math.max(0, start[2] - x0); xx < Math.min(ww, start[2] + bw - x0); ++xx) {
          const local = (z * wh + y) * ww + xx;
          const inBlock = ((z0 + z - start[0]) * bh + y0 + y - start[1]) * bw + x0 + xx - start[2];
          const g = weight[local]!;
          norm[inBlock]! += g;
          for (let cls = 0; cls < k; ++cls) sum[cls * n + inBlock]! += g * p[cls * wd * wh * ww + local]!;
        }
  }
  for (let cls = 0; cls < k; ++cls) for (let i = 0; i < n; ++i) sum[cls * n + i]! /= norm[i]!;
  const writer = outputWriter(out, plan);
  if (plan.output === 'probabilities') {
    for (let cls = 0; cls < k; ++cls) await writer.writeChunk([cls, ...coords], sum.subarray(cls * n, (cls + 1) * n));
  } else if (plan.output === 'labels') {
    await writer.writeChunk(coords, argmaxClasses(sum, 1, k));
  } else {
    await writer.writeChunk(coords, sum.subarray(plan.output.class * n, (plan.output.class + 1) * n));
  }
  const result = { windows: computed };
  markBlockDone(out, block, result);
  // A shared window is no longer needed once every block it touches is done (the last of them to finish drops it).
  for (const w of windows) if (w.blocks.length > 1 && w.blocks.every((b) => blockDone(out, b))) dropStoredWindow(out, w.index);
  return result;
}

/**
 * An OME-Zarr output's levels below 0, each from the one above, chunk by chunk (labels by
 * mode, probabilities by mean); chunks marked done are skipped unless resume is false.
 * Needs every block written.
 */
export async function writePyramid(out: string, plan: ChunkedPlan, resume = true): Promise<{ computed: number; skipped: number }> {
  const total = { computed: 0, skipped: 0 };
  const levels = plan.ome?.levels ?? [];
  for (let l = 1; l < levels.length; ++l) {
    const source = await openZarr(path.join(out, levels[l - 1]!.path));
    const factor = levels[l]!.factor.map((f, a) => f / levels[l - 1]!.factor[a]!);
    const r = await writeLevel(source, outputWriter(out, plan, l), plan.output === 'probabilities' ? [1, ...factor] : factor,
      plan.output === 'labels' ? 'mode' : 'mean', levelDoneDir(out, l), resume);
    total.computed += r.computed;
    total.skipped += r.skipped;
  }
  return total;
}

export interface ChunkedPredictOptions extends ChunkedPlanOptions {
  /** Array jobs: this process takes the blocks b with b % count === index (Slurm's SLURM_ARRAY_TASK_ID of count tasks). */
  part?: { index: number; count: number };
  /** Skip blocks already written (default true). */
  resume?: boolean;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * Predicts a Zarr volume into a Zarr output, block by block, memory bounded by one block and
 * its windows. Returns the blocks computed and skipped (already done), and the windows this
 * process computed: when blocks run one after another, each window of the grid once
 * (plan.windows in all, as predictVolume), whatever the chunks.
 */
export async function predictChunked(model: ModelBase, input: string, out: string, options: ChunkedPredictOptions): Promise<{ computed: number; skipped: number; blocks: number; windows: number; levels?: { computed: number; skipped: number } }> {
  const plan = await planChunkedPrediction(model, input, out, options);
  const part = options.part ?? { index: 0, count: 1 };
  if (!Number.isInteger(part.count) || part.count < 1 || !Number.isInteger(part.index) || part.index < 0 || part.index >= part.count) {
    throw new SegvolError('ERR_ARGUMENT', `chunked prediction: expected a part i/n with 0 <= i < n, received ${part.index}/${part.count}`);
  }
  // Neighbouring blocks read the same input chunks: decoded once while they fit.
  const array = cachedChunks(await openVolume(plan.input), inputCacheBytes);
  let windows = 0;
  const run = await runStages([{
    name: 'predict', blocks: plan.blocks, markers: blockMarkers(out),
    run: async (b) => {
      const r = await predictBlock(model, out, plan, b, array);
      windows += r.windows;
      return r;
    },
  }], {
    part, resume: options.resume ?? true, ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (_stage, done, total) => options.onProgress?.(done, total),
  });
  const { computed, skipped } = run.stages[0]!;
  const finished = Array.from({ length: plan.blocks }, (_, b) => b).every((b) => blockDone(out, b));
  // Shared windows left by blocks of an earlier run go with the last block.
  if (finished) fs.rmSync(windowStore(out), { recursive: true, force: true });
  // The process that finds every block written writes the lower levels (its own blocks are marked first).
  let levels: { computed: number; skipped: number } | undefined;
  if (plan.ome && !options.signal?.aborted && finished) {
    levels = await writePyramid(out, plan, options.resume ?? true);
  }
  return { computed, skipped, blocks: plan.blocks, windows, ...(levels ? { levels } : {}) };
}
