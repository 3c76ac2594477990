// segvol segment: affinities (3, D, H, W) to segmentations, waterz style: watershed
// fragments, then greedy agglomeration of their region graph, one segmentation per
// threshold. Block by block over Zarr (resumable, array jobs with --block i/n), or in memory
// for volumes of other formats. The affinities are given, or predicted first by an affinity
// model (out-of-core into the output store, or in memory).
import type { Command } from 'commander';
import * as path from 'node:path';
import { SegvolError } from '../../core/errors';
import { Tensor, type Device } from '../../core/tensor';
import { blockMarkers, planChunkedPrediction, predictBlock } from '../../inference/chunked';
import { predictVolume } from '../../inference/predict_volume';
import type { BlockStage } from '../../inference/stages';
import type { Overlap } from '../../inference/windows';
import { openVolume } from '../../io/volume_array';
import { checkOutputPath, readVolumeAsync } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { loadModel } from '../../models/load';
import type { ModelBase } from '../../nn/model';
import { agglomerate, type AgglomerationScoring } from '../../segmentation/agglomerate';
import { segmentBlockwise } from '../../segmentation/blockwise';
import { outputVolumePath, writeSegmentations } from '../../segmentation/outputs';
import { deviceOption, integerList, overlapOption, terminal } from '../context';

interface SegmentOptions {
  affinities?: string; model?: string; in?: string; out: string; thresholds: string; scoring: string; watershed: string;
  fragments?: string; chunks?: number[]; block?: string; resume?: boolean; window?: number[]; overlap: Overlap; device: Device;
}

/** --thresholds 0.1,0.3,0.5: numbers in [0, 1]. */
export function parseThresholds(text: string): number[] {
  const values = text.split(',').map((v) => v.trim()).filter((v) => v !== '').map(Number);
  if (values.length === 0 || values.some((v) => !(v >= 0 && v <= 1))) {
    throw new SegvolError('ERR_ARGUMENT', `--thresholds: expected comma-separated numbers in [0, 1] (scores are 1 - affinity; lower merges less), received '${text}'`);
  }
  return values;
}

/** --scoring mean | quantile:q (q an integer percentage, e.g. quantile:50 the median, quantile:75). */
export function parseScoring(text: string): AgglomerationScoring {
  if (text === 'mean') return 'mean';
  const m = /^quantile:(\d+)$/.exec(text.trim());
  if (!m || Number(m[1]) > 100) throw new SegvolError('ERR_ARGUMENT', `--scoring: expected mean or quantile:q with q an integer in 0..100 (e.g. quantile:50), received '${text}'`);
  return { quantile: Number(m[1]) };
}

/** --watershed low,high: the fragments' affinity thresholds. */
export function parseWatershed(text: string): { low: number; high: number } {
  const parts = text.split(',').map((v) => Number(v.trim()));
  if (parts.length !== 2 || !(parts[0]! >= 0 && parts[0]! <= parts[1]! && parts[1]! <= 1)) {
    throw new SegvolError('ERR_ARGUMENT', `--watershed: expected low,high with 0 <= low <= high <= 1 (default 0.0001,0.9999), received '${text}'`);
  }
  return { low: parts[0]!, high: parts[1]! };
}

function loadAffinityModel(file: string, device: Device): ModelBase {
  const model = loadModel(file).to(device);
  if (model.outChannels !== 3) {
    model.dispose();
    throw new SegvolError('ERR_SHAPE', `--model: an affinity model predicts 3 channels (z, y, x affinities), ${file} predicts ${model.outChannels}`);
  }
  return model;
}

