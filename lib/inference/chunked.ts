// Out-of-core inference: an input read window by window (with its halo), the output
// written as Zarr chunk by chunk. The output is split into blocks, one output chunk each;
// a block takes every window of the whole-volume window grid that touches it, in the
// grid's order, so its values are exactly those predictVolume gives in memory, whatever
// the split, whichever process computes it, however often. A block's chunk is written
// whole (temporary file and rename) and then marked done, so a crash leaves whole chunks
// only and a resumed run skips finished blocks. Memory: one block and its windows. The plan
// (geometry, options, statistics) is chunked_plan.ts's; an OME-Zarr output's lower levels
// are written from level 0 once every block is done.
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { NonFiniteScan } from '../core/non_finite';
import { writeLevel } from '../io/ome_zarr';
import { openVolume } from '../io/volume_array';
import { openZarr, type ZarrArray } from '../io/zarr';
import type { ModelBase } from '../nn/model';
import { argmaxClasses } from '../ops';
import { blockDone, blockMarkers, levelDoneDir, markBlockDone, outputWriter, planChunkedPrediction, type ChunkedPlan, type ChunkedPlanOptions } from './chunked_plan';
import { runStages } from './stages';
import { gaussianWeight, mirror, windowStarts } from './predict_volume';
import { flipSets, predictWindowBatch } from './windows';

export {
  planChunkedPrediction, readChunkedPlan, blockDone, blockMarkers, type ChunkedPlan, type ChunkedPlanOptions, type ChunkedOutput,
} from './chunked_plan';

/**
 * Computes one block (one output chunk) and writes it: every window of the global grid that
 * touches it, blended as predictVolume blends them. Safe to run twice or in parallel with
 * itself: the same bytes land in the same chunk.
 */
