// Agglomeration of an affinity volume too large for memory, block by block over Zarr, in the
// stages of the daisy / lsd pipelines, each on lib/inference/stages.ts (resumable, shared by
// array jobs):
//   fragments    per block: the affinity watershed of the block alone (ids 1..k, stored as
//                they are; the count goes with the block's done marker);
//   edges        per block: the region graph of the voxel edges whose later voxel is in the
//                block, the edges across its faces to the preceding blocks included, with
//                global fragment ids (offset = fragments of the blocks before it);
//   agglomerate  once: every block's graph merged (exactly: sums and counts) and agglomerated,
//                a lookup table fragment -> segment per threshold;
//   relabel      per block: the fragments with global ids, and each threshold's segmentation.
// Every voxel edge is counted by exactly one block, so the merged graph is the graph the whole
// volume's fragments would give, and the segmentations equal those agglomerate() computes in
// memory from the same fragments, bit for bit. The output store's layout is in outputs.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError, type ErrorCode } from '../core/errors';
import {
  affinityFragments, agglomerateRegionGraphs, checkThresholds, defaultWatershed, maxFragmentId, regionGraphBytes, relabelIds, scoringArgs,
  type AgglomerationScoring, type FragmentOptions,
} from '../evaluation/agglomeration';
import { blockPart, readBlockResult, runStages, type BlockPart, type BlockStage, type StageReport } from '../inference/stages';
import { openVolume } from '../io/volume_array';
import { openZarr, writeAtomic, ZarrWriter, type ZarrArray, type ZarrCompressor } from '../io/zarr';
import { fragmentsArray, segmentationArray, writeGroup } from './outputs';

export interface BlockwiseOptions {
  thresholds: readonly number[];
  scoring?: AgglomerationScoring;
  watershed?: FragmentOptions;
  /** Block (d, h, w), also every output array's chunk (default: the affinities' spatial chunks). */
  block?: readonly [number, number, number];
  /** Array jobs: this process's share of every stage's blocks (i/n). */
  part?: BlockPart | string;
  /** Skip blocks already done (default true). */
  resume?: boolean;
  signal?: AbortSignal;
  onProgress?: (stage: string, done: number, total: number) => void;
  onWait?: (stage: string, done: number, total: number) => void;
  compressor?: ZarrCompressor;
  /** Stages run first, in the same parts (e.g. the block-wise prediction that writes the affinities). */
  before?: readonly BlockStage[];
}

/** What every process working on one output agrees on: the output's .segvol/segment.json. */
export interface SegmentPlan {
  format: 1;
  affinities: string;
  dims: [number, number, number];
  block: [number, number, number];
  grid: [number, number, number];
  blocks: number;
  thresholds: number[];
  scoring: AgglomerationScoring;
  watershed: { low: number; high: number };
  compressor: ZarrCompressor;
}

export interface BlockwiseResult {
  plan: SegmentPlan;
  stages: StageReport[];
  /** The signal stopped the run before its part was done. */
  stopped: boolean;
  /** Once agglomerated: the fragments, and the segments of each threshold. */
  fragments?: number;
  segments?: number[];
}

const internal = (out: string, ...parts: string[]) => path.join(out, '.segvol', ...parts);
const planPath = (out: string) => internal(out, 'segment.json');
const markers = (out: string, stage: string) => internal(out, 'done', stage);
const localFragments = (out: string) => internal(out, 'local-fragments');
const edgeFile = (out: string, block: number) => internal(out, 'edges', String(block));
const lookupFile = (out: string, threshold: number) => internal(out, 'lookup', String(threshold));

function sameJob(a: SegmentPlan, b: SegmentPlan): boolean {
  const job = (p: SegmentPlan) => JSON.stringify([p.format, p.affinities, p.dims, p.block, p.thresholds, p.scoring, p.watershed]);
  return job(a) === job(b);
}

