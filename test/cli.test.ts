// The command line, run as a user would (node + ts-node on the sources).
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readNpy, writeNpy } from '../lib/io/npy';
import { writeVolume } from '../lib/io/volume_io';
import { syntheticEm } from '../lib/data/synthetic';
import { syntheticBrainMri } from '../lib/models/mri/phantom';
import { loadModel } from '../lib/models/load';
import { presets } from '../lib/models';
import { labelColour } from '../lib/io/panels';
import { PNG } from 'pngjs';
import { createProgram } from '../lib/cli/main';
import { metrics } from '../lib/evaluation/metrics';

const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
const root = path.join(__dirname, '..');
// Runs from the repository root (where ts-node resolves); paths given are absolute.
function segvol(args: string[]) {
  const r = spawnSync(process.execPath, ['--require=ts-node/register', cli, ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('segvol info lists the backends', (t) => {
  const r = segvol(['info']);
  t.is(r.status, 0, r.err);
  t.regex(r.out, /cpu\s+available\s+oneDNN/);
  t.regex(r.out, /cuda\s+(available|unavailable: )/);
  t.regex(r.out, /distributed training: (MPI available; cuda ranks average through |unavailable: segvol was built without MPI)/);
});

test('segvol train --config, --resume, then predict', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-cli-'));
  const em = syntheticEm({ depth: 6, height: 20, width: 20, seed: 3 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'labels.npy'), { shape: em.shape, data: em.labels });
  const config = {
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' },
    stages: [{ size: [4, 8, 8], epochs: 3 }],
    loss: { kind: 'crossEntropy', classWeights: 'medianFrequency' },
    optimizer: { kind: 'adam' },
    schedule: { kind: 'constant', lr: 0.01 },
    checkpoint: { path: 'model.safetensors', every: 1 },
  };
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(config));
  const first = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(first.status, 0, first.err);
  t.regex(first.out, /finished at step 3, last loss \d/);
  // A longer plan, resumed from the step-3 checkpoint: 2 more steps.
  fs.writeFileSync(path.join(dir, 'more.json'), JSON.stringify({ ...config, stages: [{ size: [4, 8, 8], epochs: 5 }] }));
  const resumed = segvol(['train', '--config', path.join(dir, 'more.json'), '--resume', path.join(dir, 'model.safetensors')]);
  t.is(resumed.status, 0, resumed.err);
  t.regex(resumed.out, /finished at step 5/);
  const predicted = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'labels-out.npy')]);
  t.is(predicted.status, 0, predicted.err);
  const labels = readNpy(path.join(dir, 'labels-out.npy'));
  t.deepEqual(labels.shape, [6, 20, 20]);
  t.true(labels.data.every((v) => v === 0 || v === 1));
});

test('segvol train runs phases with batches, a class filter and an lr per phase', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-cli-'));
  const em = syntheticEm({ depth: 6, height: 20, width: 20, seed: 4 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'labels.npy'), { shape: em.shape, data: em.labels });
  const config = {
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' },
    phases: [
      { name: 'membranes', size: [3, 8, 8], steps: 2, batchSize: 2, filter: { containsClass: 1, minVoxels: 4 }, loss: { kind: 'crossEntropy', classWeights: 'medianFrequency' } },
      { name: 'all', size: [4, 10, 10], steps: 2, batchSize: 3, lr: 1e-6 },
    ],
    optimizer: { kind: 'adam', lr: 0.01 },
    checkpoint: { path: 'model.safetensors' },
  };
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(config));
  const r = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(r.status, 0, r.err);
  t.regex(r.out, /finished at step 4, last loss \d/);
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ ...config, phases: [{ size: [3, 8, 8], steps: 1, filter: { class: 1 } }] }));
  const bad = segvol(['train', '--config', path.join(dir, 'bad.json')]);
  t.is(bad.status, 1);
  t.regex(bad.err, /unknown key 'phases\[0\]\.filter\.class'; known: containsClass, minVoxels, tries/);
});

test('segvol train rejects an unknown config key by name, and a missing file by path', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-cli-'));
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hiden: [3] }, data: { volume: 'v.npy', labels: 'l.npy' },
  }));
  const bad = segvol(['train', '--config', path.join(dir, 'bad.json')]);
  t.is(bad.status, 1);
  t.regex(bad.err, /unknown key 'model\.hiden'/);
  fs.writeFileSync(path.join(dir, 'missing.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2 }, data: { volume: 'v.npy', labels: 'l.npy' },
  }));
  const missing = segvol(['train', '--config', path.join(dir, 'missing.json')]);
  t.is(missing.status, 1);
  t.regex(missing.err, /cannot read .*v\.npy/);
});

