// Out-of-core inference: a Zarr input read window by window (with its halo), the output
// written as Zarr chunk by chunk. The output is split into blocks, one output chunk each;
// a block takes every window of the whole-volume window grid that touches it, in the
// grid's order, so its values are exactly those predictVolume gives in memory, whatever
// the split, whichever process computes it, however often. A block's chunk is written
// whole (temporary file and rename) and then marked done, so a crash leaves whole chunks
// only and a resumed run skips finished blocks. Memory: one block and its windows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { Tensor } from '../core/tensor';
import { openZarr, writeAtomic, ZarrWriter, type ZarrArray, type ZarrCompressor } from '../io/zarr';
import { normalizationOf, type ModelBase } from '../nn/model';
import { gaussianWeight, mirror, windowStarts } from './predict_volume';
import { argmaxClasses } from '../ops';

export type ChunkedOutput = 'labels' | 'probabilities' | { class: number };

export interface ChunkedPlanOptions {
  /** The output window (d, h, w) of each model pass, clipped to the volume. */
  window: readonly [number, number, number];
  /** Fraction of a window shared with the next (default 0.5). */
  overlap?: number;
  /** Gaussian sigma as a fraction of the window (default 1/8). */
  sigma?: number;
  /** Class ids (default), class probabilities (K, D, H, W), or one class's probability. */
  output?: ChunkedOutput;
  /** Output chunk (d, h, w); a block is one chunk (default: the input's spatial chunks). */
  chunks?: readonly [number, number, number];
  compressor?: ZarrCompressor;
  zarrVersion?: 2 | 3;
}

/** What every process working on one output agrees on, stored in the output's .segvol/plan.json. */
export interface ChunkedPlan {
  input: string;
  dims: [number, number, number];
  channels: number;
  window: [number, number, number];
  overlap: number;
  sigma: number;
  output: ChunkedOutput;
  chunks: [number, number, number];
  /** Blocks per axis and in all. */
  grid: [number, number, number];
  blocks: number;
  normalize: 'slice' | 'nonzero' | 'none';
  /** Per channel and slice (slice) or per channel (nonzero): mean and standard deviation. */
  stats: Array<[number, number]>;
  classes: number;
  /** The output's storage, so every block's chunks match the metadata. */
  compressor: ZarrCompressor;
  zarrVersion: 2 | 3;
}

const planFile = (out: string) => path.join(out, '.segvol', 'plan.json');
const doneFile = (out: string, block: number) => path.join(out, '.segvol', 'done', String(block));

/** Reads the input slab by slab (one chunk deep) and calls visit(channel, z, values of the slice). */
async function forEachSlice(input: ZarrArray, dims: readonly number[], channels: number, visit: (c: number, z: number, slice: Float32Array) => void): Promise<void> {
  const [D, H, W] = dims as [number, number, number];
  const depth = input.chunks[input.chunks.length - 3] ?? 1;
  for (let z0 = 0; z0 < D; z0 += depth) {
    const d = Math.min(depth, D - z0);
    const data = input.shape.length === 4 ? await input.read([0, z0, 0, 0], [channels, d, H, W]) : await input.read([z0, 0, 0], [d, H, W]);
    for (let c = 0; c < channels; ++c) for (let z = 0; z < d; ++z) visit(c, z0 + z, data.subarray((c * d + z) * H * W, (c * d + z + 1) * H * W));
  }
}

/**
 * Plans an out-of-core prediction: opens the input, computes the normalisation's statistics
 * in one streaming pass (per slice, or per channel over non-zero voxels), creates the output
 * array and writes the plan beside it. Idempotent: an existing plan for the same job is kept.
 */
