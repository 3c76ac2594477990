#!/usr/bin/env node
// The segvol command line: info, demo, synth, train, predict, evaluate, convert, inspect, plot, profile.
import { Command, InvalidArgumentError } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientTape } from '../autograd/tape';
import { backends } from '../core/backends';
import { formatProfile, profile } from '../core/profile';
import { Tensor, type Device } from '../core/tensor';
import { segvolVersion } from '../core/version';
import { normalizations, type Normalization } from '../data/preprocess';
import { bratsRole, findBratsCases, loadBratsCase } from '../data/brats';
import { segmentConsistent } from '../inference/consistent';
import { ConsistentConvLstmNet } from '../presets/consistent';
import { syntheticEm } from '../data/synthetic';
import { syntheticBrainMri } from '../data/phantom';
import { metrics, type BratsScores, type RandCurvePoint, type RandScores, type Shape3 } from '../evaluation/metrics';
import { predictVolume } from '../inference/predict_volume';
import { writeNpy } from '../io/npy';
import { describeVolume, describeZarr, readVolume, readVolumeAsync, writeVolume, writeVolumeAsync, type RawOptions, type StoredType, type Volume } from '../io/volume_io';
import { isZarrPath, zarrCompressors, type ZarrCompressor } from '../io/zarr';
import { planChunkedPrediction, predictChunked, type ChunkedOutput } from '../inference/chunked';
import { enqueueBlocks, peakRssMiB, startBlockWorker, waitForBlocks } from '../cluster/blocks';
import { presets } from '../presets';
import { loadModel } from '../serialize/model_file';
import { readTrainConfig } from './config';
import { trainFromConfig } from './train';
import { runDemo } from './demo';
import { runBratsDemo } from './demo_brats';
import { drawRandCurves, plotLog } from './plot';
import { duration, progressReporter } from './progress';

function integerList(value: string): number[] {
  const parts = value.split(',').filter((v) => v.trim() !== '').map((v) => Number(v.trim()));
  if (parts.some((v) => !Number.isInteger(v) || v < 1)) throw new InvalidArgumentError(`expected comma-separated positive integers, got '${value}'`);
  return parts;
}

/** --device: 'cpu' or 'cuda', checked against this build before any work starts. */
function deviceOption(value: string): Device {
  if (value !== 'cpu' && value !== 'cuda') throw new InvalidArgumentError(`expected cpu or cuda, received ${value}`);
  const status = backends().find((b) => b.name === value);
  if (!status?.available) {
    throw new InvalidArgumentError(`${value} is unavailable in this build (${status?.reason ?? 'unknown backend'}); use --device cpu`);
  }
  return value;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

function normalizeOption(value: string): Normalization {
  if (!normalizations.includes(value as Normalization)) throw new InvalidArgumentError(`expected ${normalizations.join(', ')}, received ${value}`);
  return value as Normalization;
}

/** --raw shape:dtype, e.g. 30,512,512:uint16. */
function rawOption(value: string): RawOptions {
  const [shape, dtype] = value.split(':');
  return { shape: integerList(shape ?? ''), dtype: (dtype ?? 'float32') as RawOptions['dtype'] };
}

/**
 * Segments of the truth of a boundary prediction: a binary boundary map (boundary 1) becomes
 * the components of its non-boundary pixels per slice; segment ids are used as they are (0 ignored).
 */
function connectedSegments(truth: Float32Array, shape: Shape3): Int32Array {
  if (truth.some((v) => v !== 0 && v !== 1)) return Int32Array.from(truth);
  return metrics.connectedComponents(Uint8Array.from(truth, (v) => (v > 0.5 ? 0 : 1)), shape, { connectivity: 4 }).labels;
}

/** segvol predict into a Zarr store: block by block here, a share of the blocks (--block i/n), or through a queue. */
async function predictToZarr(o: { model: string; in: string; out: string; window?: number[]; overlap: number; probabilities?: boolean; class?: number;
  normalize?: Normalization; block?: string; resume?: boolean; chunks?: number[]; queue?: string; queueName?: string; device: Device }): Promise<void> {
  if (!isZarrPath(o.in)) throw new Error(`out-of-core prediction reads a Zarr input; convert ${o.in} first: segvol convert ${o.in} ${o.in.replace(/\.[^./]+(\.gz)?$/, '')}.zarr`);
  if (!o.window || o.window.length !== 3) throw new Error('out-of-core prediction needs --window d,h,w (the volume is never read whole)');
  if (o.chunks && o.chunks.length !== 3) throw new Error(`--chunks: expected d,h,w, received ${o.chunks.join(',')}`);
  const model = loadModel(o.model).to(o.device);
  if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize };
  const output: ChunkedOutput = o.probabilities ? 'probabilities' : o.class !== undefined ? { class: o.class } : 'labels';
  const planOptions = { window: o.window as [number, number, number], overlap: o.overlap, output, ...(o.chunks ? { chunks: o.chunks as [number, number, number] } : {}) };
  if (o.queue) {
    if (o.block) throw new Error('--block splits work without a queue; with --queue the workers share the blocks');
    const connection = { url: o.queue, ...(o.queueName ? { name: o.queueName } : {}) };
    const plan = await planChunkedPrediction(model, o.in, o.out, planOptions);
    const r = await enqueueBlocks(connection, o.model, o.out, plan);
    console.log(`${o.out}: ${plan.blocks} blocks of ${plan.chunks.join('x')}; ${r.done} already written, ${r.queued} queued on ${o.queue} (${connection.name ?? 'segvol-blocks'})`);
    const bar = progressReporter('blocks');
    await waitForBlocks(connection, o.out, plan, { onProgress: (done, total, eta, active) => bar.update(done / total, `${done}/${total} blocks, ${active} in work, eta ${duration(eta)}`) });
    bar.done();
    console.log(`wrote ${o.out}`);
    model.dispose();
    return;
  }
  let part = { index: 0, count: 1 };
  if (o.block) {
    const m = /^(\d+)\/(\d+)$/.exec(o.block);
    if (!m) throw new Error(`--block: expected i/n (the i-th of n block sets, from 0), received ${o.block}`);
    part = { index: Number(m[1]), count: Number(m[2]) };
  }
  const bar = progressReporter('blocks');
  const r = await predictChunked(model, o.in, o.out, { ...planOptions, part, resume: o.resume === true, onProgress: (done, total) => bar.update(done / total, `block ${done}/${total}`) });
  bar.done();
  console.log(`wrote ${o.out}: ${r.computed} blocks computed, ${r.skipped} already written${part.count > 1 ? ` (part ${part.index}/${part.count} of ${r.blocks} blocks)` : ''}`);
  model.dispose();
}