test('segvol demo trains, reports the held-out pixel error and writes its files', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-demo-'));
  const r = segvol(['demo', '--seconds', '4', '--out', dir]);
  t.is(r.status, 0, r.err);
  const error = /pixel error on the held-out slices: ([\d.]+)% \(thresholding the raw input: ([\d.]+)%\)/.exec(r.out);
  t.truthy(error, r.out);
  t.true(Number(error![1]) >= 0 && Number(error![1]) <= 100);
  t.deepEqual(readNpy(path.join(dir, 'prediction.npy')).shape, [8, 96, 96]);
  const png = PNG.sync.read(fs.readFileSync(path.join(dir, 'slice.png')));
  t.true(png.width >= 3 * 288 && png.height >= 288, `three 96-pixel panels upscaled 3x side by side: ${png.width}x${png.height}`);
  const count = (rgb: readonly number[]) => {
    let n = 0;
    for (let i = 0; i < png.data.length; i += 4) if (png.data[i] === rgb[0] && png.data[i + 1] === rgb[1] && png.data[i + 2] === rgb[2]) ++n;
    return n;
  };
  t.true(count(labelColour(1)) > 1000 && count(labelColour(0)) > 1000, 'the truth panel and the legend in the palette: membrane, cell');
});

test('segvol evaluate prints JSON that agrees with the metrics API, and names an unknown metric', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-eval-'));
  const truth = Float32Array.from({ length: 4 * 10 * 10 }, (_, i) => (i % 10 < 5 ? 1 : 0));
  const pred = Float32Array.from({ length: 4 * 10 * 10 }, (_, i) => (i % 10 < 6 ? 1 : 0));
  writeNpy(path.join(dir, 't.npy'), { shape: [4, 10, 10], data: truth });
  writeNpy(path.join(dir, 'p.npy'), { shape: [4, 10, 10], data: pred });
  const r = segvol(['evaluate', '--pred', path.join(dir, 'p.npy'), '--truth', path.join(dir, 't.npy'), '--metrics', 'overlap,hausdorff', '--json']);
  t.is(r.status, 0, r.err);
  const out = JSON.parse(r.out) as { overlap: { perClass: Array<{ dice: number }> }; hausdorff95: number[] };
  t.true(Math.abs(out.overlap.perClass[1]!.dice - (2 * 200) / (200 + 240)) < 1e-12);
  t.is(out.hausdorff95[0], 1);
  const bad = segvol(['evaluate', '--pred', path.join(dir, 'p.npy'), '--truth', path.join(dir, 't.npy'), '--metrics', 'dice']);
  t.is(bad.status, 1);
  t.regex(bad.err, /unknown metric 'dice'; known: overlap, hausdorff, rand, pixel, warping/);
});

test('segvol evaluate --metrics rand: the SNEMI3D adapted Rand error by default, scikit-image\'s with --adapted-rand skimage, each named', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-eval-rand-'));
  // Two truth segments with a 0 boundary row; the prediction leaves a stripe unlabelled (0).
  const truth = Float32Array.from({ length: 2 * 8 * 8 }, (_, i) => (Math.floor(i / 8) % 8 === 4 ? 0 : Math.floor(i / 8) % 8 < 4 ? 1 : 2));
  const pred = Float32Array.from({ length: 2 * 8 * 8 }, (_, i) => (i % 8 === 7 ? 0 : Math.floor(i / 8) % 8 < 6 ? 5 : 9));
  writeNpy(path.join(dir, 't.npy'), { shape: [2, 8, 8], data: truth });
  writeNpy(path.join(dir, 'p.npy'), { shape: [2, 8, 8], data: pred });
  const args = ['evaluate', '--pred', path.join(dir, 'p.npy'), '--truth', path.join(dir, 't.npy'), '--metrics', 'rand'];
  const json = segvol([...args, '--json']);
  t.is(json.status, 0, json.err);
  type Rand = { adaptedRandForm: string; adaptedRandError: number; precision: number; skimage: { adaptedRandError: number } };
  const snemi = (JSON.parse(json.out) as { rand: Rand }).rand;
  const api = metrics.rand(pred, truth);
  t.is(snemi.adaptedRandForm, 'snemi3d');
  t.is(snemi.adaptedRandError, api.adaptedRandError);
  t.is(snemi.skimage.adaptedRandError, api.skimage.adaptedRandError);
  t.not(api.adaptedRandError, api.skimage.adaptedRandError, 'the case tells the forms apart');
  const skimage = segvol([...args, '--adapted-rand', 'skimage', '--json']);
  t.is(skimage.status, 0, skimage.err);
  const chosen = (JSON.parse(skimage.out) as { rand: Rand }).rand;
  t.is(chosen.adaptedRandForm, 'skimage');
  t.is(chosen.adaptedRandError, api.skimage.adaptedRandError);
  t.is(chosen.precision, api.skimage.precision);
  const text = segvol(args);
  t.is(text.status, 0, text.err);
  t.true(text.out.includes(`adapted Rand error (SNEMI3D) ${api.adaptedRandError.toFixed(4)}: precision ${api.precision.toFixed(4)} (over the prediction)`), text.out);
  const bad = segvol([...args, '--adapted-rand', 'cremi']);
  t.is(bad.status, 1);
  t.regex(bad.err, /--adapted-rand.*expected snemi3d, singletons, skimage, received cremi/);
  writeNpy(path.join(dir, 'b.npy'), { shape: [2, 8, 8], data: pred.map((v) => v / 10 + 0.05) });
  const boundary = segvol(['evaluate', '--pred', path.join(dir, 'b.npy'), '--truth', path.join(dir, 't.npy'), '--adapted-rand', 'skimage']);
  t.is(boundary.status, 1);
  t.regex(boundary.err, /--adapted-rand scores label volumes; the prediction is a boundary map/);
  fs.rmSync(dir, { recursive: true });
});

