// segvol predict: a volume segmented with a model file, by overlapping windows
// blended with Gaussian weights (or by the model family's own inference).
import type { Command } from 'commander';
import { SegvolError } from '../../core/errors';
import { Tensor, type Device } from '../../core/tensor';
import type { Normalization } from '../../data/preprocess';
import { predictVolume } from '../../inference/predict_volume';
import { checkOutputPath, labelDtype, readVolumeAsync, writeVolumeAsync } from '../../io/volume_io';
import { isZarrPath } from '../../io/zarr';
import { families, familyOf } from '../../models';
import { loadModel } from '../../models/load';
import { argmaxClasses } from '../../ops';
import {
  addOptions, deviceOption, integerList, nonFiniteOption, nonNegativeSeconds, normalizeOption, optionKey, overlapOption, positiveIntegerOption, terminal,
  ttaOption,
} from '../context';
import { predictToZarr, type ZarrPredictOptions } from './predict_zarr';

type PredictOptions = ZarrPredictOptions & Record<string, unknown>;

export function registerPredict(program: Command): void {
  const readers = families.filter((f) => f.predict?.readInput);
  const command = program.command('predict')
    .description('segment a volume with a model file (or checkpoint), by overlapping windows blended with Gaussian weights')
    .requiredOption('--model <file>', 'a model file: written by segvol train or demo, model.save(), or a Trainer checkpoint')
    .requiredOption('--in <file>', `input volume (.nii, .nii.gz, .mha, .tif, .npy, ...; (D, H, W) or (C, D, H, W))${readers.map((f) => `, or ${f.predict!.input}`).join('')}`)
    .requiredOption('--out <file>', 'output (.nii, .nii.gz, .tif, .npy, .zarr, .ome.zarr): class ids, or probabilities with --probabilities')
    .option('--window <d,h,w>', 'sliding window (default: the whole volume)', integerList)
    .option('--overlap <fraction>', 'window overlap: one fraction, or d,h,w (e.g. 0,0.5,0.5)', overlapOption, 0.5)
    .option('--tta <flips>', 'test-time augmentation: mirror (all 8 flips of z, y, x) or the axes to flip, e.g. x,y (every combination, averaged)', ttaOption)
    .option('--window-batch <n>', 'windows per forward pass, stacked on the batch axis (default 1)', positiveIntegerOption)
    .option('--non-finite <policy>', 'NaN or infinite input voxels: error (default: refuse, naming where) or zero (set to 0 after pre-processing)', nonFiniteOption)
    .option('--normalize <mode>', "override the model's recorded pre-processing: slice (per-slice standardisation), mr, nonzero (per-volume z-scores over non-zero voxels) or none", normalizeOption)
    .option('--probabilities', 'write class probabilities (C, D, H, W) instead of labels')
    .option('--class <k>', "write class k's probability (D, H, W): a boundary map for evaluate --boundary", (v) => integerList(v)[0]!);
  for (const f of families) addOptions(command, f.predict?.options ?? []);
  command
    .option('--block <i/n>', 'Zarr output: compute the i-th of n block sets (array jobs: Slurm, Kubernetes)')
    .option('--resume', 'Zarr output: skip the blocks already written')
    .option('--chunks <d,h,w>', 'Zarr output: chunk (and block) shape (default: the input\'s chunks)', integerList)
    .option('--queue <redis-url>', 'Zarr output: put the blocks on a BullMQ queue in Redis for segvol worker processes, and wait for them ' +
      '(SIGINT or SIGTERM stops waiting with exit code 130 or 143; the jobs stay queued)')
    .option('--queue-name <name>', 'the queue\'s name (default segvol-blocks)')
    .option('--ome', 'Zarr output: an OME-Zarr multiscale image (implied by --out ending in .ome.zarr)')
    .option('--ome-levels <n>', 'OME-Zarr output: levels, counting the full resolution (default: until a level fits one chunk in y and x)', positiveIntegerOption)
    .option('--zarr-version <n>', 'Zarr output: 2 (default; OME-Zarr 0.4) or 3 (OME-Zarr 0.5)', (v) => Number(v))
    .option('--connect-timeout <seconds>', 'with --queue: retry an unreachable Redis this long, then exit with code 69; 0: retry forever', nonNegativeSeconds, 30)
    .option('--idle-warning <seconds>', 'with --queue: say when no worker has taken a block for this long (again after twice, four times as long); 0: never',
      nonNegativeSeconds, 60)
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: PredictOptions) => {
      checkOutputPath(o.out, '--out');  // before any window is computed
      const model = loadModel(o.model).to(o.device);
      try {
        const family = familyOf(model);
        // Options a family adds belong to its models.
        for (const f of families) {
          for (const option of f.predict?.options ?? []) {
            if (o[optionKey(option.flags)] !== undefined && f !== family) {
              throw new SegvolError('ERR_ARGUMENT', `${option.flags.split(' ')[0]} is for models of the ${f.title}; ${o.model} is not one`);
            }
          }
        }
        // A family with its own inference (propagation) takes any output, a Zarr store included.
        if (await family?.predict?.run?.(model, o, terminal)) return;
        if (isZarrPath(o.out)) {
          await predictToZarr(o);
          return;
        }
        if (o.block || o.resume || o.queue || o.chunks || o.ome || o.omeLevels || o.zarrVersion) {
          throw new SegvolError('ERR_ARGUMENT', '--block, --resume, --chunks, --queue, --ome, --ome-levels and --zarr-version are for Zarr output (--out ending in .zarr)');
        }
        await predictWindows(model, o);
      } finally {
        model.dispose();
      }
    });
}

