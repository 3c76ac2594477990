// Propagation out of core: the image read patch by patch from any volume (a Zarr store by
// regions), the labels written to a Zarr array (D, H, W) of int32, one frame per chunk row.
// Each patch's result (its core) goes to a file of its own, written whole, so a killed run
// resumes where it stopped, and several processes (array jobs, --block i/n) share the tiles
// of every sub-volume on the stage runner (lib/inference/stages.ts): each computes its share,
// then one writes the sub-volume's frames from the tiles' files while the others wait.
// Sub-volumes follow each other, since each starts from the last frame the one before
// labelled. The result equals segmentConsistent's in memory with the same plan.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, SegvolError } from '../../core/errors';
import { sliceStatistics } from '../../data/preprocess';
import { readLabelFrame } from '../../io/labels';
import { openVolume } from '../../io/volume_array';
import { blockPart, runStages, type BlockPart, type BlockStage } from '../../inference/stages';
import { openZarr, writeAtomic, ZarrWriter, type ZarrArray } from '../../io/zarr';
import { objectsOf, type ConsistentModel } from './inference';
import {
  checkReferenceIds, choosePatch, coreOf, planPropagation, propagate, type PatchOptions, type PatchReader, type PropagationGeometry, type PropagationPlan,
} from './propagation';

export interface ConsistentZarrOptions extends PropagationGeometry, PatchOptions {
  /** The image: any volume (C, D, H, W) or (D, H, W); a Zarr store is read by regions. */
  input: string;
  /** The first frame's labels (H x W object ids): a volume whose frame 0 they are, or the values. */
  reference: string | ArrayLike<number>;
  /** The output Zarr array (D, H, W) of int32 object ids. */
  out: string;
  /** This process's share of every sub-volume's tiles: tile j is part j mod count's (default the whole); 'i/n' or { index, count }. */
  part?: BlockPart | string;
  /** Go on with an output a stopped run left (default false: an existing output is refused). */
  resume?: boolean;
  /** Pre-processing of the image as the model was trained: 'slice' (each frame standardised, as segvol train does) or 'none' (default). */
  normalize?: 'slice' | 'none';
  /** The output's chunk (h, w) in a frame (default up to 512 x 512). */
  chunks?: readonly [number, number];
  /** What the output records as its model, so a resume with another model is refused. */
  modelId?: string;
  memoryBudget?: number;
  onProgress?: (done: number, total: number) => void;
  /** A part waiting for the other parts: the stage (a sub-volume's tiles or frames) and its blocks not done yet. */
  onWait?: (stage: string, missing: number) => void;
  signal?: AbortSignal;
  /** How often a part looks for the other parts' tiles (default 500 ms). */
  pollMs?: number;
}

export interface ConsistentZarrResult {
  plan: PropagationPlan;
  /** Patches this process computed, and those it found done. */
  computed: number;
  skipped: number;
}

/** What the output records about the run that writes it: a resume must match it. */
interface RunRecord {
  input: string;
  modelId: string | null;
  dims: number[];
  patch: number[];
  margin: number[];
  overlap: number;
  normalize: string;
  passes: number;
  threshold: number;
  maxObjects: number | null;
}

const stateDir = (out: string) => path.join(out, '.segvol', 'propagation');
const recordFile = (out: string) => path.join(stateDir(out), 'run.json');
const tileFile = (out: string, slab: number, ty: number, tx: number) => path.join(stateDir(out), 'tiles', String(slab), `${ty}-${tx}.i32.gz`);

/**
 * Reads patches from a region-readable volume, zeros beyond it; with per-frame statistics
 * (mean, std per channel and frame), each frame standardised as normalizeSlices does.
 */
