// The consistent ConvLSTM's piece of the command line: `segvol predict` with one of its
// models propagates the objects of a labelled first frame (--reference) through z, in
// overlapping patches; into a Zarr output out of core (resumable, in parts).
import { SegvolError } from '../../core/errors';
import { preprocessVolume } from '../../data/preprocess';
import { float32ExactIntegers, readLabelFrame } from '../../io/labels';
import { readVolumeAsync, writeVolumeAsync } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { parseBudget } from '../../training/memory';
import type { FamilyPredict } from '../family';
import type { ConsistentConvLstmNet } from './network';
import { segmentConsistent } from './propagation';
import { segmentConsistentZarr } from './propagation_zarr';

const positive = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new SegvolError('ERR_ARGUMENT', `${flag}: expected a non-negative integer, received ${v}`);
  return n;
};

export const consistentPredict: FamilyPredict = {
  options: [
    { flags: '--reference <file>', description: 'consistent ConvLSTM models: labels whose first frame starts the propagation (ground truth, or segvol segment\'s output)' },
    { flags: '--watershed-start', description: 'consistent ConvLSTM models without --reference: start from a watershed of the raw first frame (a fallback, not the paper\'s start)' },
    { flags: '--margin <pixels>', description: 'consistent ConvLSTM models: context on each side of a tile\'s core (default an eighth of the tile)', parse: positive('--margin') },
    { flags: '--passes <n>', description: 'consistent ConvLSTM models: passes per patch (default 2: from the reference, then from its own masks)', parse: positive('--passes') },
    { flags: '--memory-budget <size>', description: 'consistent ConvLSTM models: memory for one patch ("12G"; default SEGVOL_MEMORY_BUDGET or 80% of memory): sets the default tile' },
  ],
  async run(model, o, cli) {
    const architecture = model.architecture();
    if (architecture.kind !== 'preset' || architecture.preset !== 'consistentConvLstm') return false;
    const net = model as ConsistentConvLstmNet;
    const reference = o.reference as string | undefined;
    if (!reference && !o.watershedStart) {
      throw new SegvolError('ERR_ARGUMENT', 'a consistent ConvLSTM propagates the objects of a labelled first frame: give --reference <labels> (ground truth, ' +
        'or a segmentation from segvol segment, as the paper starts), or --watershed-start for a watershed of the raw first frame');
    }
    if (reference && o.watershedStart) throw new SegvolError('ERR_ARGUMENT', '--reference and --watershed-start both choose the first frame: give one');
    const window = o.window;
    if (window && window.length !== 1 && window.length !== 3) {
      throw new SegvolError('ERR_ARGUMENT', `--window: expected T (frames per sub-volume) or T,h,w (a patch) for a consistent ConvLSTM, received ${window.join(',')}`);
    }
    const budget = o.memoryBudget !== undefined ? parseBudget(o.memoryBudget as string, '--memory-budget') : undefined;
    const geometry = {
      ...(window ? { frames: window[0]! } : {}), ...(window?.length === 3 ? { tile: [window[1]!, window[2]!] as const } : {}),
      ...(o.margin !== undefined ? { margin: o.margin as number } : {}), ...(o.passes !== undefined ? { passes: o.passes as number } : {}),
      ...(budget !== undefined ? { memoryBudget: budget } : {}),
    };
    // The image as the model saw it in training (segvol train records it).
    const normalize = model.info.normalize ?? 'none';
    if (normalize !== 'slice' && normalize !== 'none') {
      throw new SegvolError('ERR_ARGUMENT', `${o.model} records the pre-processing ${JSON.stringify(normalize)}; propagation does 'slice' or 'none'`);
    }
    const bar = cli.progress('propagating objects');
    const onProgress = (done: number, total: number) => bar.update(done / total, `patch ${done}/${total}`);
    if (isZarrPath(o.out)) {
      if (!reference) throw new SegvolError('ERR_ARGUMENT', 'out-of-core propagation (a Zarr output) starts from --reference labels');
      let part = { index: 0, count: 1 };
      if (o.block) {
        const m = /^(\d+)\/(\d+)$/.exec(o.block as string);
        if (!m) throw new SegvolError('ERR_ARGUMENT', `--block: expected i/n (the i-th of n shares of every sub-volume's tiles, from 0), received ${o.block}`);
        part = { index: Number(m[1]), count: Number(m[2]) };
      }
      const chunks = o.chunks as number[] | undefined;
      const r = await segmentConsistentZarr(net, {
        input: o.in, reference, out: o.out, part, resume: o.resume === true, modelId: o.model as string, normalize, ...geometry,
        ...(chunks ? { chunks: [chunks[chunks.length - 2]!, chunks[chunks.length - 1]!] as const } : {}),
        onProgress, onWait: (k, missing) => cli.note(`waiting for ${missing} tile(s) of sub-volume ${k} from the other parts`),
      });
      bar.done();
      cli.print(`wrote ${o.out}: ${r.plan.slabs.length} sub-volumes of ${r.plan.patch[0]} frames in ${r.plan.tiles[0].origins.length}x${r.plan.tiles[1].origins.length} ` +
        `tiles of ${r.plan.patch[1]}x${r.plan.patch[2]}; ${r.computed} patches computed, ${r.skipped} already done`);
      return true;
    }
    if (o.block || o.resume) throw new SegvolError('ERR_ARGUMENT', '--block and --resume are for a Zarr output (--out ending in .zarr)');
    const volume = await readVolumeAsync(o.in);
    const dims = volume.shape.slice(-3) as [number, number, number];
    if ((volume.shape.length === 4 && volume.shape[0] !== net.options.inChannels) || (volume.shape.length === 3 && net.options.inChannels !== 1) || volume.shape.length < 3) {
      throw new SegvolError('ERR_SHAPE', `${o.in} is (${volume.shape.join(', ')}); the model takes ${net.options.inChannels} channel(s) of (D, H, W)`);
    }
    let firstFrame: ArrayLike<number> | 'watershed' = 'watershed';
    if (reference) {
      const ref = await readLabelFrame(reference, 0);
      if (ref.shape.join() !== dims.slice(1).join()) {
        throw new SegvolError('ERR_SHAPE', `the reference ${reference} has frames of (${ref.shape.join(', ')}); they must be ${dims[1]}x${dims[2]} like the volume's`);
      }
      firstFrame = ref.data;
      let largest = 0;
      for (const v of ref.data) largest = Math.max(largest, v);
      if (largest > float32ExactIntegers) {
        throw new SegvolError('ERR_ARGUMENT', `the reference holds ids up to ${largest}; ${o.out} would store them as float32, which rounds ids above 16777216 (2^24): ` +
          'write a Zarr output (int32), or renumber the reference (relabelSequential)');
      }
    }
    const image = normalize === 'slice' ? preprocessVolume(volume.data, volume.shape, 'slice') : volume.data;
    const labels = await segmentConsistent(net, image, dims, { firstFrame, onProgress, ...geometry });
    bar.done();
    await writeVolumeAsync(o.out, { data: Float32Array.from(labels), shape: dims, dtype: 'float32', ...(volume.spacing ? { spacing: volume.spacing } : {}),
      ...(volume.affine ? { affine: volume.affine } : {}) });
    cli.print(`wrote ${o.out}: the ${new Set(labels.subarray(0, dims[1] * dims[2])).size - 1} objects of the first frame through ${dims[0]} frames ` +
      `(${reference ? 'from the reference labels' : 'from a watershed of the raw first frame'})`);
    return true;
  },
};