/** segvol predict with a consistent ConvLSTM: objects of the first frame propagated through z. */
async function predictConsistent(model: ConsistentConvLstmNet, o: { in: string; out: string; window?: number[]; reference?: string }): Promise<void> {
  const volume = await readVolumeAsync(o.in);
  const dims = volume.shape.slice(-3) as [number, number, number];
  if (volume.shape.length === 4 && volume.shape[0] !== model.options.inChannels) {
    throw new Error(`${o.in} has ${volume.shape[0]} channels, the model takes ${model.options.inChannels}`);
  }
  let firstFrame: Float32Array | undefined;
  if (o.reference) {
    const ref = readVolume(o.reference);
    const plane = dims[1] * dims[2];
    if (ref.shape.slice(-2).join() !== dims.slice(1).join()) {
      throw new Error(`the reference ${o.reference} is (${ref.shape.join(', ')}); its frames must be ${dims[1]}x${dims[2]} like the volume's`);
    }
    firstFrame = ref.data.subarray(0, plane);
  }
  const bar = progressReporter('propagating objects');
  const labels = await segmentConsistent(model, volume.data, dims, {
    frames: o.window?.[0] ?? 8, ...(firstFrame ? { firstFrame } : {}), onProgress: (done, total) => bar.update(done / total, `sub-volume ${done}/${total}`),
  });
  bar.done();
  await writeVolumeAsync(o.out, { data: Float32Array.from(labels), shape: dims, dtype: 'float32', ...(volume.spacing ? { spacing: volume.spacing } : {}),
    ...(volume.affine ? { affine: volume.affine } : {}) });
  console.log(`wrote ${o.out}: the ${new Set(labels.subarray(0, dims[1] * dims[2])).size - 1} objects of the first frame through ${dims[0]} frames (${o.reference ? 'from the reference labels' : 'from a watershed of the first frame'})`);
  model.dispose();
}

/** Whether a path is one BRATS case folder (its modality files, or the 2015 layout's folders of them). */
function isBratsCase(file: string): boolean {
  return fs.existsSync(file) && fs.statSync(file).isDirectory() && fs.readdirSync(file).some((f) => bratsRole(f) !== undefined || bratsRole(`${f}.mha`) !== undefined);
}

/** A BRATS case's modalities as raw (4, D, H, W) channels in the order flair, t1, t1ce, t2 (the model applies its recorded normalisation). */
function bratsVolume(folder: string): Volume {
  const cases = findBratsCases(folder);
  if (cases.length !== 1) throw new Error(`${folder}: expected one BRATS case, found ${cases.length}; predict one case at a time`);
  const c = loadBratsCase(cases[0]!, { normalize: 'none', labels: false });
  // The prediction keeps the FLAIR's grid (its affine), as BRATS labels do.
  const { affine } = readVolume(cases[0]!.modalities.flair);
  return { data: c.image, shape: [4, ...c.dims], dtype: 'float32', ...(c.spacing ? { spacing: c.spacing } : {}), ...(affine ? { affine } : {}) };
}