function arrayPatchReader(array: ZarrArray, channels: number, dims: readonly [number, number, number], stats?: ReadonlyArray<readonly [number, number]>): PatchReader {
  const [D, H, W] = dims;
  return async (z0, y0, x0, [T, h, w]) => {
    const rows = Math.min(h, H - y0), cols = Math.min(w, W - x0);
    const region = array.shape.length === 4
      ? await array.read([0, z0, y0, x0], [channels, T, rows, cols])
      : await array.read([z0, y0, x0], [T, rows, cols]);
    if (stats) {
      for (let ch = 0; ch < channels; ++ch) {
        for (let t = 0; t < T; ++t) {
          const [mean, std] = stats[ch * D + z0 + t]!;
          const from = (ch * T + t) * rows * cols;
          for (let i = from; i < from + rows * cols; ++i) region[i] = std > 0 ? (region[i]! - mean) / std : 0;
        }
      }
    }
    if (rows === h && cols === w) return region;
    const out = new Float32Array(channels * T * h * w);
    for (let s = 0; s < channels * T; ++s) for (let y = 0; y < rows; ++y) out.set(region.subarray((s * rows + y) * cols, (s * rows + y + 1) * cols), (s * h + y) * w);
    return out;
  };
}

async function readFirstFrame(reference: string | ArrayLike<number>, H: number, W: number): Promise<ArrayLike<number>> {
  if (typeof reference !== 'string') {
    if (reference.length !== H * W) throw new SegvolError('ERR_SHAPE', `propagation: the reference frame has ${reference.length} values, a frame ${H}x${W} = ${H * W}`);
    return reference;
  }
  const frame = await readLabelFrame(reference, 0);
  if (frame.shape.join() !== [H, W].join()) {
    throw new SegvolError('ERR_SHAPE', `the reference ${reference} has frames of (${frame.shape.join(', ')}); expected labels (D, ${H}, ${W}) or one frame (${H}, ${W}) like the volume's frames`);
  }
  return frame.data;
}

function sameRecord(a: RunRecord, b: RunRecord): string | undefined {
  for (const key of Object.keys(b) as Array<keyof RunRecord>) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return `${key} ${JSON.stringify(a[key])} there, ${JSON.stringify(b[key])} now`;
  }
  return undefined;
}

/**
 * Segments a volume into objects propagated from its first frame's labels, from and to storage
 * (see the top of this file). Memory: one patch's work and one frame of labels.
 */