/** Block by block into a Zarr store, the affinities predicted first (a stage of their own) when a model is given. */
async function segmentZarr(o: SegmentOptions, settings: { thresholds: number[]; scoring: AgglomerationScoring; watershed: { low: number; high: number } }): Promise<void> {
  if (o.fragments) throw new SegvolError('ERR_ARGUMENT', '--fragments: given fragments are agglomerated in memory; write to a non-Zarr output, or leave --fragments out');
  const before: BlockStage[] = [];
  let affinities = o.affinities!;
  let model: ModelBase | undefined;
  try {
    if (o.model) {
      model = loadAffinityModel(o.model, o.device);
      if (isZarrPath(o.in!) && !o.window) throw new SegvolError('ERR_ARGUMENT', '--window d,h,w: out-of-core prediction from a Zarr input needs it (the volume is never read whole)');
      const input = await openVolume(o.in!);
      const window = (o.window ?? input.shape.slice(-3)) as [number, number, number];
      affinities = path.join(o.out, 'affinities');
      const plan = await planChunkedPrediction(model, o.in!, affinities, {
        window, overlap: o.overlap, output: 'probabilities', ...(o.chunks ? { chunks: o.chunks as [number, number, number] } : {}),
      });
      const predictor = model;
      before.push({ name: 'affinities', blocks: plan.blocks, markers: blockMarkers(affinities), run: (b) => predictBlock(predictor, affinities, plan, b, input) });
    }
    const bars = new Map<string, ReturnType<typeof terminal.progress>>();
    const bar = (stage: string) => {
      if (!bars.has(stage)) {
        for (const b of bars.values()) b.done();
        bars.clear();
        bars.set(stage, terminal.progress(stage));
      }
      return bars.get(stage)!;
    };
    const r = await segmentBlockwise(affinities, o.out, {
      ...settings, ...(o.chunks ? { block: o.chunks as [number, number, number] } : {}), ...(o.block ? { part: o.block } : {}), resume: o.resume === true, before,
      onProgress: (stage, done, total) => bar(stage).update(done / total, `block ${done}/${total}`),
      onWait: (stage, done, total) => bar(`waiting for ${stage}`).update(done / total, `${done}/${total} blocks done by all parts`),
    });
    for (const b of bars.values()) b.done();
    const work = r.stages.map((s) => `${s.name} ${s.computed} computed, ${s.skipped} already done`).join('; ');
    terminal.print(`${o.out}: ${r.plan.blocks} blocks of ${r.plan.block.join('x')}${o.block ? ` (part ${o.block})` : ''}: ${work}`);
    if (r.segments) {
      terminal.print(`${r.fragments} fragments; ${r.plan.thresholds.map((t, i) => `threshold ${t}: ${r.segments![i]} segments`).join(', ')}`);
      if (r.stages.at(-1)!.computed + r.stages.at(-1)!.skipped === r.stages.at(-1)!.blocks) {
        terminal.print(`segmentations: ${r.plan.thresholds.map((t) => outputVolumePath(o.out, t)).join(', ')}`);
      }
    }
  } finally {
    model?.dispose();
  }
}