test('segvol evaluate --brats: the regions\' Dice, PPV and sensitivity and the mean IU, as metrics.brats; a probability map is refused', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-eval-'));
  const truth = Float32Array.from([0, 0, 1, 2, 2, 3, 4, 4]);
  const pred = Float32Array.from([0, 2, 1, 2, 0, 4, 4, 0]);
  writeVolume(path.join(dir, 't.nii.gz'), { data: truth, shape: [1, 2, 4], dtype: 'float32' }, { dtype: 'uint8' });
  writeVolume(path.join(dir, 'p.nii.gz'), { data: pred, shape: [1, 2, 4], dtype: 'float32' }, { dtype: 'uint8' });
  const json = segvol(['evaluate', '--pred', path.join(dir, 'p.nii.gz'), '--truth', path.join(dir, 't.nii.gz'), '--brats', '--json']);
  t.is(json.status, 0, json.err);
  const scores = (JSON.parse(json.out) as { brats: { complete: { dice: number }; enhancing: { ppv: number }; meanIU: number } }).brats;
  t.true(Math.abs(scores.complete.dice - 8 / 11) < 1e-12);
  t.is(scores.enhancing.ppv, 0.5);
  const table = segvol(['evaluate', '--pred', path.join(dir, 'p.nii.gz'), '--truth', path.join(dir, 't.nii.gz'), '--brats']);
  t.is(table.status, 0, table.err);
  t.regex(table.out, /complete\s+0\.7273\s+0\.8000\s+0\.6667/);
  t.regex(table.out, /mean IU 0\.3833/);
  writeNpy(path.join(dir, 'probs.npy'), { shape: [1, 2, 4], data: Float32Array.from(pred, (v) => v / 5 + 0.01) });
  const bad = segvol(['evaluate', '--pred', path.join(dir, 'probs.npy'), '--truth', path.join(dir, 't.nii.gz'), '--brats']);
  t.is(bad.status, 1);
  t.regex(bad.err, /--brats compares label volumes/);
});