/** Plans (or re-reads) a block-wise segmentation: checks the affinities, creates the output arrays' metadata. */
export async function planSegmentation(affinities: string, out: string, options: BlockwiseOptions): Promise<SegmentPlan> {
  const where = 'block-wise segmentation';
  const thresholds = checkThresholds(options.thresholds, where);
  const scoring = options.scoring ?? 'mean';
  scoringArgs(scoring, where);
  const watershed = { ...defaultWatershed, ...options.watershed };
  if (!(watershed.low >= 0 && watershed.low <= watershed.high && watershed.high <= 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected watershed thresholds 0 <= low <= high <= 1, received low ${describe(watershed.low)}, high ${describe(watershed.high)}`);
  }
  const array = await openVolume(affinities);
  if (array.shape.length !== 4 || array.shape[0] !== 3) {
    throw new SegvolError('ERR_SHAPE', `${where}: expected affinities (3, D, H, W) (channels z, y, x), received ${affinities} of shape (${array.shape.join(', ')})`);
  }
  const dims = array.shape.slice(1) as [number, number, number];
  const wanted = options.block ?? (array.chunks.slice(1) as [number, number, number]);
  if (!Array.isArray(wanted) || wanted.length !== 3 || wanted.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected a block (d, h, w) of positive integers, received ${describe(wanted)}`);
  }
  const block = dims.map((n, a) => Math.min(n, wanted[a]!)) as [number, number, number];
  const grid = dims.map((n, a) => Math.ceil(n / block[a]!)) as [number, number, number];
  const plan: SegmentPlan = {
    format: 1, affinities, dims, block, grid, blocks: grid[0] * grid[1] * grid[2], thresholds, scoring, watershed,
    compressor: options.compressor ?? 'zlib',
  };
  if (fs.existsSync(planPath(out))) {
    const existing = JSON.parse(fs.readFileSync(planPath(out), 'utf8')) as SegmentPlan;
    if (!sameJob(existing, plan)) {
      throw new SegvolError('ERR_ARGUMENT', `${where}: ${out} holds another segmentation (of ${existing.affinities}, block ${existing.block.join('x')}, ` +
        `thresholds ${existing.thresholds.join(', ')}, scoring ${JSON.stringify(existing.scoring)}); give another output, or delete it to start again`);
    }
    return existing;
  }
  writeGroup(out);
  for (const dir of [localFragments(out), path.join(out, fragmentsArray), ...thresholds.map((t) => path.join(out, segmentationArray(t)))]) {
    ZarrWriter.create(dir, idArray(plan));
  }
  for (const d of ['edges', 'lookup']) fs.mkdirSync(internal(out, d), { recursive: true });
  writeAtomic(planPath(out), JSON.stringify(plan));
  return plan;
}

const idArray = (plan: SegmentPlan) => ({ shape: plan.dims, chunks: plan.block, dtype: 'int32' as const, compressor: plan.compressor });

/** The block's grid coordinates, start and size. */
function region(plan: SegmentPlan, block: number) {
  const [, gy, gx] = plan.grid;
  const coords = [Math.floor(block / (gy * gx)), Math.floor(block / gx) % gy, block % gx];
  const start = coords.map((c, a) => c * plan.block[a]!);
  const size = start.map((s, a) => Math.min(plan.block[a]!, plan.dims[a]! - s)) as [number, number, number];
  return { coords, start, size };
}

/** Runs a block's work; a coded error is re-thrown naming the block (native messages name voxels within it). */
async function inBlock<T>(plan: SegmentPlan, block: number, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!code) throw error;
    const { start } = region(plan, block);
    throw new SegvolError(code as ErrorCode, `block-wise segmentation, block ${block} (from voxel (${start.join(', ')})): ${(error as Error).message.replace(/^segvol: /, '')}`);
  }
}

function offsetIds(local: Int32Array, offset: number): Int32Array {
  const out = new Int32Array(local.length);
  for (let i = 0; i < local.length; ++i) out[i] = local[i] === 0 ? 0 : local[i]! + offset;
  return out;
}