export async function segmentConsistentZarr(model: ConsistentModel, options: ConsistentZarrOptions): Promise<ConsistentZarrResult> {
  const part = blockPart(options.part, 'propagation');
  const input = await openVolume(options.input);
  const c = model.options.inChannels;
  const shape = input.shape;
  if (shape.length < 3 || shape.length > 4 || (shape.length === 4 && shape[0] !== c) || (shape.length === 3 && c !== 1)) {
    throw new SegvolError('ERR_SHAPE', `${options.input} is (${shape.join(', ')}); the model takes ${c} channel(s): expected ${c === 1 ? '(D, H, W) or ' : ''}(${c}, D, H, W)`);
  }
  const dims = shape.slice(-3) as [number, number, number];
  const [D, H, W] = dims;
  const first = await readFirstFrame(options.reference, H, W);
  checkReferenceIds(first, 'propagation: the reference frame');
  if (objectsOf(first).length === 0) {
    throw new SegvolError('ERR_ARGUMENT', 'propagation: the reference frame has no objects (every label is 0); propagation starts from its objects: ' +
      'give labels with objects (ids > 0) in the first frame');
  }
  const plan = options.tile ? planPropagation(model, dims, options.tile, options) : choosePatch(model, dims, first, options);
  const record: RunRecord = {
    input: path.resolve(options.input), modelId: options.modelId ?? null, dims: [...dims], patch: [...plan.patch], margin: [...plan.margin],
    overlap: plan.overlap, normalize: options.normalize ?? 'none', passes: options.passes ?? 2, threshold: options.threshold ?? 0.5, maxObjects: options.maxObjects ?? null,
  };
  const chunks = options.chunks ?? [Math.min(H, 512), Math.min(W, 512)];
  if (!chunks.every((n) => Number.isInteger(n) && n >= 1)) throw new SegvolError('ERR_ARGUMENT', `propagation: expected the output's chunk (h, w) as positive integers, received ${describe(chunks)}`);
  const zarrOptions = { shape: [D, H, W], chunks: [1, chunks[0], chunks[1]], dtype: 'int32' as const };
  let writer: ZarrWriter;
  if (fs.existsSync(recordFile(options.out))) {
    // Another part of this run, or a run to resume: the same run only.
    const previous = JSON.parse(fs.readFileSync(recordFile(options.out), 'utf8')) as RunRecord;
    const differs = sameRecord(previous, record);
    if (differs) throw new SegvolError('ERR_ARGUMENT', `${options.out} holds another propagation (${differs}); write elsewhere or remove it`);
    if (!options.resume && part.count === 1) {
      throw new SegvolError('ERR_ARGUMENT', `${options.out} exists (an earlier propagation); go on with it with resume (segvol predict --resume), or remove it`);
    }
    const existing = await openZarr(options.out);
    writer = ZarrWriter.attach(options.out, { ...zarrOptions, chunks: existing.chunks });
  } else {
    if (fs.existsSync(options.out) && fs.readdirSync(options.out).length > 0) {
      throw new SegvolError('ERR_ARGUMENT', `${options.out} exists and is not a propagation segvol wrote; write elsewhere or remove it`);
    }
    writer = ZarrWriter.create(options.out, { ...zarrOptions, attributes: { segvol: { propagation: record } } });
    await writeFrame(writer, 0, first, H, W);
    fs.mkdirSync(stateDir(options.out), { recursive: true });
    writeAtomic(recordFile(options.out), JSON.stringify(record, null, 2));
  }
  const output = await openZarr(options.out);
  // Per-frame statistics: one pass over the image, a frame at a time.
  let stats: Array<[number, number]> | undefined;
  if ((options.normalize ?? 'none') === 'slice') {
    stats = [];
    for (let ch = 0; ch < c; ++ch) {
      for (let z = 0; z < D; ++z) stats.push(sliceStatistics(shape.length === 4 ? await input.read([ch, z, 0, 0], [1, 1, H, W]) : await input.read([z, 0, 0], [1, H, W])));
    }
  } else if (options.normalize !== undefined && options.normalize !== 'none') {
    throw new SegvolError('ERR_ARGUMENT', `propagation: expected normalize 'slice' or 'none', received ${describe(options.normalize)}`);
  }
  const read = arrayPatchReader(input, c, dims, stats);
  const [ny, nx] = [plan.tiles[0].origins.length, plan.tiles[1].origins.length];
  const tilesPerSlab = ny * nx;
  // The reference frame of the sub-volume at work, read once from the output (the frame the sub-volume before wrote).
  let reference: { slab: number; frame: Float32Array } | undefined;
  // Per sub-volume, two stages: its tiles (any part), then its frames from the tiles' files (one block).
  const stages: BlockStage[] = plan.slabs.flatMap((z0, k) => [{
    name: `sub-volume ${k + 1}/${plan.slabs.length}: tiles`, blocks: tilesPerSlab, markers: path.join(stateDir(options.out), 'done', `tiles-${k}`),
    run: async (j: number) => {
      if (reference?.slab !== k) reference = { slab: k, frame: await output.read([z0, 0, 0], [1, H, W]) };
      const [ty, tx] = [Math.floor(j / nx), j % nx];
      const single: PropagationPlan = {
        ...plan, slabs: [z0],
        tiles: [{ origins: [plan.tiles[0].origins[ty]!], cores: [plan.tiles[0].cores[ty]!] }, { origins: [plan.tiles[1].origins[tx]!], cores: [plan.tiles[1].cores[tx]!] }],
      };
      const frame = reference.frame;
      await propagate(model, single, read, {
        frame: () => Promise.resolve(frame),
        write: (_, __, ___, labels) => {
          const core = coreOf(single, labels, 0, 0);
          const file = tileFile(options.out, k, ty, tx);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          writeAtomic(file, zlib.gzipSync(new Uint8Array(core.data.buffer, core.data.byteOffset, core.data.byteLength), { level: 1 }));
          return Promise.resolve();
        },
      }, { ...options, onProgress: undefined });
    },
  }, {
    name: `sub-volume ${k + 1}/${plan.slabs.length}: frames`, blocks: 1, markers: path.join(stateDir(options.out), 'done', `frames-${k}`),
    run: () => assembleSlab(options.out, writer, plan, k),
  }]);
  const total = plan.slabs.length * tilesPerSlab;
  let done = 0;
  const run = await runStages(stages, {
    part, resume: true, ...(options.signal ? { signal: options.signal } : {}), ...(options.pollMs ? { pollMs: options.pollMs } : {}),
    onProgress: (stage) => { if (stage.endsWith('tiles')) options.onProgress?.(++done, total); },
    onWait: (stage, finished, blocks) => options.onWait?.(stage, blocks - finished),
  });
  if (run.stopped) throw new SegvolError('ERR_ARGUMENT', `propagation: aborted; resume to go on (${options.out})`);
  const tiles = run.stages.filter((r) => r.name.endsWith('tiles'));
  return { plan, computed: tiles.reduce((n, r) => n + r.computed, 0), skipped: tiles.reduce((n, r) => n + r.skipped, 0) };
}