/** In memory: the affinities read whole (or predicted by stitched windows). */
async function segmentInMemory(o: SegmentOptions, settings: { thresholds: number[]; scoring: AgglomerationScoring; watershed: { low: number; high: number } }): Promise<void> {
  let data: Float32Array, dims: [number, number, number], spacing: [number, number, number] | undefined;
  if (o.model) {
    const model = loadAffinityModel(o.model, o.device);
    try {
      const volume = await readVolumeAsync(o.in!);
      const shape = volume.shape.length === 3 ? [1, 1, ...volume.shape] : [1, ...volume.shape];
      const x = Tensor.fromArray(volume.data, shape);
      dims = shape.slice(2) as [number, number, number];
      const bar = terminal.progress('predicting');
      const probs = await predictVolume(model, x, { window: (o.window ?? dims) as [number, number, number], overlap: o.overlap,
        onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`) });
      bar.done();
      x.dispose();
      data = probs.toArray();
      probs.dispose();
      spacing = volume.spacing;
    } finally {
      model.dispose();
    }
  } else {
    const volume = await readVolumeAsync(o.affinities!);
    if (volume.shape.length !== 4 || volume.shape[0] !== 3) {
      throw new SegvolError('ERR_SHAPE', `--affinities: expected (3, D, H, W) affinities (channels z, y, x), received ${o.affinities} of shape (${volume.shape.join(', ')})`);
    }
    data = volume.data;
    dims = volume.shape.slice(1) as [number, number, number];
    spacing = volume.spacing;
  }
  const fragments = o.fragments ? (await readVolumeAsync(o.fragments)).data : undefined;
  const bar = terminal.progress('agglomerating');
  const r = await agglomerate(data, dims, { ...settings, ...(fragments ? { fragments } : {}), onProgress: (done, total, step) => bar.update(done / total, step) });
  bar.done();
  const files = await writeSegmentations(o.out, dims, r.fragments, r.thresholds, r.segmentations, { ...(spacing ? { spacing } : {}) });
  const counts = r.segmentations.map((s) => s.reduce((m, v) => Math.max(m, v), 0));
  terminal.print(`${r.fragmentCount} fragments; ${r.thresholds.map((t, i) => `threshold ${t}: ${counts[i]} segments`).join(', ')}`);
  terminal.print(`wrote ${files.join(', ')}`);
}

export function registerSegment(program: Command): void {
  program.command('segment')
    .description('segment affinities (3, D, H, W: z, y, x) waterz style: watershed fragments, then greedy agglomeration, one segmentation per threshold')
    .option('--affinities <volume>', 'affinities (3, D, H, W) in [0, 1]: a Zarr store is segmented block by block, another format in memory')
    .option('--model <file>', 'an affinity model (3 output channels) to predict the affinities from --in first')
    .option('--in <volume>', 'with --model: the image to predict affinities for')
    .requiredOption('--out <path>', 'a .zarr store (arrays fragments and segmentation_<t>), or a volume file: <name>_fragments.<ext> and <name>_<t>.<ext>')
    .requiredOption('--thresholds <list>', 'agglomeration thresholds in [0, 1], e.g. 0.1,0.3,0.5: regions merge while their score (1 - affinity) is below')
    .option('--scoring <kind>', 'mean (1 - mean affinity) or quantile:q (1 - the q-th percentile of the quantised affinities, e.g. quantile:50)', 'mean')
    .option('--watershed <low,high>', 'the fragments\' watershed: affinities below low are cut, above high joined', '0.0001,0.9999')
    .option('--fragments <volume>', 'in memory: agglomerate these fragments instead of the watershed\'s')
    .option('--chunks <d,h,w>', 'Zarr: the block (and chunk) shape (default: the affinities\' chunks)', integerList)
    .option('--block <i/n>', 'Zarr: compute the i-th of n block sets of every stage (array jobs: Slurm, Kubernetes); parts wait for each other between stages')
    .option('--resume', 'Zarr: skip the blocks already done')
    .option('--window <d,h,w>', 'with --model: the prediction window (default: the whole volume)', integerList)
    .option('--overlap <fraction>', 'with --model: window overlap: one fraction, or d,h,w', overlapOption, 0.5)
    .option('--device <name>', 'with --model: cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: SegmentOptions) => {
      if ((o.affinities === undefined) === (o.model === undefined)) throw new SegvolError('ERR_ARGUMENT', 'give --affinities (a volume of affinities) or --model with --in (to predict them), one of the two');
      if (o.model && !o.in) throw new SegvolError('ERR_ARGUMENT', '--model needs --in: the image to predict affinities for');
      if (o.in && !o.model) throw new SegvolError('ERR_ARGUMENT', '--in is the image for --model; give --affinities alone to segment precomputed affinities');
      checkOutputPath(o.out, '--out');
      if (o.window && o.window.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--window: expected d,h,w, received ${o.window.join(',')}`);
      if (o.chunks && o.chunks.length !== 3) throw new SegvolError('ERR_ARGUMENT', `--chunks: expected d,h,w, received ${o.chunks.join(',')}`);
      const settings = { thresholds: parseThresholds(o.thresholds), scoring: parseScoring(o.scoring), watershed: parseWatershed(o.watershed) };
      const zarrOut = isZarrPath(o.out);
      const blockwise = zarrOut && (isZarrPath(o.affinities ?? o.in!) || o.model !== undefined || o.chunks !== undefined || o.block !== undefined || o.resume === true);
      if (!zarrOut && (o.chunks || o.block || o.resume)) throw new SegvolError('ERR_ARGUMENT', '--chunks, --block and --resume are for block-wise runs: give an --out ending in .zarr');
      await (blockwise ? segmentZarr(o, settings) : segmentInMemory(o, settings));
    });
}