/** The stages of a planned segmentation, for runStages (lazy: each reads what the stage before wrote). */
export function segmentationStages(plan: SegmentPlan, out: string): BlockStage[] {
  let affinities: Promise<ZarrArray> | undefined;
  let local: Promise<ZarrArray> | undefined;
  let offsets: number[] | undefined;
  let tables: Int32Array[] | undefined;
  const readAffinities = async (block: number) => {
    const { start, size } = region(plan, block);
    return (await (affinities ??= openVolume(plan.affinities))).read([0, ...start], [3, ...size]);
  };
  const readLocal = async (start: readonly number[], size: readonly number[]) => {
    const array = await (local ??= openZarr(localFragments(out)));
    return Int32Array.from(await array.readExact!(start, size));  // int32 ids, read exactly
  };
  /** Each block's first global id - 1: the fragments of the blocks before it. */
  const fragmentOffsets = (): number[] => {
    if (offsets) return offsets;
    const list: number[] = [];
    let total = 0;
    for (let b = 0; b < plan.blocks; ++b) {
      const r = readBlockResult<{ fragments: number }>(markers(out, 'fragments'), b);
      if (!r || !Number.isInteger(r.fragments)) throw new SegvolError('ERR_FORMAT', `${out}: block ${b}'s fragments are not marked done with their count; resume the run`);
      list.push(total);
      total += r.fragments;
    }
    if (total > maxFragmentId) {
      throw new SegvolError('ERR_ARGUMENT', `block-wise segmentation: ${total} fragments, more than int32 ids hold (${maxFragmentId}); raise the watershed's low threshold`);
    }
    list.push(total);
    return (offsets = list);
  };
  const writer = (dir: string) => ZarrWriter.attach(dir, idArray(plan));
  const scoring = plan.scoring;
  const withLevels = scoring !== 'mean';
  return [
    {
      name: 'fragments', blocks: plan.blocks, markers: markers(out, 'fragments'),
      run: (b) => inBlock(plan, b, async () => {
        const { coords, size } = region(plan, b);
        const r = await affinityFragments(await readAffinities(b), size, plan.watershed);
        await writer(localFragments(out)).writeChunk(coords, r.fragments);
        return { fragments: r.count };
      }),
    },
    {
      name: 'edges', blocks: plan.blocks, markers: markers(out, 'edges'),
      run: (b) => inBlock(plan, b, async () => {
        const { coords, start, size } = region(plan, b);
        const all = fragmentOffsets();
        const fragments = offsetIds(await readLocal(start, size), all[b]!);
        // The slice just before the block along each axis, in the neighbouring block, with its ids.
        const faces = await Promise.all([0, 1, 2].map(async (a) => {
          if (coords[a] === 0) return null;
          const from = [...start], extent = [...size];
          from[a] = start[a]! - 1;
          extent[a] = 1;
          const neighbour = b - (a === 0 ? plan.grid[1] * plan.grid[2] : a === 1 ? plan.grid[2] : 1);
          return offsetIds(await readLocal(from, extent), all[neighbour]!);
        }));
        const bytes = await regionGraphBytes(fragments, await readAffinities(b), size, faces as [Int32Array | null, Int32Array | null, Int32Array | null], withLevels);
        writeAtomic(edgeFile(out, b), bytes);
        return undefined;
      }),
    },
    {
      name: 'agglomerate', blocks: 1, markers: markers(out, 'agglomerate'),
      run: async () => {
        const all = fragmentOffsets();
        const graphs = Array.from({ length: plan.blocks }, (_, b) => fs.readFileSync(edgeFile(out, b)));
        const result = await agglomerateRegionGraphs(graphs, all[plan.blocks]!, scoring, plan.thresholds).catch((error: Error & { code?: string }) => {
          // A damaged graph file: name it, and its block's marker.
          const m = /graph (\d+): (.*)/.exec(error.message);
          if (!m || !error.code) throw error;
          throw new SegvolError(error.code as ErrorCode, `${edgeFile(out, Number(m[1]))}: ${m[2]!.replace(/the block's edge file/, `block ${m[1]}'s graph`)} ` +
            `(its marker: ${path.join(markers(out, 'edges'), m[1]!)})`);
        });
        const segments = result.map((table, i) => {
          writeAtomic(lookupFile(out, plan.thresholds[i]!), new Uint8Array(table.buffer, table.byteOffset, table.byteLength));
          return table.reduce((m, v) => Math.max(m, v), 0);
        });
        return { fragments: all[plan.blocks]!, segments };
      },
    },
    {
      name: 'relabel', blocks: plan.blocks, markers: markers(out, 'relabel'),
      run: async (b) => {
        const { coords, start, size } = region(plan, b);
        const all = fragmentOffsets();
        tables ??= plan.thresholds.map((t) => {
          const bytes = fs.readFileSync(lookupFile(out, t));
          const table = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
          if (table.length !== all[plan.blocks]! + 1) {
            throw new SegvolError('ERR_FORMAT', `${lookupFile(out, t)}: a lookup table of ${table.length} entries, expected ${all[plan.blocks]! + 1}; delete ${markers(out, 'agglomerate')} and resume`);
          }
          return table;
        });
        const fragments = offsetIds(await readLocal(start, size), all[b]!);
        await writer(path.join(out, fragmentsArray)).writeChunk(coords, fragments);
        for (const [i, t] of plan.thresholds.entries()) await writer(path.join(out, segmentationArray(t))).writeChunk(coords, relabelIds(fragments, tables[i]!));
        return undefined;
      },
    },
  ];
}

/**
 * Segments an affinity volume (3, D, H, W) block by block into the Zarr store `out`: the
 * fragments and one segmentation per threshold (layout: outputs.ts). Resumable; part i/n
 * runs a share of every stage's blocks, waiting for the other parts between stages.
 */
export async function segmentBlockwise(affinities: string, out: string, options: BlockwiseOptions): Promise<BlockwiseResult> {
  const part = blockPart(options.part, 'block-wise segmentation');
  const plan = await planSegmentation(affinities, out, options);
  const r = await runStages([...(options.before ?? []), ...segmentationStages(plan, out)], {
    part, ...(options.resume !== undefined ? { resume: options.resume } : {}), ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}), ...(options.onWait ? { onWait: options.onWait } : {}),
  });
  const summary = readBlockResult<{ fragments: number; segments: number[] }>(markers(out, 'agglomerate'), 0);
  return { plan, stages: r.stages, stopped: r.stopped, ...(summary ? { fragments: summary.fragments, segments: summary.segments } : {}) };
}