export async function predictBlock(model: ModelBase, out: string, plan: ChunkedPlan, block: number, input?: ZarrArray): Promise<void> {
  if (!Number.isInteger(block) || block < 0 || block >= plan.blocks) {
    throw new SegvolError('ERR_ARGUMENT', `predictBlock: expected a block in 0..${plan.blocks - 1}, received ${describe(block)}`);
  }
  const array = input ?? await openVolume(plan.input);
  const [D, H, W] = plan.dims;
  const [, gy, gx] = plan.grid;
  const coords = [Math.floor(block / (gy * gx)), Math.floor(block / gx) % gy, block % gx];
  const start = coords.map((c, a) => c * plan.chunks[a]!);
  const size = start.map((s, a) => Math.min(plan.chunks[a]!, plan.dims[a]! - s));
  const [bd, bh, bw] = size as [number, number, number];
  const [wd, wh, ww] = plan.window;
  const fov = model.fieldOfView() ?? [1, 1, 1];
  const lo = fov.map((f) => Math.floor((f - 1) / 2));
  const inWindow = [wd + fov[0]! - 1, wh + fov[1]! - 1, ww + fov[2]! - 1] as [number, number, number];
  const weight = gaussianWeight(plan.window, plan.sigma);
  const starts = [windowStarts(D, wd, plan.overlap[0]), windowStarts(H, wh, plan.overlap[1]), windowStarts(W, ww, plan.overlap[2])];
  const touching = starts.map((list, a) => list.filter((s) => s < start[a]! + size[a]! && s + plan.window[a]! > start[a]!));
  const windows = touching[0]!.flatMap((z0) => touching[1]!.flatMap((y0) => touching[2]!.map((x0) => [z0, y0, x0] as const)));
  const k = plan.classes, c = plan.channels;
  const n = bd * bh * bw;
  const sum = new Float32Array(k * n), norm = new Float32Array(n);
  const name = Object.keys(model.inputs)[0]!;
  const flips = flipSets(plan.tta, inWindow);
  const passSize = Math.min(plan.windowBatch, plan.windows);
  // A non-finite voxel here means the input changed since the plan's pass (or the plan zeroes them).
  const scan = new NonFiniteScan(['c', 'z', 'y', 'x']);
  /** The window's input with its field of view, mirrored at the volume's borders (as mirrorPad), normalised as planned. */
  const crop = async ([z0, y0, x0]: readonly [number, number, number]): Promise<Float32Array> => {
    const from = [z0 - lo[0]!, y0 - lo[1]!, x0 - lo[2]!];
    const idx = from.map((f, a) => Int32Array.from({ length: inWindow[a]! }, (_, i) => mirror(f + i, plan.dims[a]!)));
    const min = idx.map((v) => Math.min(...v)), max = idx.map((v) => Math.max(...v));
    const box = min.map((m, a) => max[a]! - m + 1);
    const raw = array.shape.length === 4 ? await array.read([0, min[0]!, min[1]!, min[2]!], [c, ...box]) : await array.read(min, box);
    const values = new Float32Array(c * inWindow[0] * inWindow[1] * inWindow[2]);
    for (let ch = 0; ch < c; ++ch) for (let z = 0; z < inWindow[0]; ++z) for (let y = 0; y < inWindow[1]; ++y) {
      const sz = idx[0]![z]!, sy = idx[1]![y]!;
      const rowSrc = ((ch * box[0]! + sz - min[0]!) * box[1]! + sy - min[1]!) * box[2]!;
      const dst = ((ch * inWindow[0] + z) * inWindow[1] + y) * inWindow[2];
      const [mean, std] = plan.normalize === 'slice' ? plan.stats[ch * D + sz]! : plan.normalize === 'nonzero' ? plan.stats[ch]! : [0, 1];
      for (let x = 0; x < inWindow[2]; ++x) {
        const v = raw[rowSrc + idx[2]![x]! - min[2]!]!;
        if (!Number.isFinite(v)) {
          if (plan.nonFinite === 'error') scan.point(v, [ch, sz, sy, idx[2]![x]!], sz);
          values[dst + x] = 0;
          continue;
        }
        values[dst + x] = plan.normalize === 'none' ? v : plan.normalize === 'nonzero' ? (v !== 0 && std > 0 ? (v - mean) / std : 0) : std > 0 ? (v - mean) / std : 0;
      }
    }
    return values;
  };
  for (let b = 0; b < windows.length; b += plan.windowBatch) {
    const group = windows.slice(b, b + plan.windowBatch);
    const crops: Array<Record<string, Float32Array>> = [];
    for (const w of group) crops.push({ [name]: await crop(w) });
    if (scan.count) {
      throw scan.error(`block ${block}`, `the input ${plan.input} (changed since the plan was made?)`);
    }
    const results = await predictWindowBatch(model, crops, inWindow, passSize, flips);
    group.forEach(([z0, y0, x0], j) => {
      const p = results[j]!;
      // Only this block's part of the window.
      for (let z = Math.max(0, start[0]! - z0); z < Math.min(wd, start[0]! + bd - z0); ++z)
        for (let y = Math.max(0, start[1]! - y0); y < Math.min(wh, start[1]! + bh - y0); ++y)
          for (let xx = Math.max(0, start[2]! - x0); xx < Math.min(ww, start[2]! + bw - x0); ++xx) {
            const local = (z * wh + y) * ww + xx;
            const inBlock = ((z0 + z - start[0]!) * bh + y0 + y - start[1]!) * bw + x0 + xx - start[2]!;
            const g = weight[local]!;
            norm[inBlock]! += g;
            for (let cls = 0; cls < k; ++cls) sum[cls * n + inBlock]! += g * p[cls * wd * wh * ww + local]!;
          }
    });
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
  markBlockDone(out, block);
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
 * its windows. Returns the blocks computed and skipped (already done).
 */
export async function predictChunked(model: ModelBase, input: string, out: string, options: ChunkedPredictOptions): Promise<{ computed: number; skipped: number; blocks: number; levels?: { computed: number; skipped: number } }> {
  const plan = await planChunkedPrediction(model, input, out, options);
  const part = options.part ?? { index: 0, count: 1 };
  if (!Number.isInteger(part.count) || part.count < 1 || !Number.isInteger(part.index) || part.index < 0 || part.index >= part.count) {
    throw new SegvolError('ERR_ARGUMENT', `chunked prediction: expected a part i/n with 0 <= i < n, received ${part.index}/${part.count}`);
  }
  const array = await openVolume(plan.input);
  const run = await runStages([{ name: 'predict', blocks: plan.blocks, markers: blockMarkers(out), run: (b) => predictBlock(model, out, plan, b, array) }], {
    part, resume: options.resume ?? true, ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (_stage, done, total) => options.onProgress?.(done, total),
  });
  const { computed, skipped } = run.stages[0]!;
  // The process that finds every block written writes the lower levels (its own blocks are marked first).
  let levels: { computed: number; skipped: number } | undefined;
  if (plan.ome && !options.signal?.aborted && Array.from({ length: plan.blocks }, (_, b) => b).every((b) => blockDone(out, b))) {
    levels = await writePyramid(out, plan, options.resume ?? true);
  }
  return { computed, skipped, blocks: plan.blocks, ...(levels ? { levels } : {}) };
}