async function writeFrame(writer: ZarrWriter, z: number, frame: ArrayLike<number>, H: number, W: number): Promise<void> {
  const [, ch, cw] = writer.chunks as [number, number, number];
  for (let cy = 0; cy * ch < H; ++cy) {
    for (let cx = 0; cx * cw < W; ++cx) {
      const h = Math.min(ch, H - cy * ch), w = Math.min(cw, W - cx * cw);
      const values = new Int32Array(h * w);
      for (let y = 0; y < h; ++y) for (let x = 0; x < w; ++x) values[y * w + x] = frame[(cy * ch + y) * W + cx * cw + x]!;
      await writer.writeChunk([z, cy, cx], values);
    }
  }
}

/** Writes frames z0+1 .. z0+T-1 of sub-volume k from its tiles' files, frame by frame. */
async function assembleSlab(out: string, writer: ZarrWriter, plan: PropagationPlan, k: number): Promise<void> {
  const [, H, W] = plan.dims;
  const [T] = plan.patch;
  const z0 = plan.slabs[k]!;
  const tiles: Array<{ y: readonly [number, number]; x: readonly [number, number]; data: Int32Array }> = [];
  for (let ty = 0; ty < plan.tiles[0].origins.length; ++ty) {
    for (let tx = 0; tx < plan.tiles[1].origins.length; ++tx) {
      const bytes = zlib.gunzipSync(fs.readFileSync(tileFile(out, k, ty, tx)));
      const data = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const y = plan.tiles[0].cores[ty]!, x = plan.tiles[1].cores[tx]!;
      if (data.length !== (T - 1) * (y[1] - y[0]) * (x[1] - x[0])) {
        throw new SegvolError('ERR_FORMAT', `${tileFile(out, k, ty, tx)} holds ${data.length} labels, expected ${(T - 1) * (y[1] - y[0]) * (x[1] - x[0])}; remove it and resume`);
      }
      tiles.push({ y, x, data });
    }
  }
  const frame = new Int32Array(H * W);
  for (let t = 0; t < T - 1; ++t) {
    for (const tile of tiles) {
      const ch = tile.y[1] - tile.y[0], cw = tile.x[1] - tile.x[0];
      for (let y = 0; y < ch; ++y) frame.set(tile.data.subarray((t * ch + y) * cw, (t * ch + y + 1) * cw), (tile.y[0] + y) * W + tile.x[0]);
    }
    await writeFrame(writer, z0 + 1 + t, frame, H, W);
  }
}