test('segvol train on BRATS folders (settings paper: the two phases), predict on a case folder, evaluate --brats', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-train-'));
  const writeCase = (group: string, id: string, seed: number) => {
    const p = syntheticBrainMri({ depth: 8, height: 48, width: 48, seed });
    const n = 8 * 48 * 48;
    const folder = path.join(dir, group, id);
    fs.mkdirSync(folder, { recursive: true });
    ['flair', 't1', 't1ce', 't2'].forEach((m, c) => writeVolume(path.join(folder, `${id}_${m}.nii.gz`), { data: p.image.subarray(c * n, (c + 1) * n), shape: p.dims, dtype: 'float32' }));
    writeVolume(path.join(folder, `${id}_seg.nii.gz`), { data: p.labels, shape: p.dims, dtype: 'float32' }, { dtype: 'uint8' });
  };
  writeCase('train', 'BraTS_001', 1);
  writeCase('train', 'BraTS_002', 2);
  writeCase('val', 'BraTS_003', 3);
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'crossModalityConvLstm', channels: 4, seed: 1 }, settings: 'paper', size: [3, 48, 48], steps: 2, batchSize: 2,
    data: { brats: 'train' }, validation: { brats: 'val', windows: 2, every: 2 }, checkpoint: { path: 'model.safetensors' },
  }));
  const r = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(r.status, 0, r.err);
  t.regex(r.err + r.out, /loading 2 BRATS cases \(training\)/);
  t.regex(r.out, /finished at step 4/, 'two phases of 2 steps');
  const model = loadModel(path.join(dir, 'model.safetensors'));
  t.is(model.info.normalize, 'nonzero');
  t.deepEqual(model.info.channels, { input: ['flair', 't1', 't1ce', 't2'] });
  t.deepEqual(model.info.window, [3, 48, 48]);
  model.dispose();
  const out = path.join(dir, 'pred.nii.gz');
  const p = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'val', 'BraTS_003'), '--out', out, '--window', '3,48,48']);
  t.is(p.status, 0, p.err);
  const e = segvol(['evaluate', '--pred', out, '--truth', path.join(dir, 'val', 'BraTS_003', 'BraTS_003_seg.nii.gz'), '--brats']);
  t.is(e.status, 0, e.err);
  t.regex(e.out, /complete\s+\d\.\d{4}\s+\d\.\d{4}/);
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ model: { preset: 'crossModalityConvLstm' }, data: { brats: 'train', labels: 'x.nii' }, steps: 1 }));
  const bad = segvol(['train', '--config', path.join(dir, 'bad.json')]);
  t.is(bad.status, 1);
  t.regex(bad.err, /data\.brats is a folder of BRATS cases \(a path\), given instead of data\.volume, labels and mask/);
});

test('segvol predict with a consistent ConvLSTM model: objects of a reference frame (or a watershed) propagated through z; evaluate scores them', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-consistent-'));
  const em = syntheticEm({ depth: 6, height: 40, width: 48, cells: 8, seed: 3 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'truth.npy'), { shape: em.shape, data: Float32Array.from(em.segments) });
  presets.consistentConvLstm({ hidden: [4, 4, 4, 4, 4], seed: 1 }).save(path.join(dir, 'model.safetensors'));
  const r = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'labels.npy'),
    '--reference', path.join(dir, 'truth.npy'), '--window', '3,40,48']);
  t.is(r.status, 0, r.err);
  t.regex(r.out, /the \d+ objects of the first frame through 6 frames \(from the reference labels\)/);
  const labels = readNpy(path.join(dir, 'labels.npy'));
  t.deepEqual(labels.shape, [6, 40, 48], 'frames padded to multiples of 32 inside, cropped back');
  t.deepEqual([...labels.data.subarray(0, 40 * 48)], [...em.segments.subarray(0, 40 * 48)]);
  const e = segvol(['evaluate', '--pred', path.join(dir, 'labels.npy'), '--truth', path.join(dir, 'truth.npy'), '--metrics', 'rand', '--json']);
  t.is(e.status, 0, e.err);
  const scored = (JSON.parse(e.out) as { rand: { adaptedRandForm: string; adaptedRandError: number } }).rand;
  t.is(scored.adaptedRandForm, 'snemi3d', 'the measure the consistent ConvLSTM paper reports');
  t.true(scored.adaptedRandError >= 0 && scored.adaptedRandError <= 1);
  const none = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'ws.npy'), '--window', '3']);
  t.is(none.status, 1);
  t.regex(none.err, /propagates the objects of a labelled first frame: give --reference <labels> .* or --watershed-start/);
  const w = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'ws.npy'), '--window', '3',
    '--watershed-start']);
  t.is(w.status, 0, w.err);
  t.regex(w.out, /from a watershed of the raw first frame/);
  // Out of core, into Zarr: the same labels as in memory.
  const z = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'labels.zarr'),
    '--reference', path.join(dir, 'truth.npy'), '--window', '3,40,48']);
  t.is(z.status, 0, z.err);
  t.regex(z.out, /1x1 tiles of 64x64; 3 patches computed, 0 already done/);
  const again = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'labels.zarr'),
    '--reference', path.join(dir, 'truth.npy'), '--window', '3,40,48', '--resume']);
  t.is(again.status, 0, again.err);
  t.regex(again.out, /0 patches computed, 3 already done/);
  const c = segvol(['evaluate', '--pred', path.join(dir, 'labels.zarr'), '--truth', path.join(dir, 'labels.npy'), '--metrics', 'rand', '--json']);
  t.is(c.status, 0, c.err);
  t.is((JSON.parse(c.out) as { rand: { adaptedRandError: number } }).rand.adaptedRandError, 0, 'Zarr and in-memory propagation agree');
  writeNpy(path.join(dir, 'small.npy'), { shape: [1, 10, 10], data: new Float32Array(100) });
  const bad = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'x.npy'),
    '--reference', path.join(dir, 'small.npy'), '--window', '3']);
  t.is(bad.status, 1);
  t.regex(bad.err, /the reference .*small\.npy has frames of \(10, 10\); they must be 40x48 like the volume's/);
  t.false(fs.existsSync(path.join(dir, 'x.npy')), 'nothing written');
  fs.rmSync(dir, { recursive: true });
});

