// Planning an out-of-core prediction: the geometry, the options every block must share and
// the normalisation's statistics, from one streaming pass over the input that also finds
// non-finite voxels (so a bad input is refused before any block, or any output, is written).
// The plan is stored in the output's .segvol/plan.json; every process working on that
// output reads it. An OME-Zarr output is a multiscale group: level 0 the prediction, the
// levels below it downsampled from it (lib/io/ome_zarr.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { NonFiniteScan, nonFinitePolicy, type NonFinitePolicy } from '../core/non_finite';
import { countsAsNonzero, sliceStatistics } from '../data/preprocess';
import { pyramidLevels, writeOmeGroup, type OmeLevel, type OmeVersion } from '../io/ome_zarr';
import { openVolume } from '../io/volume_array';
import { labelDtype } from '../io/volume_io';
import { writeAtomic, ZarrWriter, type ZarrArray, type ZarrCompressor } from '../io/zarr';
import { normalizationOf, type ModelBase } from '../nn/model';
import { windowStarts } from './predict_volume';
import { blockMarked, markBlock } from './stages';
import { resolveOverlap, resolveTta, resolveWindowBatch, type FlipAxis, type WindowingOptions } from './windows';

export type ChunkedOutput = 'labels' | 'probabilities' | { class: number };

export interface ChunkedPlanOptions extends WindowingOptions {
  /** Class ids (default), class probabilities (K, D, H, W), or one class's probability. */
  output?: ChunkedOutput;
  /** Output chunk (d, h, w); a block is one chunk (default: the input's spatial chunks). */
  chunks?: readonly [number, number, number];
  compressor?: ZarrCompressor;
  zarrVersion?: 2 | 3;
  /**
   * An OME-Zarr multiscale image (NGFF 0.4 on Zarr v2, 0.5 on v3): level 0 the prediction, then
   * levels halved in y and x (and z by the rule of pyramidLevels), labels by mode, probabilities
   * by mean. `levels` counts level 0 (default: until a level fits one chunk in y and x).
   */
  ome?: boolean | { levels?: number };
}

/** What every process working on one output agrees on, stored in the output's .segvol/plan.json. */
export interface ChunkedPlan {
  input: string;
  dims: [number, number, number];
  channels: number;
  window: [number, number, number];
  overlap: [number, number, number];
  sigma: number;
  /** The axes whose flips are averaged ([]: none). */
  tta: FlipAxis[];
  windowBatch: number;
  /** Windows in the whole volume (a pass runs min(windowBatch, windows) of them). */
  windows: number;
  nonFinite: NonFinitePolicy;
  /** Non-finite input voxels found by the statistics pass (set to 0 with nonFinite 'zero'). */
  nonFiniteVoxels: number;
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
  /** The input's voxel size (z, y, x) and unit, where it has them. */
  spacing?: [number, number, number];
  unit?: string;
  /** An OME-Zarr output: its NGFF version and levels (level 0 is the blocks' array). */
  ome?: { version: OmeVersion; levels: OmeLevel[] };
}

export const planFile = (out: string): string => path.join(out, '.segvol', 'plan.json');
/** The folder of the blocks' done markers (lib/inference/stages.ts's markers, one file per block). */
export const blockMarkers = (out: string): string => path.join(out, '.segvol', 'done');
/** Where the chunks of pyramid level l (>= 1) are marked done. */
export const levelDoneDir = (out: string, level: number): string => path.join(out, '.segvol', 'done', `level${level}`);

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

/** What makes two runs the same job (a plan from before an option existed reads as its default). */
function job(p: ChunkedPlan): string {
  return JSON.stringify([p.input, p.window, p.chunks, p.output, p.overlap, p.sigma, p.tta, p.windowBatch, p.nonFinite, p.ome?.version ?? null,
    p.ome?.levels.length ?? 0]);
}

/** A stored plan, with the fields older plans lack set to their defaults. */
function upgrade(p: ChunkedPlan): ChunkedPlan {
  const overlap = typeof p.overlap === 'number' ? [p.overlap, p.overlap, p.overlap] as [number, number, number] : p.overlap;
  const windows = p.windows ?? p.dims.reduce((n, v, a) => n * windowStarts(v, p.window[a]!, overlap[a]!).length, 1);
  return { ...p, overlap, tta: p.tta ?? [], windowBatch: p.windowBatch ?? 1, windows, nonFinite: p.nonFinite ?? 'error', nonFiniteVoxels: p.nonFiniteVoxels ?? 0 };
}