/** Stitched windows: labels, probabilities or one class's probability, on the input's grid. */
async function predictWindows(model: ReturnType<typeof loadModel>, o: PredictOptions): Promise<void> {
  const recorded = model.info.normalize;
  if (o.normalize !== undefined && recorded !== undefined && o.normalize !== recorded) {
    terminal.note(`normalising with ${o.normalize} (--normalize) instead of the model's recorded ${JSON.stringify(recorded).replace(/"/g, '')}`);
  } else if (o.normalize === undefined && recorded === undefined) {
    terminal.note(`${o.model} does not record its pre-processing (an older file); using none: pass --normalize if it was trained on normalised data`);
  }
  if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize as Normalization };
  const volume = families.map((f) => f.predict?.readInput?.(o.in)).find((v) => v !== undefined) ?? await readVolumeAsync(o.in);
  // An image (H, W) is a one-slice volume (1, H, W); the output keeps the input's own shape.
  const image = volume.shape.length === 2;
  const shape = image ? [1, 1, 1, ...volume.shape] : volume.shape.length === 3 ? [1, 1, ...volume.shape] : [1, ...volume.shape];
  const x = Tensor.fromArray(volume.data, shape);
  const spatial = shape.slice(2) as [number, number, number];
  const bar = terminal.progress('predicting');
  const probs = await predictVolume(model, x, {
    window: (o.window ?? spatial) as [number, number, number], overlap: o.overlap, ...(o.tta ? { tta: o.tta } : {}),
    ...(o.windowBatch ? { windowBatch: o.windowBatch } : {}), ...(o.nonFinite ? { nonFinite: o.nonFinite } : {}),
    onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`),
  });
  bar.done();
  x.dispose();
  const p = probs.toArray();
  const k = probs.shape[1]!;
  probs.dispose();
  const n = spatial[0] * spatial[1] * spatial[2];
  let out: Float32Array, outShape: number[];
  if (o.class !== undefined) {
    if (!(o.class >= 0 && o.class < k)) throw new SegvolError('ERR_ARGUMENT', `--class: the model has classes 0..${k - 1}, received ${o.class}`);
    out = p.slice(o.class * n, (o.class + 1) * n);
    outShape = image ? spatial.slice(1) : spatial;
  } else if (o.probabilities) {
    out = p;
    outShape = [k, ...(image ? spatial.slice(1) : spatial)];
  } else {
    out = argmaxClasses(p, 1, k);
    outShape = image ? spatial.slice(1) : spatial;
  }
  await writeVolumeAsync(o.out, { data: out, shape: outShape, dtype: 'float32', ...(volume.spacing ? { spacing: volume.spacing } : {}),
    ...(volume.unit ? { unit: volume.unit } : {}), ...(volume.affine ? { affine: volume.affine } : {}) },
  o.probabilities || o.class !== undefined ? {} : { dtype: labelDtype(k) });
  terminal.print(`wrote ${o.out} (${outShape.join('x')})`);
}