test('segvol train with a consistent ConvLSTM config: epochs over sub-volumes, validation ARI, the best model and a checkpoint each epoch, --resume', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-consistent-train-'));
  const em = syntheticEm({ depth: 6, height: 64, width: 64, cells: 8, seed: 4 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'neurons.npy'), { shape: em.shape, data: Float32Array.from(em.segments) });
  const config = {
    model: { preset: 'consistentConvLstm', hidden: [4, 4, 4, 4, 4], seed: 1 }, settings: 'paper', size: [3, 64, 64], epochs: 2, maxObjects: 3,
    optimizer: { kind: 'adam', lr: 1e-3 }, data: { volume: 'volume.npy', labels: 'neurons.npy' }, checkpoint: { path: 'consistent.safetensors' },
  };
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(config));
  const r = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(r.status, 0, r.err);
  t.regex(r.out, /epoch 1\/2: loss \d\.\d+, validation adapted Rand error \d\.\d+ \(best\)/);
  t.regex(r.out, /finished after 2 epoch\(s\) on 1 training sub-volumes of 3x64x64 \(1 for validation\); best validation adapted Rand error/);
  for (const file of ['consistent.safetensors', 'consistent.safetensors.optimizer', 'consistent.best.safetensors', 'consistent.log.jsonl']) t.true(fs.existsSync(path.join(dir, file)), file);
  const model = loadModel(path.join(dir, 'consistent.safetensors'));
  t.deepEqual(model.info.window, [3, 64, 64]);
  t.is(model.info.normalize, 'slice');
  model.dispose();
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({ ...config, epochs: 3 }));
  const resumed = segvol(['train', '--config', path.join(dir, 'train.json'), '--resume', path.join(dir, 'consistent.safetensors')]);
  t.is(resumed.status, 0, resumed.err);
  t.regex(resumed.out, /resumed after epoch 2 of 3/);
  t.regex(resumed.out, /epoch 3\/3: loss/);
  t.false(/epoch 1\/3/.test(resumed.out), 'finished epochs are not trained again');
  const lines = fs.readFileSync(path.join(dir, 'consistent.log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; validation?: number });
  t.is(lines.filter((l) => 'validation' in l).length, 3, 'one validation line per epoch');
  fs.rmSync(dir, { recursive: true });
});

test('segvol evaluate --boundary: pixel error, the best 2D Rand F-score with connected components and with the watershed, and --plot', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-eval-'));
  // Three slices of two cells split by a membrane; the prediction is a noisy boundary map.
  const [D, H, W] = [3, 16, 20];
  const truth = new Float32Array(D * H * W), pred = new Float32Array(D * H * W);
  for (let i = 0; i < truth.length; ++i) {
    const x = i % W;
    truth[i] = x === 9 || x === 10 ? 1 : 0;
    pred[i] = truth[i] ? 0.8 + 0.1 * Math.sin(i) : 0.1 + 0.05 * Math.cos(i);
  }
  writeNpy(path.join(dir, 'b.npy'), { shape: [D, H, W], data: pred });
  writeNpy(path.join(dir, 't.npy'), { shape: [D, H, W], data: truth });
  const plot = path.join(dir, 'curve.png');
  const r = segvol(['evaluate', '--pred', path.join(dir, 'b.npy'), '--truth', path.join(dir, 't.npy'), '--boundary', '--plot', plot, '--json']);
  t.is(r.status, 0, r.err);
  const out = JSON.parse(r.out) as Record<string, { scores: { fScore: number }; curve: Array<{ vSplit: number; vMerge: number }> }>;
  t.is(out.randThreshold!.scores.fScore, 1);
  t.is(out.randWatershed!.scores.fScore, 1);
  t.is(out.randWatershed!.curve.length, 19);
  const png = PNG.sync.read(fs.readFileSync(plot));
  t.true(png.width >= 800 && png.height >= 700, `${png.width}x${png.height}`);
  const text = segvol(['evaluate', '--pred', path.join(dir, 'b.npy'), '--truth', path.join(dir, 't.npy'), '--boundary']);
  t.regex(text.out, /best 2D Rand F-score with connected components: 1\.0000 .* at threshold 0\.\d\d, 6 segments/);
  t.regex(text.out, /best 2D Rand F-score with watershed: 1\.0000/);
  t.regex(text.out, /pixel error: 0\.0000/);
  const labels = segvol(['evaluate', '--pred', path.join(dir, 't.npy'), '--truth', path.join(dir, 't.npy'), '--plot', plot]);
  t.is(labels.status, 1);
  t.regex(labels.err, /--plot draws the Rand curves of a boundary map/);
});