/**
 * Plans an out-of-core prediction: opens the input, reads it once (the normalisation's
 * statistics, per slice or per channel over non-zero voxels, and the non-finite voxels),
 * creates the output's metadata and writes the plan beside it. Idempotent: an existing plan
 * for the same job is kept. The input may be Zarr (read by regions) or any other format
 * (read whole).
 */
export async function planChunkedPrediction(model: ModelBase, input: string, out: string, options: ChunkedPlanOptions): Promise<ChunkedPlan> {
  const where = 'chunked prediction';
  const names = Object.keys(model.inputs);
  if (names.length !== 1) throw new SegvolError('ERR_ARGUMENT', `${where}: the model has inputs ${names.join(', ')}; it takes single-input models`);
  if (!Array.isArray(options.window) || options.window.length !== 3 || options.window.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected window as three positive integers (d, h, w), received ${describe(options.window)}`);
  }
  const overlap = resolveOverlap(options.overlap, where), tta = resolveTta(options.tta, where);
  const windowBatch = resolveWindowBatch(options.windowBatch, where), nonFinite = nonFinitePolicy(options.nonFinite, where);
  const array = await openVolume(input);
  const rank = array.shape.length;
  if (rank !== 3 && rank !== 4) throw new SegvolError('ERR_SHAPE', `${where}: ${input} is (${array.shape.join(', ')}); expected (D, H, W) or (C, D, H, W)`);
  const channels = rank === 4 ? array.shape[0]! : 1;
  if (channels !== model.inChannels) throw new SegvolError('ERR_SHAPE', `${where}: ${input} has ${channels} channel(s), the model takes ${model.inChannels}`);
  const dims = array.shape.slice(-3) as [number, number, number];
  const mode = normalizationOf(model.info, names[0]!);
  if (mode === 'mr') {
    throw new SegvolError('ERR_ARGUMENT', `${where}: the MR pipeline filters whole slices (Gaussian, CLAHE); pre-process the volume first and predict with --normalize none`);
  }
  const window = dims.map((v, a) => Math.min(options.window[a]!, v)) as [number, number, number];
  const chunks = (options.chunks ?? array.chunks.slice(-3)) as [number, number, number];
  const output = options.output ?? 'labels';
  const sigma = options.sigma ?? 1 / 8;
  const zarrVersion = options.zarrVersion ?? 2;
  const ome = options.ome ? {
    version: (zarrVersion === 3 ? '0.5' : '0.4') as OmeVersion,
    levels: pyramidLevels(dims, chunks, array.spacing, typeof options.ome === 'object' ? options.ome.levels : undefined),
  } : undefined;
  const windows = dims.reduce((n, v, a) => n * windowStarts(v, window[a]!, overlap[a]!).length, 1);
  const wanted = { input, window, chunks, output, overlap, sigma, tta, windowBatch, nonFinite, ...(ome ? { ome } : {}) } as ChunkedPlan;
  if (fs.existsSync(planFile(out))) {
    const existing = upgrade(JSON.parse(fs.readFileSync(planFile(out), 'utf8')) as ChunkedPlan);
    if (job(existing) !== job(wanted)) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: ${out} holds a different job (${existing.input}, window ${existing.window.join('x')}, chunks ${existing.chunks.join('x')}` +
        `${existing.ome ? ', OME-Zarr' : ''}); give another output, or delete it to start again`);
    }
    return existing;
  }
  // One pass over every slice: the statistics, and the non-finite voxels (which they skip).
  const scan = new NonFiniteScan(['c', 'z', 'y', 'x']);
  const prefix = (c: number, z: number) => [c, z];
  const [D, , W] = dims;
  const stats: Array<[number, number]> = [];
  if (mode === 'slice') {
    await forEachSlice(array, dims, channels, (c, z, slice) => {
      scan.plane(slice, prefix(c, z), W, z);
      stats[c * D + z] = sliceStatistics(slice);
    });
  } else if (mode === 'nonzero') {
    // As normalizeNonzero: per channel, over the voxels that are non-zero and finite.
    const sums = new Array<number>(channels).fill(0), counts = new Array<number>(channels).fill(0), sqs = new Array<number>(channels).fill(0);
    await forEachSlice(array, dims, channels, (c, z, slice) => {
      scan.plane(slice, prefix(c, z), W, z);
      for (const v of slice) if (countsAsNonzero(v)) { sums[c]! += v; counts[c]! += 1; }
    });
    if (scan.count === 0 || nonFinite === 'zero') {
      const means = sums.map((s, c) => (counts[c] ? s / counts[c]! : 0));
      await forEachSlice(array, dims, channels, (c, _z, slice) => {
        for (const v of slice) if (countsAsNonzero(v)) sqs[c]! += (v - means[c]!) ** 2;
      });
      for (let c = 0; c < channels; ++c) stats.push([means[c]!, counts[c] ? Math.sqrt(sqs[c]! / counts[c]!) : 0]);
    }
  } else {
    await forEachSlice(array, dims, channels, (c, z, slice) => scan.plane(slice, prefix(c, z), W, z));
  }
  if (scan.count && nonFinite === 'error') throw scan.error(where, `the input ${input}`);
  const grid = dims.map((v, a) => Math.ceil(v / chunks[a]!)) as [number, number, number];
  const plan: ChunkedPlan = {
    ...wanted, dims, channels, windows, nonFiniteVoxels: scan.count, grid, blocks: grid[0] * grid[1] * grid[2], normalize: mode, stats,
    classes: model.outChannels, zarrVersion, compressor: options.compressor ?? (zarrVersion === 3 ? 'gzip' : 'zlib'),
    ...(array.spacing ? { spacing: array.spacing } : {}), ...(array.unit ? { unit: array.unit } : {}),
  };
  if (plan.ome) {
    writeOmeGroup(out, {
      version: plan.ome.version, name: path.basename(out).replace(/(\.ome)?\.zarr$/i, ''), levels: plan.ome.levels, spacing: plan.spacing ?? [1, 1, 1],
      ...(plan.unit ? { unit: plan.unit } : {}), channels: output === 'probabilities', downsampling: output === 'labels' ? 'mode' : 'mean', label: output === 'labels',
    });
  }
  for (let level = 0; level < (plan.ome?.levels.length ?? 1); ++level) outputWriter(out, plan, level, true);
  fs.mkdirSync(path.join(out, '.segvol', 'done'), { recursive: true });
  writeAtomic(planFile(out), JSON.stringify(plan));
  return plan;
}