/** The BRATS table: Dice, PPV and sensitivity per region, then IU per label and the mean IU (beside a second column set when given). */
function printBratsScores(a: BratsScores, b?: BratsScores): void {
  const f = (v: number) => v.toFixed(4);
  const row = (s: BratsScores, r: 'complete' | 'core' | 'enhancing') => `${f(s[r].dice)}  ${f(s[r].ppv)}  ${f(s[r].sensitivity)}`;
  console.log(`region     dice    ppv     sensitivity${b ? '      dice    ppv     sensitivity' : ''}`);
  for (const r of ['complete', 'core', 'enhancing'] as const) console.log(`${r.padEnd(9)}  ${row(a, r)}${b ? `       ${row(b, r)}` : ''}`);
  console.log(`IU per label 0-4: ${a.classIU.map(f).join(' ')}${b ? `   (${b.classIU.map(f).join(' ')})` : ''}`);
  console.log(`mean IU ${f(a.meanIU)}${b ? `   (${f(b.meanIU)})` : ''}`);
}

function printEvaluation(result: Record<string, unknown>): void {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : String(v));
  if (result.pixelError !== undefined) {
    const best = result.bestPixelError as { error: number; threshold: number };
    console.log(`pixel error: ${f(result.pixelError as number)} at 0.5; best ${f(best.error)} at threshold ${best.threshold.toFixed(2)}`);
  }
  if (result.rand) {
    const r = result.rand as RandScores;
    console.log(`Rand F-score ${f(r.fScore)} (merge ${f(r.vMerge)}, split ${f(r.vSplit)}); ` +
      `adapted Rand error ${f(r.adaptedRandError)}; VI split ${f(r.viSplit)}, merge ${f(r.viMerge)} bits`);
  }
  for (const [key, name] of [['randThreshold', 'connected components'], ['randWatershed', 'watershed']] as const) {
    const r = result[key] as { threshold: number; scores: RandCurvePoint; curve: RandCurvePoint[] } | undefined;
    if (!r) continue;
    console.log(`best 2D Rand F-score with ${name}: ${f(r.scores.fScore)} (merge ${f(r.scores.vMerge)}, split ${f(r.scores.vSplit)}) ` +
      `at threshold ${r.threshold.toFixed(2)}, ${r.scores.segments} segments`);
  }
  if (result.warping) {
    const w = result.warping as { warpingError: number };
    console.log(`warping error: ${f(w.warpingError)}`);
  }
  if (result.brats) printBratsScores(result.brats as BratsScores);
  if (result.overlap) {
    const o = result.overlap as { perClass: Array<Record<string, number>>; meanIU: number };
    console.log('class  dice    jaccard  ppv     sensitivity  avd%');
    o.perClass.forEach((c, k) => console.log(`${String(k).padEnd(5)}  ${f(c.dice!)}  ${f(c.jaccard!)}   ${f(c.ppv!)}  ${f(c.sensitivity!).padEnd(11)}  ${f(c.avd!)}`));
    console.log(`mean IU ${f(o.meanIU)}`);
  }
  if (result.hausdorff95) {
    (result.hausdorff95 as number[]).forEach((d, k) => console.log(`class ${k + 1}: 95% Hausdorff ${f(d)}`));
  }
}