test('segvol convert and inspect: NIfTI to npy keeps values; inspect prints shape, type, spacing', (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-convert-'));
  const source = path.join(__dirname, 'fixtures', 'io', 'scaled_int16.nii.gz');
  const r = segvol(['convert', source, path.join(out, 'v.npy')]);
  t.is(r.status, 0, r.err);
  const converted = readNpy(path.join(out, 'v.npy'));
  const expected = readNpy(path.join(__dirname, 'fixtures', 'io', 'scaled_int16.expected.npy'));
  t.deepEqual(converted.shape, [5, 6, 7]);
  t.deepEqual(converted.data, expected.data);
  const info = segvol(['inspect', source]);
  t.is(info.status, 0, info.err);
  t.regex(info.out, /shape\s+5 x 6 x 7\n\s+dtype\s+int16\n\s+spacing\s+3 x 0\.9\d* x 0\.8\d*/);
  const bad = segvol(['inspect', path.join(out, 'nothing.nii')]);
  t.is(bad.status, 1);
  t.regex(bad.err, /cannot read .*nothing\.nii/);
});

function synthFolder() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-cli-'));
  // Raw intensities far from zero mean, as a real stack: per-slice normalisation matters.
  const em = syntheticEm({ depth: 6, height: 20, width: 20, seed: 5 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image.map((v) => 120 + 30 * v) });
  writeNpy(path.join(dir, 'labels.npy'), { shape: em.shape, data: em.labels });
  return dir;
}

test('the CLI model file records its pre-processing: predict with no flags equals predict with the right --normalize', (t) => {
  const dir = synthFolder();
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy', classNames: ['cell', 'membrane'] },
    steps: 3, size: [4, 10, 10], optimizer: { kind: 'adam', lr: 0.01 }, checkpoint: { path: 'model.safetensors' },
  }));
  const trained = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(trained.status, 0, trained.err);
  const predict = (extra: string[], out: string) => segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'volume.npy'),
    '--out', path.join(dir, out), '--probabilities', ...extra]);
  const plain = predict([], 'plain.npy');
  t.is(plain.status, 0, plain.err);
  t.notRegex(plain.err, /normalising|does not record/, 'no warning: the model knows its pre-processing');
  const right = predict(['--normalize', 'slice'], 'right.npy');
  t.is(right.status, 0, right.err);
  t.deepEqual(readNpy(path.join(dir, 'plain.npy')).data, readNpy(path.join(dir, 'right.npy')).data);
  const wrong = predict(['--normalize', 'none'], 'wrong.npy');
  t.regex(wrong.err, /normalising with none \(--normalize\) instead of the model's recorded slice/);
  t.notDeepEqual(readNpy(path.join(dir, 'wrong.npy')).data, readNpy(path.join(dir, 'plain.npy')).data);
  const log = fs.readFileSync(path.join(dir, 'model.log.jsonl'), 'utf8').trim().split('\n');
  t.is(log.length, 3, 'a JSON line per step beside the checkpoint');
  const plot = segvol(['plot', path.join(dir, 'model.log.jsonl'), '--out', path.join(dir, 'curve.png')]);
  t.is(plot.status, 0, plot.err);
  const png = fs.readFileSync(path.join(dir, 'curve.png'));
  t.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  t.true(png.readUInt32BE(16) >= 900 && png.readUInt32BE(20) >= 600, 'two panels, loss and learning rate, at a readable size');
});