/**
 * The output array of a level (0: the prediction): class ids (uint8, or uint16 past 255
 * classes), K probabilities, or one class's. An OME-Zarr level lives in its path inside the
 * group, with nested chunk folders (v2) or its axes' names (v3).
 */
export function outputWriter(out: string, plan: ChunkedPlan, level = 0, create = false): ZarrWriter {
  const labels = plan.output === 'labels';
  const probabilities = plan.output === 'probabilities';
  const info = plan.ome?.levels[level];
  const dims = info ? info.shape : plan.dims;
  const chunks = level === 0 ? plan.chunks : plan.chunks.map((c, a) => Math.min(c, dims[a]!));
  const layout = !plan.ome ? {} : plan.zarrVersion === 2 ? { dimensionSeparator: '/' as const } : { dimensionNames: probabilities ? ['c', 'z', 'y', 'x'] : ['z', 'y', 'x'] };
  return (create ? ZarrWriter.create : ZarrWriter.attach)(info ? path.join(out, info.path) : out, {
    shape: probabilities ? [plan.classes, ...dims] : [...dims],
    chunks: probabilities ? [1, ...chunks] : [...chunks],
    dtype: labels ? labelDtype(plan.classes) : 'float32',
    compressor: plan.compressor, zarrVersion: plan.zarrVersion, ...layout,
    ...(!plan.ome && plan.spacing ? { attributes: { segvol: { spacing: plan.spacing, ...(plan.unit ? { unit: plan.unit } : {}) } } } : {}),
  });
}

/** Reads the plan an earlier planChunkedPrediction wrote. */
export function readChunkedPlan(out: string): ChunkedPlan {
  if (!fs.existsSync(planFile(out))) {
    throw new SegvolError('ERR_ARGUMENT', `${out}: no prediction plan (.segvol/plan.json); plan it first (segvol predict --out ${out} writes it)`);
  }
  return upgrade(JSON.parse(fs.readFileSync(planFile(out), 'utf8')) as ChunkedPlan);
}

/** Whether a block's chunk is written. */
export function blockDone(out: string, block: number): boolean {
  return blockMarked(blockMarkers(out), block);
}

/** Marks a block's chunk written, keeping what it did (the windows it computed). */
export function markBlockDone(out: string, block: number, result?: unknown): void {
  markBlock(blockMarkers(out), block, result);
}