export async function planChunkedPrediction(model: ModelBase, input: string, out: string, options: ChunkedPlanOptions): Promise<ChunkedPlan> {
  const names = Object.keys(model.inputs);
  if (names.length !== 1) throw new SegvolError('ERR_ARGUMENT', `chunked prediction: the model has inputs ${names.join(', ')}; it takes single-input models`);
  if (!Array.isArray(options.window) || options.window.length !== 3 || options.window.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `chunked prediction: expected window as three positive integers (d, h, w), received ${describe(options.window)}`);
  }
  const array = await openZarr(input);
  const rank = array.shape.length;
  if (rank !== 3 && rank !== 4) throw new SegvolError('ERR_SHAPE', `chunked prediction: ${input} is (${array.shape.join(', ')}); expected (D, H, W) or (C, D, H, W)`);
  const channels = rank === 4 ? array.shape[0]! : 1;
  if (channels !== model.inChannels) throw new SegvolError('ERR_SHAPE', `chunked prediction: ${input} has ${channels} channel(s), the model takes ${model.inChannels}`);
  const dims = array.shape.slice(-3) as [number, number, number];
  const mode = normalizationOf(model.info, names[0]!);
  if (mode === 'mr') {
    throw new SegvolError('ERR_ARGUMENT', 'chunked prediction: the MR pipeline filters whole slices (Gaussian, CLAHE); pre-process the volume first and predict with --normalize none');
  }
  const existing = fs.existsSync(planFile(out)) ? JSON.parse(fs.readFileSync(planFile(out), 'utf8')) as ChunkedPlan : undefined;
  const window = dims.map((v, a) => Math.min(options.window[a]!, v)) as [number, number, number];
  const chunks = (options.chunks ?? array.chunks.slice(-3)) as [number, number, number];
  const output = options.output ?? 'labels';
  const overlap = options.overlap ?? 0.5, sigma = options.sigma ?? 1 / 8;
  if (existing) {
    const same = existing.input === input && existing.window.join() === window.join() && existing.chunks.join() === chunks.join() &&
      JSON.stringify(existing.output) === JSON.stringify(output) && existing.overlap === overlap && existing.sigma === sigma;
    if (!same) {
      throw new SegvolError('ERR_ARGUMENT', `chunked prediction: ${out} holds a different job (${existing.input}, window ${existing.window.join('x')}, chunks ${existing.chunks.join('x')}); ` +
        'give another output, or delete it to start again');
    }
    return existing;
  }
  const stats: Array<[number, number]> = [];
  if (mode === 'slice') {
    // Per (channel, slice): mean, then the spread about it, as normalizeSlices computes them.
    const [, H, W] = dims;
    await forEachSlice(array, dims, channels, (c, z, slice) => {
      let sum = 0;
      for (let i = 0; i < H * W; ++i) sum += slice[i]!;
      const mean = sum / (H * W);
      let sq = 0;
      for (let i = 0; i < H * W; ++i) sq += (slice[i]! - mean) ** 2;
      stats[c * dims[0] + z] = [mean, Math.sqrt(sq / (H * W))];
    });
  } else if (mode === 'nonzero') {
    const sums = new Array<number>(channels).fill(0), counts = new Array<number>(channels).fill(0), sqs = new Array<number>(channels).fill(0);
    await forEachSlice(array, dims, channels, (c, _z, slice) => {
      for (const v of slice) if (v !== 0) { sums[c]! += v; counts[c]! += 1; }
    });
    const means = sums.map((s, c) => (counts[c] ? s / counts[c]! : 0));
    await forEachSlice(array, dims, channels, (c, _z, slice) => {
      for (const v of slice) if (v !== 0) sqs[c]! += (v - means[c]!) ** 2;
    });
    for (let c = 0; c < channels; ++c) stats.push([means[c]!, counts[c] ? Math.sqrt(sqs[c]! / counts[c]!) : 0]);
  }
  const grid = dims.map((v, a) => Math.ceil(v / chunks[a]!)) as [number, number, number];
  const classes = model.outChannels;
  const plan: ChunkedPlan = {
    input, dims, channels, window, overlap, sigma, output, chunks, grid, blocks: grid[0] * grid[1] * grid[2], normalize: mode, stats, classes,
    zarrVersion: options.zarrVersion ?? 2, compressor: options.compressor ?? (options.zarrVersion === 3 ? 'gzip' : 'zlib'),
  };
  outputWriter(out, plan, true);
  fs.mkdirSync(path.join(out, '.segvol', 'done'), { recursive: true });
  writeAtomic(planFile(out), JSON.stringify(plan));
  return plan;
}

/** The output array: class ids (uint8, or uint16 past 255 classes), K probabilities, or one class's. */
function outputWriter(out: string, plan: ChunkedPlan, create = false): ZarrWriter {
  const labels = plan.output === 'labels';
  const probabilities = plan.output === 'probabilities';
  return (create ? ZarrWriter.create : ZarrWriter.attach)(out, {
    shape: probabilities ? [plan.classes, ...plan.dims] : [...plan.dims],
    chunks: probabilities ? [1, ...plan.chunks] : [...plan.chunks],
    dtype: labels ? (plan.classes > 255 ? 'uint16' : 'uint8') : 'float32',
    compressor: plan.compressor, zarrVersion: plan.zarrVersion,
  });
}

/** Reads the plan an earlier planChunkedPrediction wrote. */
export function readChunkedPlan(out: string): ChunkedPlan {
  if (!fs.existsSync(planFile(out))) {
    throw new SegvolError('ERR_ARGUMENT', `${out}: no prediction plan (.segvol/plan.json); plan it first (segvol predict --out ${out} writes it)`);
  }
  return JSON.parse(fs.readFileSync(planFile(out), 'utf8')) as ChunkedPlan;
}

/** Whether a block's chunk is written. */
export function blockDone(out: string, block: number): boolean {
  return fs.existsSync(doneFile(out, block));
}

/**
 * Computes one block (one output chunk) and writes it: every window of the global grid that
 * touches it, blended as predictVolume blends them. Safe to run twice or in parallel with
 * itself: the same bytes land in the same chunk.
 */