test('a model trained with the API predicts from the CLI, and a CLI model predicts the same through the API', async (t) => {
  const dir = synthFolder();
  const { presets, Trainer, VolumeSampler, loadModel, normalizeSlices, Tensor, predictVolume } = await import('../lib');
  const raw = readNpy(path.join(dir, 'volume.npy'));
  const labels = readNpy(path.join(dir, 'labels.npy'));
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 4 });
  model.info = { normalize: 'slice' };
  await new Trainer(model, { seed: 2 }).fit({
    data: new VolumeSampler({ volume: normalizeSlices(raw.data, raw.shape), shape: [1, 6, 20, 20], labels: labels.data }), size: [4, 10, 10], steps: 2,
    checkpoint: { path: path.join(dir, 'api.safetensors') },
  });
  const cli = segvol(['predict', '--model', path.join(dir, 'api.safetensors'), '--in', path.join(dir, 'volume.npy'), '--out', path.join(dir, 'cli.npy'), '--probabilities']);
  t.is(cli.status, 0, cli.err);
  const api = await predictVolume(loadModel(path.join(dir, 'api.safetensors')), Tensor.fromArray(raw.data, [1, 1, 6, 20, 20]), { window: [6, 20, 20] });
  t.deepEqual(readNpy(path.join(dir, 'cli.npy')).data, api.toArray(), 'the CLI and the API give the same probabilities from one file');
});

test('segvol train prints plain progress lines when not on a terminal, --resume says where it resumed', (t) => {
  const dir = synthFolder();
  const config = {
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' }, steps: 3, size: [3, 8, 8], checkpoint: { path: 'm.safetensors' },
  };
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(config));
  const r = spawnSync(process.execPath, ['--require=ts-node/register', cli, 'train', '--config', path.join(dir, 'train.json')],
    { cwd: root, encoding: 'utf8', timeout: 240_000, env: { ...process.env, SEGVOL_PROGRESS_SECONDS: '0' } });
  t.is(r.status, 0, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('training'));
  t.is(lines.length, 3, r.stderr);
  t.regex(lines[2]!, /^training 100%\s+step 3\/3\s+loss \d\.\d{4}\s+lr [\d.e+-]+\s+[\d,]+ voxels\/s\s+eta 0s$/);
  fs.writeFileSync(path.join(dir, 'more.json'), JSON.stringify({ ...config, steps: 5 }));
  const resumed = segvol(['train', '--config', path.join(dir, 'more.json'), '--resume', path.join(dir, 'm.safetensors')]);
  t.is(resumed.status, 0, resumed.err);
  t.regex(resumed.out, /^resumed from step 3 \(.*m\.safetensors\)\n/);
  t.regex(resumed.out, /finished at step 5/);
});

test('segvol convert warns with counts when it rounds or clips; evaluate reads NIfTI; inspect reads raw data', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-convert-'));
  const source = path.join(__dirname, 'fixtures', 'io', 'scaled_int16.nii.gz');
  const scaled = segvol(['convert', source, path.join(dir, 'v16.nii'), '--dtype', 'uint8']);
  t.is(scaled.status, 0, scaled.err);
  t.regex(scaled.err, /warning: storing as uint8 with scale [\d.e+-]+ and offset [-\d.e+]+ rounded \d+ voxels \([\d.]+%\) and clipped 0 voxels \(0\.0%\); values changed by up to [\d.e+-]+/);
  const refused = segvol(['convert', source, path.join(dir, 'v.tif'), '--dtype', 'uint8']);
  t.is(refused.status, 1);
  t.regex(refused.err, /uint8 cannot hold these values: .*allow the loss \(--allow-lossy\)/);
  const allowed = segvol(['convert', source, path.join(dir, 'v.tif'), '--dtype', 'uint8', '--allow-lossy']);
  t.is(allowed.status, 0, allowed.err);
  t.regex(allowed.err, /clipped \d+ voxels/);

  writeVolume(path.join(dir, 'truth.nii.gz'), { data: Float32Array.from({ length: 2 * 36 }, (_, i) => i % 3), shape: [2, 6, 6], dtype: 'float32' }, { dtype: 'uint8' });
  writeVolume(path.join(dir, 'pred.tif'), { data: Float32Array.from({ length: 2 * 36 }, (_, i) => i % 3), shape: [2, 6, 6], dtype: 'float32' }, { dtype: 'uint8' });
  const evaluated = segvol(['evaluate', '--pred', path.join(dir, 'pred.tif'), '--truth', path.join(dir, 'truth.nii.gz'), '--metrics', 'overlap', '--json']);
  t.is(evaluated.status, 0, evaluated.err);
  t.is((JSON.parse(evaluated.out) as { overlap: { meanIU: number } }).overlap.meanIU, 1);

  fs.writeFileSync(path.join(dir, 'raw.bin'), Buffer.from(Uint16Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 100).buffer));
  const unknown = segvol(['inspect', path.join(dir, 'raw.bin')]);
  t.is(unknown.status, 1);
  t.regex(unknown.err, /raw data with a shape and dtype/);
  const raw = segvol(['inspect', path.join(dir, 'raw.bin'), '--raw', '2,3,4:uint16']);
  t.is(raw.status, 0, raw.err);
  t.regex(raw.out, /shape\s+2 x 3 x 4\n\s+dtype\s+uint16/);
  t.regex(raw.out, /range\s+0 \.\. 2300/);
});