export function createProgram(): Command {
  const program = new Command();
  program.name('segvol').description('Volumetric segmentation with PyraMiD-LSTM and friends').version(segvolVersion());

  program.command('info').description('list the compute backends of this build').action(() => {
    console.log(`segvol ${segvolVersion()} (node ${process.version})`);
    console.log('backends:');
    for (const b of backends()) {
      console.log(`  ${b.name.padEnd(5)} ${b.available ? `available  ${b.detail}` : `unavailable: ${b.reason}`}`);
    }
  });

  program.command('demo')
    .description('train a network on synthetic data (CPU) and evaluate it: a small PyraMiD-LSTM on an EM-like stack (default), ' +
      'or the cross-modality ConvLSTM on multi-modal brain MR phantoms (--model brats)')
    .option('--model <name>', 'pyramid (default) or brats', 'pyramid')
    .option('--seconds <n>', 'training time budget (default 60; 120 for brats)', positiveNumber)
    .option('--out <dir>', 'output folder (default segvol-demo, or segvol-demo-brats)')
    .option('--seed <n>', 'random seed', (v) => Number(v), 1)
    .action(async (options: { model: string; seconds?: number; out?: string; seed: number }) => {
      if (options.model === 'brats') {
        const seconds = options.seconds ?? 120;
        console.log('segvol demo --model brats: 8 synthetic multi-modal brain MR phantoms 24x64x64 (flair, t1, t1ce, t2; 6 to train, 2 held out), ' +
          `cross-modality ConvLSTM encoder-decoder (16 channels), two-phase training for ${seconds} s on the CPU`);
        const bar = progressReporter('training');
        const result = await runBratsDemo({
          seconds, seed: options.seed, ...(options.out ? { out: options.out } : {}),
          onProgress: (p, elapsed) => bar.update(Math.min(1, elapsed / seconds), `${p.phaseName} step ${p.step}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}`),
        });
        bar.done();
        console.log(`trained ${result.steps[0]} steps on tumour sequences (median frequency weights), then ${result.steps[1]} on all sequences (unweighted)`);
        console.log('held-out phantoms       trained                     untrained');
        printBratsScores(result.scores, result.untrained);
        console.log('wrote:');
        for (const f of result.files) console.log(`  ${f}`);
        result.model.dispose();
        return;
      }
      if (options.model !== 'pyramid') throw new InvalidArgumentError(`--model: expected pyramid or brats, received ${options.model}`);
      const seconds = options.seconds ?? 60;
      console.log(`segvol demo: synthetic EM-like stack 24x96x96 (16 slices to train, 8 held out), ` +
        `PyraMiD-LSTM network (hidden 8, 12; 5x5 filters), ${seconds} s of training on the CPU`);
      const bar = progressReporter('training');
      const result = await runDemo({
        seconds, out: options.out ?? 'segvol-demo', seed: options.seed,
        onProgress: (p, elapsed) => bar.update(elapsed / seconds, `step ${p.step}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ` +
          `${Math.round(p.voxelsPerSecond).toLocaleString('en-US')} voxels/s`),
      });
      bar.done();
      console.log(`trained ${result.steps} steps`);
      console.log(`pixel error on the held-out slices: ${(100 * result.pixelError).toFixed(2)}% ` +
        `(thresholding the raw input: ${(100 * result.baselinePixelError).toFixed(2)}%)`);
      console.log('wrote:');
      for (const f of result.files) console.log(`  ${f}`);
    });

  program.command('synth')
    .description('write a synthetic EM-like training volume, its labels and a training config (train.json); ' +
      'or, with --brats, multi-modal brain MR phantoms as BRATS case folders and a config for the cross-modality ConvLSTM')
    .option('--out <dir>', 'output folder', 'segvol-data')
    .option('--size <d,h,w>', 'volume size (default 24,128,128; 24,64,64 with --brats)', integerList)
    .option('--brats', 'BRATS-layout phantoms: train/ (4 cases) and test/ (1 case), each <case>_flair/_t1/_t1ce/_t2/_seg.nii.gz')
    .option('--cases <n>', 'training cases with --brats', (v) => integerList(v)[0]!, 4)
    .option('--seed <n>', 'random seed', (v) => Number(v), 1)
    .action((o: { out: string; size?: number[]; brats?: boolean; cases: number; seed: number }) => {
      if (o.brats) {
        const [depth, height, width] = (o.size ?? [24, 64, 64]) as [number, number, number];
        const write = (group: string, id: string, seed: number) => {
          const p = syntheticBrainMri({ depth, height, width, seed });
          const folder = path.join(o.out, group, id);
          fs.mkdirSync(folder, { recursive: true });
          const n = depth * height * width;
          p.modalities.forEach((m, c) => writeVolume(path.join(folder, `${id}_${m}.nii.gz`), { data: p.image.subarray(c * n, (c + 1) * n), shape: p.dims, dtype: 'float32' },
            { dtype: 'int16' }));
          writeVolume(path.join(folder, `${id}_seg.nii.gz`), { data: p.labels, shape: p.dims, dtype: 'float32' }, { dtype: 'uint8' });
        };
        for (let i = 1; i <= o.cases; ++i) write('train', `phantom_${String(i).padStart(3, '0')}`, o.seed * 1000 + i);
        write('test', 'phantom_test', o.seed * 1000 + 999);
        const config = {
          model: { preset: 'crossModalityConvLstm', channels: 16, seed: o.seed },
          settings: 'paper', size: [3, height, width], steps: 50,
          optimizer: { kind: 'adam', lr: 0.001 },
          data: { brats: 'train' }, validation: { brats: 'test', windows: 4 },
          seed: o.seed, checkpoint: { path: 'model.safetensors', every: 25 },
        };
        fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
        console.log(`wrote ${o.cases} training cases to ${path.join(o.out, 'train')}, one to ${path.join(o.out, 'test')} (${depth}x${height}x${width}), and train.json`);
        return;
      }
      const [depth, height, width] = (o.size ?? [24, 128, 128]) as [number, number, number];
      const em = syntheticEm({ depth, height, width, seed: o.seed });
      fs.mkdirSync(o.out, { recursive: true });
      writeNpy(path.join(o.out, 'volume.npy'), { shape: em.shape, data: em.image });
      writeNpy(path.join(o.out, 'labels.npy'), { shape: em.shape, data: em.labels });
      const config = {
        model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [8, 12], fc: [12], kernel: 5, seed: o.seed },
        data: { volume: 'volume.npy', labels: 'labels.npy', flip: { z: true, y: true, x: true }, classNames: ['cell', 'membrane'] },
        stages: [{ size: [8, 32, 32], epochs: 100 }, { size: [8, 48, 48], epochs: 30 }],
        loss: 'squaredError',
        optimizer: { kind: 'rmspropMomentum' },
        schedule: { kind: 'paper' },
        seed: o.seed,
        checkpoint: { path: 'model.safetensors', every: 20 },
      };
      fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
      console.log(`wrote ${path.join(o.out, 'volume.npy')}, labels.npy and train.json (${em.shape.join('x')})`);
    });

  program.command('train')
    .description('train a model from a JSON config; writes a model file (checkpoint), a JSON-lines log beside it, and the best model with validation')
    .requiredOption('--config <file>', 'training configuration (see README)')
    .option('--resume <checkpoint>', 'continue from a checkpoint written by an earlier run')
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (options: { config: string; resume?: string; device: Device }) => {
      const config = readTrainConfig(options.config);
      const baseDir = path.dirname(path.resolve(options.config));  // paths in the config are relative to it
      const controller = new AbortController();
      process.once('SIGINT', () => {
        process.stderr.write('\nstopping after the current step and writing the checkpoint (Ctrl-C again to kill)\n');
        controller.abort();
      });
      await trainFromConfig(config, baseDir, { device: options.device, signal: controller.signal, ...(options.resume ? { resume: options.resume } : {}) });
    });

  program.command('predict')
    .description('segment a volume with a model file (or checkpoint), by overlapping windows blended with Gaussian weights')
    .requiredOption('--model <file>', 'a model file: written by segvol train or demo, model.save(), or a Trainer checkpoint')
    .requiredOption('--in <file>', 'input volume (.nii, .nii.gz, .mha, .tif, .npy, ...; (D, H, W) or (C, D, H, W)), or a BRATS case folder (its four modalities)')
    .requiredOption('--out <file>', 'output (.nii, .nii.gz, .tif, .npy): class ids, or probabilities with --probabilities')
    .option('--window <d,h,w>', 'sliding window (default: the whole volume)', integerList)
    .option('--overlap <fraction>', 'window overlap', (v) => Number(v), 0.5)
    .option('--normalize <mode>', "override the model's recorded pre-processing: slice (per-slice standardisation), mr, nonzero (per-volume z-scores over non-zero voxels) or none", normalizeOption)
    .option('--probabilities', 'write class probabilities (C, D, H, W) instead of labels')
    .option('--class <k>', "write class k's probability (D, H, W): a boundary map for evaluate --boundary", (v) => integerList(v)[0]!)
    .option('--reference <file>', 'consistent ConvLSTM models: labels whose first frame starts the propagation (default: a watershed of the first frame)')
    .option('--block <i/n>', 'Zarr output: compute the i-th of n block sets (array jobs: Slurm, Kubernetes)')
    .option('--resume', 'Zarr output: skip the blocks already written')
    .option('--chunks <d,h,w>', 'Zarr output: chunk (and block) shape (default: the input\'s chunks)', integerList)
    .option('--queue <redis-url>', 'Zarr output: put the blocks on a BullMQ queue in Redis for segvol worker processes, and wait for them')
    .option('--queue-name <name>', 'the queue\'s name (default segvol-blocks)')
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: { model: string; in: string; out: string; window?: number[]; overlap: number; normalize?: Normalization; probabilities?: boolean;
      class?: number; reference?: string; block?: string; resume?: boolean; chunks?: number[]; queue?: string; queueName?: string; device: Device }) => {
      if (isZarrPath(o.out)) {
        await predictToZarr(o);
        return;
      }
      if (o.block || o.resume || o.queue || o.chunks) throw new Error('--block, --resume, --chunks and --queue are for Zarr output (--out ending in .zarr)');
      const model = loadModel(o.model).to(o.device);
      if (model instanceof ConsistentConvLstmNet) {
        await predictConsistent(model, o);
        return;
      }
      if (o.reference) throw new Error('--reference starts a consistent ConvLSTM model\'s propagation; this model is not one');
      const recorded = model.info.normalize;
      if (o.normalize !== undefined && recorded !== undefined && o.normalize !== recorded) {
        console.error(`normalising with ${o.normalize} (--normalize) instead of the model's recorded ${recorded}`);
      } else if (o.normalize === undefined && recorded === undefined) {
        console.error(`${o.model} does not record its pre-processing (an older file); using none: pass --normalize if it was trained on normalised data`);
      }
      if (o.normalize !== undefined) model.info = { ...model.info, normalize: o.normalize };
      const volume = isBratsCase(o.in) ? bratsVolume(o.in) : await readVolumeAsync(o.in);
      const shape = volume.shape.length === 3 ? [1, 1, ...volume.shape] : [1, ...volume.shape];
      const x = Tensor.fromArray(volume.data, shape);
      const spatial = shape.slice(2) as [number, number, number];
      const bar = progressReporter('predicting');
      const probs = await predictVolume(model, x, {
        window: (o.window ?? spatial) as [number, number, number], overlap: o.overlap,
        onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`),
      });
      bar.done();
      const p = probs.toArray();
      const k = probs.shape[1]!;
      const n = spatial[0] * spatial[1] * spatial[2];
      let out: Float32Array, outShape: number[];
      if (o.class !== undefined) {
        if (!(o.class >= 0 && o.class < k)) throw new Error(`--class: the model has classes 0..${k - 1}, received ${o.class}`);
        out = p.slice(o.class * n, (o.class + 1) * n);
        outShape = spatial;
      } else if (o.probabilities) {
        out = p;
        outShape = [k, ...spatial];
      } else {
        out = new Float32Array(n);
        for (let v = 0; v < n; ++v) {
          let best = 0;
          for (let c = 1; c < k; ++c) if (p[c * n + v]! > p[best * n + v]!) best = c;
          out[v] = best;
        }
        outShape = spatial;
      }
      await writeVolumeAsync(o.out, { data: out, shape: outShape, dtype: 'float32', ...(volume.spacing ? { spacing: volume.spacing } : {}),
        ...(volume.affine ? { affine: volume.affine } : {}) }, o.probabilities || o.class !== undefined ? {} : { dtype: 'uint8' });
      console.log(`wrote ${o.out} (${outShape.join('x')})`);
    });

  program.command('worker')
    .description('take block jobs from a BullMQ queue (segvol predict --queue) and write their chunks, until stopped (SIGTERM/SIGINT finish the current block)')
    .requiredOption('--queue <redis-url>', 'the Redis the coordinator uses, e.g. redis://host:6379')
    .option('--queue-name <name>', 'the queue\'s name (default segvol-blocks)')
    .option('--concurrency <n>', 'blocks at once (default 1)', (v) => integerList(v)[0]!, 1)
    .option('--lock-seconds <n>', 'a block held this long by a silent worker goes to another one (default 60)', positiveNumber, 60)
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: { queue: string; queueName?: string; concurrency: number; lockSeconds: number; device: Device }) => {
      const w = startBlockWorker({ url: o.queue, ...(o.queueName ? { name: o.queueName } : {}) }, {
        concurrency: o.concurrency, lockSeconds: o.lockSeconds, device: o.device,
        onBlock: (block, out, seconds) => console.log(`block ${block} of ${out} in ${seconds.toFixed(1)} s`),
      });
      console.log(`worker ${process.pid} on ${o.queue} (${o.queueName ?? 'segvol-blocks'})`);
      await new Promise<void>((resolve) => {
        const stop = () => void w.close().then(() => {
          console.log(`worker ${process.pid} stopped; peak RSS ${peakRssMiB().toFixed(0)} MiB`);
          resolve();
        });
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });

  program.command('evaluate')
    .description('compare a prediction with the truth (any volume format): overlap, Hausdorff, Rand/VI, pixel and warping error, BRATS regions')
    .requiredOption('--pred <file>', 'predicted labels, or boundary probabilities in [0, 1]')
    .requiredOption('--truth <file>', 'true labels (class ids, segment ids, or a binary boundary map)')
    .option('--metrics <list>', 'overlap, hausdorff, rand, pixel, warping, brats (default: by the prediction: labels or probabilities)')
    .option('--classes <n>', 'number of classes for overlap measures (default: largest id + 1)', (v) => integerList(v)[0]!)
    .option('--spacing <z,y,x>', 'voxel spacing for distances', (v) => v.split(',').map(Number))
    .option('--boundary', 'the prediction is a boundary map (probabilities, high = boundary): pixel error, the best 2D Rand F-score ' +
      'with connected components and with the watershed, and their split/merge curves')
    .option('--plot <file.png>', 'with a boundary map: draw the Rand split/merge curves')
    .option('--brats', 'BRATS labels 0-4: Dice, PPV and sensitivity of the complete, core and enhancing tumour, IU per label and mean IU')
    .option('--json', 'print JSON instead of a table')
    .action(async (o: { pred: string; truth: string; metrics?: string; classes?: number; spacing?: number[]; boundary?: boolean; plot?: string; brats?: boolean; json?: boolean }) => {
      const pred = await readVolumeAsync(o.pred);
      const truth = await readVolumeAsync(o.truth);
      if (pred.shape.join() !== truth.shape.join()) {
        throw new Error(`the prediction ${o.pred} has shape (${pred.shape.join(', ')}), the truth ${o.truth} (${truth.shape.join(', ')}); they must match`);
      }
      if (pred.shape.length !== 2 && pred.shape.length !== 3) throw new Error(`expected (H, W) or (D, H, W) volumes, received (${pred.shape.join(', ')})`);
      const shape = pred.shape as unknown as Shape3;
      const probabilities = o.boundary === true || pred.data.some((v) => v !== Math.round(v));
      if (o.plot && !probabilities) throw new Error('--plot draws the Rand curves of a boundary map: give boundary probabilities (and --boundary)');
      if (o.brats && probabilities) throw new Error('--brats compares label volumes (0-4); the prediction holds non-integer values: give its argmax labels');
      const chosen = (o.metrics ?? (o.brats ? 'brats' : probabilities ? 'pixel,rand,warping' : 'overlap,rand')).split(',').map((m) => m.trim());
      const known = ['overlap', 'hausdorff', 'rand', 'pixel', 'warping', 'brats'];
      const unknown = chosen.filter((m) => !known.includes(m));
      if (unknown.length) throw new Error(`unknown metric '${unknown[0]}'; known: ${known.join(', ')}`);
      const result: Record<string, unknown> = {};
      if (chosen.includes('pixel')) {
        result.pixelError = metrics.pixelError(pred.data, truth.data).error;
        result.bestPixelError = metrics.pixelError(pred.data, truth.data, { search: true });
      }
      if (chosen.includes('rand')) {
        // Boundary maps: 2D segmentation per slice, as the 2D-3D ConvNet paper evaluates.
        if (probabilities) {
          const segments = connectedSegments(truth.data, shape);
          for (const method of ['threshold', 'watershed'] as const) {
            const bar = progressReporter(`threshold search (${method === 'threshold' ? 'connected components' : 'watershed'})`);
            result[method === 'threshold' ? 'randThreshold' : 'randWatershed'] = metrics.bestRandFScore(pred.data, segments, shape, {
              method, connectivity: 4, onProgress: (done, total) => bar.update(done / total, `threshold ${done}/${total}`),
            });
            bar.done();
          }
          if (o.plot) {
            type Best = { curve: RandCurvePoint[] };
            fs.writeFileSync(o.plot, drawRandCurves([
              { name: 'connected components', points: (result.randThreshold as Best).curve.map((p) => [p.vSplit, p.vMerge]), color: [31, 119, 180] },
              { name: 'watershed', points: (result.randWatershed as Best).curve.map((p) => [p.vSplit, p.vMerge]), color: [214, 39, 40] },
            ]));
            console.error(`wrote ${o.plot}`);
          }
        } else {
          result.rand = metrics.rand(pred.data, truth.data);
        }
      }
      if (chosen.includes('warping')) {
        const binary = (a: Float32Array) => Uint8Array.from(a, (v) => (v > 0.5 ? 0 : 1));  // boundary 1 -> background
        result.warping = metrics.warpingError(binary(pred.data), binary(truth.data), shape);
      }
      let largest = 0;
      for (const v of truth.data) largest = Math.max(largest, v);
      if (!probabilities) for (const v of pred.data) largest = Math.max(largest, v);
      const classes = o.classes ?? largest + 1;
      if (chosen.includes('overlap')) result.overlap = metrics.overlap(pred.data, truth.data, classes);
      if (chosen.includes('brats')) result.brats = metrics.brats(pred.data, truth.data);
      if (chosen.includes('hausdorff')) {
        const spacing = (o.spacing ?? [1, 1, 1]) as [number, number, number];
        result.hausdorff95 = Array.from({ length: classes - 1 }, (_, k) => metrics.hausdorff95(
          Uint8Array.from(pred.data, (v) => (v === k + 1 ? 1 : 0)), Uint8Array.from(truth.data, (v) => (v === k + 1 ? 1 : 0)), shape, { spacing }));
      }
      if (o.json) {
        console.log(JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2));
        return;
      }
      printEvaluation(result);
    });

  program.command('convert')
    .description('convert a volume between formats by extension: .nii(.gz), .mha, .tif, .npy, Zarr (a path ending in .zarr), a folder of slices (PNG output: a path ending in /)')
    .argument('<in>', 'input volume (a Zarr store: local folder or http(s) URL)')
    .argument('<out>', 'output volume')
    .option('--dtype <type>', 'stored type where the format allows: float32, uint8, int16, uint16 (NIfTI scales values that do not fit)')
    .option('--allow-lossy', 'TIFF, Zarr: round and clip values an integer type cannot hold, instead of refusing')
    .option('--raw <shape:dtype>', 'read raw binary input, e.g. 30,512,512:uint16', rawOption)
    .option('--chunks <d,h,w>', 'Zarr output: chunk shape (default 64 per axis)', integerList)
    .option('--compressor <name>', 'Zarr output: zlib (v2 default), gzip (v3 default), blosc (lz4, via numcodecs) or none')
    .option('--zarr-version <n>', 'Zarr output: 2 (default) or 3', (v) => Number(v))
    .action(async (input: string, output: string, o: { dtype?: StoredType; allowLossy?: boolean; raw?: RawOptions; chunks?: number[]; compressor?: string; zarrVersion?: number }) => {
      if (o.dtype !== undefined && !['float32', 'uint8', 'int16', 'uint16'].includes(o.dtype)) {
        throw new Error(`--dtype: expected float32, uint8, int16 or uint16, received ${o.dtype}`);
      }
      if (o.zarrVersion !== undefined && o.zarrVersion !== 2 && o.zarrVersion !== 3) throw new Error(`--zarr-version: expected 2 or 3, received ${o.zarrVersion}`);
      if (o.compressor !== undefined && !zarrCompressors.includes(o.compressor as ZarrCompressor)) {
        throw new Error(`--compressor: expected ${zarrCompressors.join(', ')}, received ${o.compressor}`);
      }
      if ((o.chunks || o.compressor || o.zarrVersion) && !isZarrPath(output)) throw new Error('--chunks, --compressor and --zarr-version are for Zarr output (a path ending in .zarr)');
      const started = Date.now();
      const volume = await readVolumeAsync(input, o.raw ? { raw: o.raw } : {});
      const big = volume.data.length > 64 << 20;
      if (big) console.error(`read ${input} (${volume.shape.join('x')}, ${volume.dtype}) in ${duration((Date.now() - started) / 1000)}; writing`);
      if (o.chunks && o.chunks.length !== volume.shape.length) {
        if (o.chunks.length === 3 && volume.shape.length === 4) o.chunks = [1, ...o.chunks];
        else throw new Error(`--chunks: expected ${volume.shape.length} sizes for a (${volume.shape.join(', ')}) volume, received ${o.chunks.length}`);
      }
      const report = await writeVolumeAsync(output, volume, {
        ...(o.dtype ? { dtype: o.dtype } : {}), ...(o.allowLossy ? { allowLossy: true } : {}), ...(o.chunks ? { chunks: o.chunks } : {}),
        ...(o.compressor ? { compressor: o.compressor as ZarrCompressor } : {}), ...(o.zarrVersion ? { zarrVersion: o.zarrVersion as 2 | 3 } : {}),
      });
      const n = volume.data.length;
      const share = (k: number) => `${k} voxels (${((100 * k) / n).toFixed(1)}%)`;
      if (report.rounded || report.clipped) {
        console.error(`warning: storing as ${report.dtype} ${report.scale ? `with scale ${report.scale.slope.toPrecision(6)} and offset ${report.scale.inter.toPrecision(6)} ` : ''}` +
          `rounded ${share(report.rounded)} and clipped ${share(report.clipped)}; values changed by up to ${report.maxError.toPrecision(3)} ` +
          '(use --dtype float32 for an exact copy)');
      }
      console.log(`wrote ${output} (${volume.shape.join('x')}, ${report.dtype}, from ${volume.dtype})`);
    });

  program.command('inspect')
    .description('print shape, stored type, spacing and value range of a volume (Zarr: also its chunks, read chunk slab by chunk slab)')
    .argument('<file>', 'volume (.nii, .nii.gz, .mha, .tif, .npy, .png, Zarr, a folder of slices, or raw data with --raw)')
    .option('--raw <shape:dtype>', 'read raw binary data, e.g. 30,512,512:uint16', rawOption)
    .action(async (file: string, o: { raw?: RawOptions }) => {
      const d = isZarrPath(file) ? await describeZarr(file) : { ...describeVolume(readVolume(file, o.raw ? { raw: o.raw } : {})), chunks: undefined };
      console.log(`${file}\n  shape    ${d.shape.join(' x ')}${d.chunks ? `\n  chunks   ${d.chunks.join(' x ')}` : ''}\n  dtype    ${d.dtype}\n  spacing  ${d.spacing ? d.spacing.map((v) => Number(v.toPrecision(6))).join(' x ') : 'unknown'}` +
        `\n  range    ${d.min} .. ${d.max} (mean ${d.mean.toFixed(4)})${d.nan ? `\n  NaN      ${d.nan} voxels` : ''}`);
    });

  program.command('plot')
    .description('draw a training log (the .log.jsonl beside a checkpoint) as a PNG: loss, learning rate and validation against the step')
    .argument('<log>', 'training log (JSON lines)')
    .requiredOption('--out <file>', 'PNG to write')
    .action((log: string, o: { out: string }) => {
      const r = plotLog(log, o.out);
      console.log(`wrote ${o.out} (${r.steps} steps${r.validations ? `, ${r.validations} validations` : ''})`);
    });

  program.command('profile')
    .description('time one forward + backward pass of the paper network, per native op')
    .option('--in-channels <n>', 'input channels', (v) => integerList(v)[0]!, 1)
    .option('--classes <n>', 'classes', (v) => integerList(v)[0]!, 2)
    .option('--hidden <list>', 'PyraMiD-LSTM hidden units per layer', integerList, [16, 32, 64])
    .option('--fc <list>', 'FC units between layers', integerList, [25, 45])
    .option('--kernel <n>', 'filter size', (v) => integerList(v)[0]!, 7)
    .option('--size <d,h,w>', 'sub-volume size', integerList, [8, 64, 64])
    .option('--device <name>', 'cpu or cuda', deviceOption, 'cpu' as Device)
    .action(async (o: { inChannels: number; classes: number; hidden: number[]; fc: number[]; kernel: number; size: number[]; device: Device }) => {
      const model = presets.pyramidNet({ inChannels: o.inChannels, classes: o.classes, hidden: o.hidden, fc: o.fc, kernel: o.kernel }).to(o.device);
      const x = Tensor.full([1, o.inChannels, ...o.size], 0.5, { device: o.device });
      const run = async () => {
        const tape = new GradientTape();
        tape.watch(x);
        const y = await tape.record(() => model.forward(x, { training: true }));
        const grads = await tape.backward(y, y);
        tape.dispose();
        for (const t of [y, ...grads.values()]) t.dispose();
      };
      await run();  // builds the oneDNN primitives / picks the cuDNN algorithms
      const { records } = await profile(run);
      console.log(`forward + backward on ${o.device}, input (1, ${o.inChannels}, ${o.size.join(', ')}), ${model.paramCount().toLocaleString('en-US')} parameters`);
      console.log(formatProfile(records));
    });
  return program;
}

if (require.main === module) {
  createProgram().parseAsync(process.argv).catch((error: Error & { code?: string }) => {
    console.error(`segvol: ${error.message.replace(/^segvol: /, '')}`);
    process.exitCode = 1;
  });
}