export async function predictBlock(model: ModelBase, out: string, plan: ChunkedPlan, block: number, input?: ZarrArray): Promise<void> {
  if (!Number.isInteger(block) || block < 0 || block >= plan.blocks) {
    throw new SegvolError('ERR_ARGUMENT', `predictBlock: expected a block in 0..${plan.blocks - 1}, received ${describe(block)}`);
  }
  const array = input ?? await openZarr(plan.input);
  const [D, H, W] = plan.dims;
  const [, gy, gx] = plan.grid;
  const coords = [Math.floor(block / (gy * gx)), Math.floor(block / gx) % gy, block % gx];
  const start = coords.map((c, a) => c * plan.chunks[a]!);
  const size = start.map((s, a) => Math.min(plan.chunks[a]!, plan.dims[a]! - s));
  const [bd, bh, bw] = size as [number, number, number];
  const [wd, wh, ww] = plan.window;
  const fov = model.fieldOfView() ?? [1, 1, 1];
  const lo = fov.map((f) => Math.floor((f - 1) / 2));
  const inWindow = [wd + fov[0]! - 1, wh + fov[1]! - 1, ww + fov[2]! - 1];
  const weight = gaussianWeight(plan.window, plan.sigma);
  const starts = [windowStarts(D, wd, plan.overlap), windowStarts(H, wh, plan.overlap), windowStarts(W, ww, plan.overlap)];
  const touching = starts.map((list, a) => list.filter((s) => s < start[a]! + size[a]! && s + plan.window[a]! > start[a]!));
  const k = plan.classes, c = plan.channels;
  const n = bd * bh * bw;
  const sum = new Float32Array(k * n), norm = new Float32Array(n);
  const device = model.device;
  for (const z0 of touching[0]!) for (const y0 of touching[1]!) for (const x0 of touching[2]!) {
    // The window's input with its field of view, mirrored at the volume's borders (as mirrorPad).
    const from = [z0 - lo[0]!, y0 - lo[1]!, x0 - lo[2]!];
    const idx = from.map((f, a) => Int32Array.from({ length: inWindow[a]! }, (_, i) => mirror(f + i, plan.dims[a]!)));
    const min = idx.map((v) => Math.min(...v)), max = idx.map((v) => Math.max(...v));
    const box = min.map((m, a) => max[a]! - m + 1);
    const raw = array.shape.length === 4 ? await array.read([0, min[0]!, min[1]!, min[2]!], [c, ...box]) : await array.read(min, box);
    const crop = new Float32Array(c * inWindow[0]! * inWindow[1]! * inWindow[2]!);
    for (let ch = 0; ch < c; ++ch) for (let z = 0; z < inWindow[0]!; ++z) for (let y = 0; y < inWindow[1]!; ++y) {
      const sz = idx[0]![z]!, sy = idx[1]![y]!;
      const rowSrc = ((ch * box[0]! + sz - min[0]!) * box[1]! + sy - min[1]!) * box[2]!;
      const dst = ((ch * inWindow[0]! + z) * inWindow[1]! + y) * inWindow[2]!;
      const [mean, std] = plan.normalize === 'slice' ? plan.stats[ch * D + sz]! : plan.normalize === 'nonzero' ? plan.stats[ch]! : [0, 1];
      for (let x = 0; x < inWindow[2]!; ++x) {
        const v = raw[rowSrc + idx[2]![x]! - min[2]!]!;
        crop[dst + x] = plan.normalize === 'none' ? v : plan.normalize === 'nonzero' ? (v !== 0 && std > 0 ? (v - mean) / std : 0) : std > 0 ? (v - mean) / std : 0;
      }
    }
    const x = Tensor.fromArray(crop, [1, c, inWindow[0]!, inWindow[1]!, inWindow[2]!], { device });
    const probs = await model.predict(x, { preprocess: false });
    x.dispose();
    const p = probs.toArray();
    probs.dispose();
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
  writeAtomic(doneFile(out, block), '');
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
export async function predictChunked(model: ModelBase, input: string, out: string, options: ChunkedPredictOptions): Promise<{ computed: number; skipped: number; blocks: number }> {
  const plan = await planChunkedPrediction(model, input, out, options);
  const part = options.part ?? { index: 0, count: 1 };
  if (!Number.isInteger(part.count) || part.count < 1 || !Number.isInteger(part.index) || part.index < 0 || part.index >= part.count) {
    throw new SegvolError('ERR_ARGUMENT', `chunked prediction: expected a part i/n with 0 <= i < n, received ${part.index}/${part.count}`);
  }
  const mine = Array.from({ length: plan.blocks }, (_, b) => b).filter((b) => b % part.count === part.index);
  const array = await openZarr(plan.input);
  let computed = 0, skipped = 0;
  for (const b of mine) {
    if (options.signal?.aborted) break;
    if ((options.resume ?? true) && blockDone(out, b)) ++skipped;
    else {
      await predictBlock(model, out, plan, b, array);
      ++computed;
    }
    options.onProgress?.(computed + skipped, mine.length);
  }
  return { computed, skipped, blocks: plan.blocks };
}