test('Ctrl-C during segvol train stops after the current step and writes a checkpoint of that step', async (t) => {
  const dir = synthFolder();
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' }, steps: 100000, size: [3, 8, 8], checkpoint: { path: 'm.safetensors' },
  }));
  const child = spawn(process.execPath, ['--require=ts-node/register', cli, 'train', '--config', path.join(dir, 'train.json')],
    { cwd: root, env: { ...process.env, SEGVOL_PROGRESS_SECONDS: '0' } });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  const status = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (/step 3\//.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    child.on('close', (code) => resolve(code));
  });
  t.is(status, 0, stderr);
  t.regex(stderr, /stopping after the current step and writing the checkpoint/);
  const stopped = /stopped at step (\d+)/.exec(stdout);
  t.truthy(stopped, stdout);
  const meta = JSON.parse((await import('../lib')).readSafetensors(path.join(dir, 'm.safetensors')).metadata.segvol!) as { position: { step: number } };
  t.is(meta.position.step, Number(stopped![1]), 'the checkpoint holds the last completed step');
});

test('segvol train runs recursive training from one config: VD2D, its boundary maps, then VD2D3D on image and map', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-recursive-'));
  const em = syntheticEm({ depth: 6, height: 120, width: 120, seed: 3 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'labels.npy'), { shape: em.shape, data: em.labels });
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'vd2d3d', recursive: true, seed: 2 },
    data: { volume: 'volume.npy', labels: 'labels.npy' },
    settings: 'paper', outputSize: [1, 6, 6], steps: 2, checkpoint: { path: 'vd2d3d.safetensors' },
    recursive: {
      first: { model: { preset: 'vd2d', seed: 1 }, settings: 'paper', outputSize: [1, 6, 6], steps: 2, checkpoint: { path: 'vd2d.safetensors' } },
      window: [6, 60, 60],
    },
  }));
  const r = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(r.status, 0, r.err);
  t.regex(r.out, /recursive training: stage 1 of 2, vd2d\n/);
  t.regex(r.out, /stage 2 of 2, vd2d3d on the image and stage 1's boundary map/);
  t.regex(r.out, /started from the first network's conv1a, conv1b, conv1c, conv2a, conv2b, conv3a, conv3b \(14 tensors\); fresh: conv1a_r, conv1b_r, conv1c_r, conv4a/);
  t.true(fs.existsSync(path.join(dir, 'vd2d.safetensors')) && fs.existsSync(path.join(dir, 'vd2d3d.safetensors')));
  const model = loadModel(path.join(dir, 'vd2d3d.safetensors'));
  t.deepEqual(Object.keys(model.inputs), ['image', 'boundary']);
  t.deepEqual(model.info.normalize, { image: 'slice', boundary: 'none' });
  const bad = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')) as { model: { recursive?: boolean } };
  delete bad.model.recursive;
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify(bad));
  const refused = segvol(['train', '--config', path.join(dir, 'bad.json')]);
  t.is(refused.status, 1);
  t.regex(refused.err, /recursive training feeds a boundary map to a model with a second input/);
});

test('every command\'s help states each default once (commander prints the default value; no description repeats it)', (t) => {
  const program = createProgram();
  const twice: string[] = [];
  for (const command of program.commands) {
    for (const option of command.options) {
      if (option.defaultValue !== undefined && /\(default\b/i.test(option.description)) twice.push(`${command.name()} ${option.flags}: ${option.description}`);
    }
    for (const line of command.helpInformation().split('\n')) if ((line.match(/\(default/g) ?? []).length > 1) twice.push(`${command.name()}: ${line.trim()}`);
  }
  t.deepEqual(twice, []);
  const worker = program.commands.find((c) => c.name() === 'worker')!.helpInformation();
  t.regex(worker, /--concurrency <n>\s+blocks at once \(default: 1\)\n/);
  t.regex(worker, /--connect-timeout <seconds>[^]*\(default: 30\)/);
});
