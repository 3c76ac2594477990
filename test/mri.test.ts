// Tseng et al.'s cross-modality ConvLSTM encoder-decoder (seed 001): the preset's
// shapes and parameter count, the CMC layer and the whole network against the PyTorch
// reference (test/fixtures/make_mri_fixtures.py), and its options' errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import {
  bratsSampler, createLayer, crossModalityPhases, findBratsCases, GradientTape, layers, loadBratsCase, loadLayerState, metrics, normalizeNonzero, ops, preprocessVolume,
  presets, readSafetensors, readVolume, syntheticBrainMri, Tensor, writeVolume, type NamedArray,
} from '../lib';
import { Random } from '../lib/core/random';
import { runBratsDemo } from '../lib/models/mri/demo';
import { labelColour } from '../lib/io/panels';
import { PNG } from 'pngjs';
import { loadModel } from '../lib/models/load';
import { assertClose, modelGradients } from './helpers';
import {
  bratsColumns, caseRow, evaluateBratsFolder, paperLearningRates, predictSequences, readCaseSplit, sequenceStarts, splitBratsFiles, splitCases, splitPart,
  summarizeCases, summaryCsv, writeCaseSplit, type BratsColumn, type EmptyTruth,
} from '../lib/models/mri';
import { createProgram } from '../lib/cli/main';

const dir = path.join(__dirname, 'fixtures', 'mri');

function fixture(name: string): { tensors: Map<string, NamedArray>; meta: Record<string, unknown> } {
  const file = readSafetensors(path.join(dir, `${name}.safetensors`));
  return { tensors: file.tensors, meta: JSON.parse(file.metadata.case!) as Record<string, unknown> };
}

function tensorOf(a: NamedArray): Tensor {
  return Tensor.fromArray(a.data, a.shape);
}

/**
 * The paper's network at its defaults, counted by hand from section 3 (4 modalities,
 * 64 channels at each of 4 levels, 3x3 kernels, 5 classes; convolutions before a batch
 * norm have no bias):
 *   encoders  4 x [ (64*1*9 + 2*64) + 3 * (64*64*9 + 2*64) ]   = 4 x 111,680 = 446,720
 *   CMC       4 levels x (64*64*4 + 64)                         = 65,792
 *   ConvLSTM  4*64*64*9 (input) + 4*64*64*9 (hidden) + 2*4*64   = 295,424
 *   decoder   4 x (64*64*2*2 up + 64*64*9 conv + 2*64 bn)       = 213,504
 *   classifier 5*64 + 5                                          = 325
 *   total                                                        = 1,021,765
 */
test('the preset at the paper\'s settings: layer shapes and a parameter count made by hand', (t) => {
  const model = presets.crossModalityConvLstm();
  const shapes = new Map([...model.parameters()].map(([k, v]) => [k, v.shape.join('x')]));
  const count = [...model.parameters().values()].reduce((n, p) => n + p.size, 0);
  const byHand = 4 * (64 * 1 * 9 + 2 * 64 + 3 * (64 * 64 * 9 + 2 * 64)) + 4 * (64 * 64 * 4 + 64) + (2 * 4 * 64 * 64 * 9 + 2 * 4 * 64) +
    4 * (64 * 64 * 4 + 64 * 64 * 9 + 2 * 64) + (5 * 64 + 5);
  t.is(byHand, 1_021_765);
  t.is(count, byHand);
  t.is(shapes.get('encoders.3.0.conv.weight'), '64x1x1x3x3');
  t.is(shapes.get('encoders.0.3.conv.weight'), '64x64x1x3x3');
  t.is(shapes.get('cmc.2.weight'), '64x64x4x1x1');
  t.is(shapes.get('convlstm.weight_ih_l0'), '256x64x3x3');
  t.is(shapes.get('decoder.0.up.weight'), '64x64x1x2x2');
  t.is(shapes.get('classifier.weight'), '5x64x1x1x1');
  t.false(shapes.has('encoders.4.0.conv.weight'));
  t.deepEqual(model.inputs, { input: 4 });
  t.deepEqual(model.outputShape([3, 4, 3, 240, 240]), [3, 5, 3, 240, 240]);
  // The buffers: running statistics of 16 encoder and 4 decoder batch norms.
  t.is([...model.state().keys()].filter((k) => k.endsWith('running_mean')).length, 20);
  // The ConvLSTM starts orthogonal (Saxe et al.), with zero biases.
  const w = model.parameters().get('convlstm.weight_hh_l0')!.toArray();
  const rows = 256, cols = 64 * 9;
  let offDiagonal = 0;
  for (const [a, b] of [[0, 1], [5, 200], [17, 255]] as const) {
    let dot = 0;
    for (let k = 0; k < cols; ++k) dot += w[a * cols + k]! * w[b * cols + k]!;
    offDiagonal = Math.max(offDiagonal, Math.abs(dot));
  }
  t.true(offDiagonal < 1e-5, `rows of an orthogonal weight are orthogonal (|dot| ${offDiagonal})`);
  let norm = 0;
  for (let k = 0; k < cols; ++k) norm += w[3 * cols + k]! ** 2;
  t.true(Math.abs(norm - 1) < 1e-4 && rows < cols, `unit rows (${norm})`);
  t.true(model.parameters().get('convlstm.bias_ih_l0')!.toArray().every((v) => v === 0));
  model.dispose();
});

test('the variants of Table 1 and 3 differ where the paper says', (t) => {
  const count = (o: Parameters<typeof presets.crossModalityConvLstm>[0]) => {
    const m = presets.crossModalityConvLstm(o);
    const names = [...m.parameters().keys()];
    const n = [...m.parameters().values()].reduce((s, p) => s + p.size, 0);
    m.dispose();
    return { names, n };
  };
  const full = count({});
  const noLstm = count({ convLstm: false });
  const stacked = count({ multiModal: false, convLstm: false, fusion: 'none' });
  t.is(full.n - noLstm.n, 295_424, 'the ConvLSTM alone');
  t.false(noLstm.names.some((k) => k.startsWith('convlstm')));
  t.false(stacked.names.some((k) => k.startsWith('cmc.') || k.startsWith('encoders.1.')));
  t.is(stacked.n, (64 * 4 * 9 + 2 * 64 + 3 * (64 * 64 * 9 + 2 * 64)) + 4 * (64 * 64 * 4 + 64 * 64 * 9 + 2 * 64) + 325);
  // MRF adds no weights (multiplication, not concatenation).
  t.is(count({ fusion: 'none' }).n, full.n);
});

test('the cross-modality convolution equals Conv3d with a (M, 1, 1) kernel on stacked modalities', async (t) => {
  const { tensors, meta } = fixture('cmc');
  const x = tensorOf(tensors.get('x')!);
  const layer = createLayer(layers.crossModality({ modalities: meta.modalities as number, out: meta.out as number }), { inChannels: x.shape[1] });
  t.deepEqual(layer.parameters.get('weight')!.shape, tensors.get('weight')!.shape);
  loadLayerState(layer, new Map([['weight', tensors.get('weight')!], ['bias', tensors.get('bias')!]]));
  x.requiresGrad = true;
  const tape = new GradientTape();
  const dy = tensorOf(tensors.get('dy')!);
  let y!: Tensor;
  await tape.record(async () => {
    y = await layer.forward(x, { training: true, random: Math.random });
  });
  assertClose(t, y, tensors.get('out.y')!.data, { abs: 1e-5, rel: 1e-5 }, 'y');
  const grads = await tape.backward(y, dy);
  assertClose(t, grads.get(x)!, tensors.get('grad.x')!.data, { abs: 1e-5, rel: 1e-5 }, 'dx');
  assertClose(t, grads.get(layer.parameters.get('weight')!)!, tensors.get('grad.weight')!.data, { abs: 1e-4, rel: 1e-5 }, 'dweight');
  assertClose(t, grads.get(layer.parameters.get('bias')!)!, tensors.get('grad.bias')!.data, { abs: 1e-4, rel: 1e-5 }, 'dbias');
  t.throws(() => createLayer(layers.crossModality({ modalities: 4 }), { inChannels: 10 }), { message: /10 channels, not a multiple of 4 modalities/ });
});

for (const name of ['net_mme_cmc_mrf_convlstm', 'net_stacked_no_lstm_relu']) {
  test(`the whole network in training mode matches the PyTorch reference: ${name}`, async (t) => {
    const { tensors, meta } = fixture(name);
    const model = presets.crossModalityConvLstm(meta.options as Parameters<typeof presets.crossModalityConvLstm>[0]);
    const state = new Map([...tensors].filter(([k]) => k.startsWith('state.')).map(([k, v]) => [k.slice('state.'.length), v]));
    model.loadState(state);
    const input = tensorOf(tensors.get('input')!);
    const labels = tensorOf(tensors.get('labels')!);
    const classWeights = tensorOf(tensors.get('classWeights')!);
    const tape = new GradientTape();
    let probs!: Tensor;
    const loss = await tape.record(async () => {
      probs = await model.forward(input, { training: true });
      return ops.loss(probs, labels, { kind: 'crossEntropy', classWeights });
    });
    assertClose(t, probs, tensors.get('out.probs')!.data, { abs: 2e-5, rel: 1e-4 }, 'probabilities');
    assertClose(t, loss, tensors.get('out.loss')!.data, { abs: 1e-5, rel: 1e-5 }, 'loss');
    const grads = model.gradientsByName(await tape.backward(loss));
    let checked = 0;
    for (const [k, g] of grads) {
      const expected = tensors.get(`grad.${k}`);
      if (!expected) {
        t.fail(`no golden gradient for ${k}`);
        continue;
      }
      assertClose(t, g, expected.data, { abs: 2e-5, rel: 2e-3 }, `d ${k}`);
      ++checked;
    }
    t.is(checked, [...tensors.keys()].filter((k) => k.startsWith('grad.')).length);
    for (const [k, v] of tensors) {
      if (!k.startsWith('after.')) continue;
      assertClose(t, model.state().get(k.slice('after.'.length))!, v.data, { abs: 1e-5, rel: 1e-4 }, k);
    }
    model.dispose();
  });
}

test('the preset refuses planes the poolings cannot halve, and unknown options', async (t) => {
  const model = presets.crossModalityConvLstm({ channels: 4 });
  t.throws(() => model.outputShape([1, 4, 3, 100, 96]), { message: /plane 100x96 must be a multiple of 16/ });
  t.throws(() => model.outputShape([1, 4, 3, 32, 32]), { message: /leaves 2x2 after 4 poolings, smaller than the ConvLSTM's 3x3 kernel/ });
  t.throws(() => model.outputShape([4, 3, 48, 48]), { message: /batch axis is missing/ });
  const x = Tensor.zeros([1, 3, 2, 48, 48]);
  await t.throwsAsync(() => model.forward(x), { message: /expected \(N, 4, D, H, W\)/ });
  t.throws(() => presets.crossModalityConvLstm({ channels: [8, 8] }), { message: /expected 4 channel counts/ });
  t.throws(() => presets.crossModalityConvLstm({ kernel: 4 }), { message: /odd kernel/ });
  t.throws(() => presets.crossModalityConvLstm({ fusion: 'concat' as 'none' }), { message: /fusion 'multiply' or 'none'/ });
  t.throws(() => presets.crossModalityConvLstm({ sequence: 3 } as never), { message: /unknown option 'sequence'/ });
  x.dispose();
  model.dispose();
});

test('MetaImage (.mha, the BRATS 2015 format): compressed int16 and big-endian float files written by another program', (t) => {
  const expected = Float32Array.from({ length: 60 }, (_, i) => 100 * Math.floor(i / 20) + 10 * Math.floor((i % 20) / 5) + (i % 5) - 50);
  const short = readVolume(path.join(dir, 'short_compressed.mha'));
  t.deepEqual(short.shape, [3, 4, 5]);
  t.is(short.dtype, 'int16');
  t.deepEqual(short.spacing, [2, 0.75, 0.5]);
  t.deepEqual([...short.data], [...expected]);
  const big = readVolume(path.join(dir, 'float_bigendian.mha'));
  t.deepEqual([...big.data], [...expected].map((v) => v / 4));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-mha-'));
  const file = path.join(tmp, 'roundtrip.mha');
  writeVolume(file, { data: expected, shape: [3, 4, 5], dtype: 'float32', spacing: [2, 1, 1] });
  const back = readVolume(file);
  t.deepEqual([...back.data], [...expected]);
  t.deepEqual(back.spacing, [2, 1, 1]);
  fs.writeFileSync(path.join(tmp, 'detached.mha'), 'ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = brain.raw\n');
  t.throws(() => readVolume(path.join(tmp, 'detached.mha')), { message: /voxels are in a separate file \(brain\.raw\)/ });
  fs.writeFileSync(path.join(tmp, 'short.mha'), Buffer.concat([Buffer.from('NDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n'), Buffer.alloc(10)]));
  t.throws(() => readVolume(path.join(tmp, 'short.mha')), { message: /needs 120 bytes, the file has 10/ });
  fs.rmSync(tmp, { recursive: true });
});

test('normalizeNonzero: each volume of each channel to z-scores over its non-zero voxels; zeros stay 0', (t) => {
  // Two channels of a (1, 2, 2) volume: [0, 1, 2, 3] and [0, 0, 5, 5].
  const out = normalizeNonzero(Float32Array.from([0, 1, 2, 3, 0, 0, 5, 5]), [2, 1, 2, 2]);
  const s = Math.sqrt(2 / 3);
  t.deepEqual([...out].map((v) => Number(v.toFixed(6))), [0, Number((-1 / s).toFixed(6)), 0, Number((1 / s).toFixed(6)), 0, 0, 0, 0]);
  t.is(preprocessVolume(Float32Array.from([0, 2, 4]), [1, 1, 3], 'nonzero')[2], 1);
});

test('the phantom: four modalities, BRATS labels 0-4, a zero background, and contrasts that need every modality', (t) => {
  const p = syntheticBrainMri({ depth: 16, height: 48, width: 48, seed: 2 });
  const [D, H, W] = p.dims;
  const n = D * H * W;
  const counts = [0, 0, 0, 0, 0];
  for (const l of p.labels) counts[l]! += 1;
  t.true(counts.every((c) => c > 0), `every label occurs: ${counts}`);
  t.true(counts[2]! > counts[4]! && counts[0]! > counts[2]!, 'edema is the largest tumour class, background larger still');
  const mean = (m: number, label: number) => {
    let s = 0, k = 0;
    for (let i = 0; i < n; ++i) if (p.labels[i] === label && p.image[m * n + i]! > 0) { s += p.image[m * n + i]!; ++k; }
    return s / k;
  };
  const [flair, t1, t1ce, t2] = [0, 1, 2, 3];
  t.true(mean(flair, 2) > 1.5 * mean(flair, 0), 'edema is bright in FLAIR');
  t.true(mean(t1ce, 4) > 1.3 * mean(t1ce, 2) && mean(t1ce, 4) > 1.3 * mean(t1, 4), 'the rim enhances in T1ce only');
  t.true(mean(t2, 1) > 1.5 * mean(t1, 1) * 2 || mean(t1, 1) < 0.5 * mean(t1, 0), 'necrosis is dark in T1');
  let background = 0;
  for (let i = 0; i < n; ++i) if (p.image[i] === 0) { ++background; t.is(p.labels[i], 0); }
  t.true(background > 0.15 * n, 'a skull-stripped background of zeros');
  t.deepEqual(syntheticBrainMri({ depth: 16, height: 48, width: 48, seed: 2 }).image, p.image, 'the seed fixes the phantom');
  t.throws(() => syntheticBrainMri({ depth: 4 }), { message: /depth as an integer >= 8/ });
});

/** Writes phantom cases to disk in BRATS 2018-2021 naming (NIfTI) or BRATS 2015 naming (.mha in sub-folders). */
function writeBratsCase(root: string, id: string, style: '2018' | '2015', seed: number): void {
  const p = syntheticBrainMri({ depth: 8, height: 32, width: 32, seed });
  const n = p.dims.reduce((a, b) => a * b, 1);
  const folder = path.join(root, id);
  fs.mkdirSync(folder, { recursive: true });
  const names2015: Record<string, string> = { flair: 'MR_Flair', t1: 'MR_T1', t1ce: 'MR_T1c', t2: 'MR_T2', seg: 'OT' };
  const write = (role: string, data: Float32Array) => {
    if (style === '2018') {
      writeVolume(path.join(folder, `${id}_${role}.nii.gz`), { data, shape: p.dims, dtype: 'float32' });
    } else {
      const name = `VSD.Brain${role === 'seg' ? '_3more' : ''}.XX.O.${names2015[role]}.${seed}${role.length}`;
      fs.mkdirSync(path.join(folder, name));
      writeVolume(path.join(folder, name, `${name}.mha`), { data, shape: p.dims, dtype: 'float32' });
    }
  };
  ['flair', 't1', 't1ce', 't2'].forEach((m, c) => write(m, p.image.subarray(c * n, (c + 1) * n)));
  write('seg', p.labels);
}

test('BRATS folders in 2015 and 2018-2021 naming load to the same normalised cases; a sampler draws slice sequences', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-'));
  writeBratsCase(path.join(tmp, 'new', 'HGG'), 'BraTS20_Training_001', '2018', 11);
  writeBratsCase(path.join(tmp, 'new', 'LGG'), 'BraTS20_Training_002', '2018', 12);
  writeBratsCase(path.join(tmp, 'old'), 'brats_2013_pat0001_1', '2015', 11);
  const found = findBratsCases(path.join(tmp, 'new'));
  t.deepEqual(found.map((c) => c.id), ['BraTS20_Training_001', 'BraTS20_Training_002']);
  t.regex(found[0]!.modalities.t1ce, /_t1ce\.nii\.gz$/);
  const old = findBratsCases(path.join(tmp, 'old'));
  t.is(old.length, 1);
  t.regex(old[0]!.modalities.t1ce, /MR_T1c\.\d+\.mha$/);
  t.regex(old[0]!.seg!, /OT\.\d+\.mha$/);
  const a = loadBratsCase(found[0]!), b = loadBratsCase(old[0]!);
  t.deepEqual(a.dims, [8, 32, 32]);
  t.deepEqual(a.image, b.image, 'the same case in both layouts');
  t.deepEqual(a.labels, b.labels);
  // Each modality normalised over the brain: mean 0, variance 1 over its non-zero voxels.
  const n = 8 * 32 * 32;
  for (let m = 0; m < 4; ++m) {
    const inside = [...a.image.subarray(m * n, (m + 1) * n)].filter((v) => v !== 0);
    const mean = inside.reduce((s, v) => s + v, 0) / inside.length;
    const variance = inside.reduce((s, v) => s + (v - mean) ** 2, 0) / inside.length;
    t.true(Math.abs(mean) < 1e-4 && Math.abs(variance - 1) < 1e-3, `modality ${m}: mean ${mean}, variance ${variance}`);
  }
  const sampler = bratsSampler(found.map((f) => loadBratsCase(f)));
  t.deepEqual(sampler.inputs, { input: 4 });
  const window = sampler.sample(new Random(3), [3, 32, 32]);
  t.is(window.inputs.input!.length, 4 * 3 * 32 * 32);
  t.is(window.labels.length, 3 * 32 * 32);
  // Incomplete and inconsistent cases are refused with what is missing.
  fs.rmSync(path.join(tmp, 'new', 'LGG', 'BraTS20_Training_002', 'BraTS20_Training_002_t2.nii.gz'));
  t.throws(() => findBratsCases(path.join(tmp, 'new')), { message: /BraTS20_Training_002: no t2 file/ });
  const seg = path.join(tmp, 'new', 'HGG', 'BraTS20_Training_001', 'BraTS20_Training_001_seg.nii.gz');
  writeVolume(seg, { data: new Float32Array(n).fill(7), shape: [8, 32, 32], dtype: 'float32' });
  t.throws(() => loadBratsCase(found[0]!), { message: /holds 7 at voxel 0; expected labels 0-4/ });
  t.throws(() => findBratsCases(path.join(tmp, 'missing')), { message: /cannot read/ });
  t.throws(() => bratsSampler([{ ...a, labels: undefined }] as never), { message: /has no labels/ });
  fs.rmSync(tmp, { recursive: true });
});

test('BRATS scores: Dice, PPV and sensitivity of the complete, core and enhancing regions, and per-class IU, on a hand-worked case', (t) => {
  // truth: 0 0 1 2 2 3 4 4     complete = {2..7}, core = {2, 5, 6, 7}, enhancing = {6, 7}
  // pred:  0 2 1 2 0 4 4 0     complete = {1, 2, 3, 5, 6}, core = {2, 5, 6}, enhancing = {5, 6}
  const truth = Uint8Array.from([0, 0, 1, 2, 2, 3, 4, 4]);
  const pred = Uint8Array.from([0, 2, 1, 2, 0, 4, 4, 0]);
  const s = metrics.brats(pred, truth);
  // complete: tp {2, 3, 5, 6} = 4, |P| 5, |T| 6 -> Dice 8/11, PPV 4/5, sensitivity 4/6
  t.true(Math.abs(s.complete.dice - 8 / 11) < 1e-12 && Math.abs(s.complete.ppv - 0.8) < 1e-12 && Math.abs(s.complete.sensitivity - 4 / 6) < 1e-12);
  // core: tp {2, 5, 6} = 3, |P| 3, |T| 4 -> Dice 6/7, PPV 1, sensitivity 3/4
  t.true(Math.abs(s.core.dice - 6 / 7) < 1e-12 && s.core.ppv === 1 && s.core.sensitivity === 0.75);
  // enhancing: tp {6} = 1, |P| 2, |T| 2 -> 1/2 each
  t.deepEqual([s.enhancing.dice, s.enhancing.ppv, s.enhancing.sensitivity], [0.5, 0.5, 0.5]);
  // IU: class 0 truth {0, 1} vs pred {0, 4, 7}: 1/4; 1: 1; 2: {3,4} vs {1,3}: 1/3; 3: {5} vs {}: 0; 4: {6,7} vs {5,6}: 1/3
  t.deepEqual(s.classIU.map((v) => Number(v.toFixed(6))), [0.25, 1, 0.333333, 0, 0.333333]);
  t.true(Math.abs(s.meanIU - (1 / 4 + 1 + 1 / 3 + 0 + 1 / 3) / 5) < 1e-12);
  t.throws(() => metrics.brats(Uint8Array.from([5]), Uint8Array.from([0])), { message: /expected labels 0\.\.4, received 5/ });
});

test('two-phase training on phantoms (the demo, small): the phases switch name and rate, the loss falls, and mean IU beats the untrained net', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-demo-'));
  const progress: Array<{ phase: string; lr: number; loss: number }> = [];
  const result = await runBratsDemo({
    steps: [150, 100], size: [12, 48, 48], trainCases: 3, testCases: 1, channels: 8, seed: 3, out,
    onProgress: (p) => progress.push({ phase: p.phaseName ?? '', lr: p.lr, loss: p.loss }),
  });
  t.deepEqual(result.steps, [150, 100]);
  // Phase switching seen in the progress events: the name and Adam's rate.
  t.deepEqual([...new Set(progress.map((p) => `${p.phase} ${p.lr}`))], ['tumour 0.001', 'all 0.0001']);
  const tumour = progress.filter((p) => p.phase === 'tumour').map((p) => p.loss);
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  t.true(mean(tumour.slice(-10)) < 0.7 * mean(tumour.slice(0, 10)), `phase 1 loss ${mean(tumour.slice(0, 10))} -> ${mean(tumour.slice(-10))}`);
  t.true(result.scores.meanIU > result.untrained.meanIU + 0.04, `mean IU ${result.untrained.meanIU} untrained -> ${result.scores.meanIU}`);
  t.true(result.scores.complete.dice > result.untrained.complete.dice, `complete Dice ${result.untrained.complete.dice} -> ${result.scores.complete.dice}`);
  // The model file records its pre-processing and channel names.
  const saved = loadModel(result.files.find((f) => f.endsWith('.safetensors'))!);
  t.is(saved.info.normalize, 'nonzero');
  t.deepEqual(saved.info.channels, { input: ['flair', 't1', 't1ce', 't2'] });
  t.deepEqual(saved.architecture(), result.model.architecture());
  // slice.png: the four modalities and the two label maps, 48-pixel slices upscaled to 288, with a legend of the five classes.
  const png = PNG.sync.read(fs.readFileSync(result.files.find((f) => f.endsWith('slice.png'))!));
  t.true(png.width >= 3 * 256 && png.height >= 2 * 256, `${png.width}x${png.height}`);
  for (let k = 1; k < 5; ++k) {
    const [r, g, b] = labelColour(k);
    let n = 0;
    for (let i = 0; i < png.data.length; i += 4) if (png.data[i] === r && png.data[i + 1] === g && png.data[i + 2] === b) ++n;
    t.true(n >= 14 * 14, `the legend swatch of ${saved.info.classes?.[k]}`);
  }
  saved.dispose();
  result.model.dispose();
  fs.rmSync(out, { recursive: true });
});

test('crossModalityPhases: the paper\'s regime, and its errors', (t) => {
  const [p1, p2] = crossModalityPhases({ steps: [10, 5] });
  t.deepEqual(p1!.size, [3, 240, 240]);
  t.is(p1!.batchSize, 3);
  t.deepEqual(p1!.loss, { kind: 'crossEntropy', classWeights: 'medianFrequency' });
  t.deepEqual(p1!.optimizer, { kind: 'adam', lr: 1e-4 });
  t.true(p1!.filter!({ labels: Float32Array.from([0, 0, 3]), size: [1, 1, 3] }) && !p1!.filter!({ labels: new Float32Array(3), size: [1, 1, 3] }));
  t.is(p2!.lr, 1e-6);
  t.is(p2!.filter, undefined);
  t.deepEqual(p2!.loss, { kind: 'crossEntropy' });
  t.throws(() => crossModalityPhases({ steps: [1, 2], epochs: [1, 1] }), { message: /steps or epochs, not both/ });
  t.throws(() => crossModalityPhases({ steps: [1] as never }), { message: /steps as two counts/ });
  t.throws(() => crossModalityPhases({ batch: 3 } as never), { message: /unknown option 'batch'/ });
});

// ---- Tseng et al.'s protocol: the U-Net baseline, the rates' two readings, case splits,
// per-case summaries and inference in slice sequences (issue 25).

/**
 * The U-Net of Table 1 at Ronneberger's widths (64 doubling to 1024, 4 poolings), counted by
 * hand: per level two 3x3 convolutions without bias, each with a batch norm (2 parameters per
 * channel); per up level a 2x2 up-convolution halving the channels (with bias) and two 3x3
 * convolutions on the concatenation; a 1x1 classifier to 5 classes.
 */
test('unet2d: the paper\'s baseline at Ronneberger\'s widths, a parameter count made by hand; orthogonal weights; gradients reach every parameter', async (t) => {
  const w = [64, 128, 256, 512, 1024];
  let byHand = 0;
  w.forEach((c, l) => (byHand += c * (l === 0 ? 4 : w[l - 1]!) * 9 + 2 * c + c * c * 9 + 2 * c));
  for (let l = 3; l >= 0; --l) byHand += w[l + 1]! * w[l]! * 4 + w[l]! + w[l]! * 2 * w[l]! * 9 + 2 * w[l]! + w[l]! * w[l]! * 9 + 2 * w[l]!;
  byHand += 5 * 64 + 5;
  t.is(byHand, 31_038_469);
  // The full width with a cheap initialiser: orthogonal 1024 x 9216 weights take minutes in TypeScript.
  const full = presets.unet2d({ init: 'msra' });
  t.is(full.paramCount(), byHand);
  const shapes = new Map([...full.parameters()].map(([k, v]) => [k, v.shape.join('x')]));
  t.is(shapes.get('down.0.conv1.weight'), '64x4x1x3x3');
  t.is(shapes.get('down.4.conv2.weight'), '1024x1024x1x3x3');
  t.is(shapes.get('up.3.up.weight'), '1024x512x1x2x2');
  t.is(shapes.get('up.0.conv1.weight'), '64x128x1x3x3');
  t.is(shapes.get('classifier.weight'), '5x64x1x1x1');
  t.false(shapes.has('down.0.conv1.bias'), 'a batch norm follows: no bias');
  t.is([...full.state().keys()].filter((k) => k.endsWith('running_mean')).length, 2 * 5 + 2 * 4, 'a batch norm before every ReLU');
  t.deepEqual(full.outputShape([10, 4, 1, 240, 240]), [10, 5, 1, 240, 240]);
  full.dispose();
  // A narrow one, orthogonal as the paper: the rows of a flattened weight are orthonormal.
  const model = presets.unet2d({ channels: 4, levels: 2, seed: 3 });
  const weight = model.parameters().get('down.1.conv1.weight')!.toArray();  // (8, 4*9): 8 orthonormal rows
  const cols = 36;
  let worst = 0;
  for (let a = 0; a < 8; ++a)
    for (let b = a; b < 8; ++b) {
      let dot = 0;
      for (let k = 0; k < cols; ++k) dot += weight[a * cols + k]! * weight[b * cols + k]!;
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  t.true(worst < 1e-5, `orthonormal rows (worst ${worst})`);
  // Gradients come from the ops: every parameter gets one, and slices stay independent.
  const x = Tensor.fromArray(Float32Array.from({ length: 2 * 4 * 2 * 16 * 16 }, (_, i) => Math.sin(i * 0.37)), [2, 4, 2, 16, 16]);
  const dy = Float32Array.from({ length: 2 * 5 * 2 * 16 * 16 }, (_, i) => Math.cos(i * 0.11));
  const { y, grads } = await modelGradients(model, x, dy);
  t.deepEqual(y.shape, [2, 5, 2, 16, 16]);
  for (const name of model.parameters().keys()) {
    const g = grads.get(name);
    t.truthy(g, `a gradient for ${name}`);
    t.true(g!.toArray().some((v) => v !== 0), `a non-zero gradient for ${name}`);
  }
  // Softmax over the 5 classes: each voxel's probabilities sum to 1.
  const p = y.toArray();
  const voxels = 2 * 256;
  let worstSum = 0;
  for (let n = 0; n < 2; ++n)
    for (let i = 0; i < voxels; ++i) {
      let sum = 0;
      for (let c = 0; c < 5; ++c) sum += p[(n * 5 + c) * voxels + i]!;
      worstSum = Math.max(worstSum, Math.abs(sum - 1));
    }
  t.true(worstSum < 1e-5, `probabilities sum to 1 (worst ${worstSum})`);
  t.throws(() => model.outputShape([1, 4, 1, 18, 16]), { code: 'ERR_SHAPE', message: /multiple of 4/ });
  t.throws(() => presets.unet2d({ channels: [4, 8] }), { code: 'ERR_ARGUMENT', message: /expected 5 channel counts/ });
  t.throws(() => presets.unet2d({ depth: 3 } as never), { code: 'ERR_ARGUMENT', message: /unknown option 'depth'/ });
  model.dispose();
});

test('the paper\'s "10e-4" and "10e-6": common reading 1e-4/1e-6 (the default), literal 1e-3/1e-5; explicit rates win', (t) => {
  const rates = (o: Parameters<typeof crossModalityPhases>[0]) => crossModalityPhases({ steps: [1, 1], ...o }).map((p) => (p.optimizer as { lr: number }).lr);
  t.deepEqual(rates({}), [1e-4, 1e-6]);
  t.deepEqual(rates({ lrReading: 'common' }), [1e-4, 1e-6]);
  t.deepEqual(rates({ lrReading: 'literal' }), [1e-3, 1e-5]);
  t.deepEqual(rates({ lrReading: 'literal', lr: 2e-4 }), [2e-4, 1e-5]);
  t.deepEqual(paperLearningRates, { common: [1e-4, 1e-6], literal: [1e-3, 1e-5] });
  t.is(crossModalityPhases({ steps: [1, 1], lrReading: 'literal' })[1]!.lr, 1e-5, 'phase 2 starts at its own rate');
  t.throws(() => crossModalityPhases({ lrReading: '10e-4' as never }), { code: 'ERR_ARGUMENT', message: /lrReading 'common' \(1e-4, 1e-6\) or 'literal' \(1e-3, 1e-5\)/ });
});

test('splitCases: k folds that partition the cases, a hold-out, both deterministic for a seed; stratified by parent folder; errors', (t) => {
  const names = [...Array.from({ length: 22 }, (_, i) => `HGG/h${String(i).padStart(2, '0')}`), ...Array.from({ length: 6 }, (_, i) => `LGG/l${i}`)];
  const a = splitCases(names, { folds: 5, seed: 7 });
  t.deepEqual(splitCases([...names].reverse(), { folds: 5, seed: 7 }), a, 'the same seed and cases give the same split, in any order');
  t.notDeepEqual(splitCases(names, { folds: 5, seed: 8 }).folds, a.folds);
  t.deepEqual(a.folds!.flat().sort(), [...names].sort(), 'every case in exactly one fold');
  t.deepEqual(a.folds!.map((f) => f.length).sort(), [5, 5, 6, 6, 6]);
  const train2 = splitPart({ ...a, root: '.' }, 'train', 2), test2 = splitPart({ ...a, root: '.' }, 'test', 2);
  t.is(train2.length + test2.length, 28);
  t.false(train2.some((c) => test2.includes(c)));
  const s = splitCases(names, { folds: 3, seed: 1, stratify: true });
  for (const fold of s.folds!) t.is(fold.filter((c) => c.startsWith('LGG/')).length, 2, 'each fold holds 2 of the 6 LGG cases');
  const h = splitCases(names, { test: 7, seed: 2, stratify: true });
  t.is(h.test!.length, 7);
  t.is(h.train!.length, 21);
  // 7 x 22/28 = 5.5 and 7 x 6/28 = 1.5: the larger remainder first, ties to the first group (HGG).
  t.deepEqual([h.test!.filter((c) => c.startsWith('HGG/')).length, h.test!.filter((c) => c.startsWith('LGG/')).length], [6, 1]);
  t.throws(() => splitCases(names, { folds: 5, test: 3 }), { code: 'ERR_ARGUMENT', message: /give folds .* or test/ });
  t.throws(() => splitCases(names, { folds: 1 }), { code: 'ERR_ARGUMENT', message: /folds from 2 to the number of cases \(28\)/ });
  t.throws(() => splitCases(names, { test: 28 }), { code: 'ERR_ARGUMENT', message: /fewer test cases than cases/ });
  t.throws(() => splitPart({ ...a, root: '.' }, 'test', 5), { code: 'ERR_ARGUMENT', message: /5 folds; expected a fold from 0 to 4/ });
  t.throws(() => splitPart({ ...h, root: '.' }, 'test', 0), { code: 'ERR_ARGUMENT', message: /hold-out with no folds/ });
});

interface SummaryFixture {
  shape: number[];
  cases: Array<{ id: string; pred: number[]; truth: number[] }>;
  expected: Record<EmptyTruth, { rows: Array<Record<BratsColumn, number | null>>; statistics: Record<BratsColumn, Record<string, number>> }>;
}

test('per-case BRATS scores and their mean, std, median and quartiles equal numpy\'s (fixture), under both empty-truth rules', (t) => {
  const f = JSON.parse(fs.readFileSync(path.join(dir, 'summary_cases.json'), 'utf8')) as SummaryFixture;
  for (const rule of ['score', 'skip'] as const) {
    const rows = f.cases.map((c) => caseRow(c.id, metrics.brats(Float32Array.from(c.pred), Float32Array.from(c.truth)), c.truth, rule));
    const summary = summarizeCases(rows, rule);
    rows.forEach((row, i) => {
      for (const col of bratsColumns) {
        const want = f.expected[rule].rows[i]![col];
        if (want === null) t.true(Number.isNaN(row.scores[col]), `${rule} ${row.id} ${col} left out`);
        else t.true(Math.abs(row.scores[col] - want) < 1e-6, `${rule} ${row.id} ${col}: ${row.scores[col]} vs numpy ${want}`);
      }
    });
    for (const col of bratsColumns) {
      const want = f.expected[rule].statistics[col]!;
      const got = summary.statistics[col];
      t.is(got.n, want.n, `${rule} ${col} n`);
      for (const key of ['mean', 'std', 'median', 'q25', 'q75'] as const) t.true(Math.abs(got[key] - want[key]!) < 1e-9, `${rule} ${col} ${key}: ${got[key]} vs ${want[key]}`);
    }
  }
  // The convention shows in the fixture's edge cases: both empty scores 1, truth-only empty 0 (or left out).
  const row = (id: string, rule: EmptyTruth) => {
    const c = f.cases.find((x) => x.id === id)!;
    return caseRow(id, metrics.brats(Float32Array.from(c.pred), Float32Array.from(c.truth)), c.truth, rule).scores;
  };
  t.is(row('no_enhancing_both', 'score').dice_enhancing, 1);
  t.is(row('no_enhancing_truth', 'score').dice_enhancing, 0);
  t.true(Number.isNaN(row('no_enhancing_truth', 'skip').dice_enhancing));
  const csv = summaryCsv(summarizeCases(f.cases.map((c) => caseRow(c.id, metrics.brats(Float32Array.from(c.pred), Float32Array.from(c.truth)), c.truth, 'skip')), 'skip'));
  const lines = csv.trim().split('\n');
  t.is(lines[0], `case,${bratsColumns.join(',')}`);
  t.deepEqual(lines.slice(-5).map((l) => l.split(',')[0]), ['Mean', 'StdDev', 'Median', '25quantile', '75quantile']);
  t.is(lines.find((l) => l.startsWith('no_tumour,'))!.split(',')[1], '', 'a left-out score is an empty cell');
});

test('sequence inference: sequences as long as the volume equal whole-volume inference; the default (training length, stride 1) averages each slice over its sequences', async (t) => {
  const model = presets.crossModalityConvLstm({ channels: 4, levels: 2, seed: 5 });
  model.info = { ...model.info, window: [3, 16, 16] };
  const D = 6;
  const x = Tensor.fromArray(Float32Array.from({ length: 4 * D * 256 }, (_, i) => Math.sin(i * 0.013) + (i % 7) * 0.1), [1, 4, D, 16, 16]);
  const whole = (await model.predict(x)).toArray();
  for (const length of [D, 'whole', 40] as const) assertClose(t, (await predictSequences(model, x, { length })).toArray(), whole, { abs: 1e-6, rel: 1e-5 }, `length ${length}`);
  t.deepEqual(sequenceStarts(6, 3, 1), [0, 1, 2, 3]);
  t.deepEqual(sequenceStarts(7, 3, 2), [0, 2, 4]);
  t.deepEqual(sequenceStarts(8, 3, 2), [0, 2, 4, 5], 'the last sequence ends on the last slice');
  const byDefault = (await predictSequences(model, x)).toArray();
  let differs = 0;
  for (let i = 0; i < whole.length; ++i) differs = Math.max(differs, Math.abs(byDefault[i]! - whole[i]!));
  t.true(differs > 1e-4, `the ConvLSTM sees 3 slices, not 6 (largest difference ${differs})`);
  // Slice 2 is in the sequences starting at 0, 1 and 2: its probabilities are their plain mean.
  const plane = 256, k = 5;
  const manual = new Float32Array(k * plane);
  for (const s of [0, 1, 2]) {
    const piece = ops.narrow(x, 2, s, 3);
    const p = (await model.predict(piece)).toArray();
    piece.dispose();
    for (let c = 0; c < k; ++c) for (let i = 0; i < plane; ++i) manual[c * plane + i]! += p[(c * 3 + (2 - s)) * plane + i]! / 3;
  }
  const slice2 = new Float32Array(k * plane);
  for (let c = 0; c < k; ++c) slice2.set(byDefault.subarray((c * D + 2) * plane, (c * D + 3) * plane), c * plane);
  assertClose(t, slice2, manual, { abs: 1e-6, rel: 1e-5 }, 'slice 2: the mean of its 3 sequences');
  await t.throwsAsync(predictSequences(model, x, { length: 0 }), { code: 'ERR_ARGUMENT', message: /length as an integer >= 1 or 'whole'/ });
  await t.throwsAsync(predictSequences(model, x, { stride: 1.5 }), { code: 'ERR_ARGUMENT', message: /stride as an integer >= 1/ });
  x.dispose();
  model.dispose();
});

/** segvol in this process, its printed lines returned (errors come back with their code). */
async function segvolHere(args: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    await createProgram().exitOverride().parseAsync(['node', 'segvol', ...args]);
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

test.serial('segvol split, predict over a split\'s test cases (slice sequences) and evaluate --brats over the folder: a row per case, statistics as CSV and JSON', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-split-'));
  const cases = path.join(root, 'cases');
  for (let i = 1; i <= 5; ++i) writeBratsCase(cases, `case_${i}`, '2018', 40 + i);
  const splitFile = path.join(root, 'split.json');
  const said = await segvolHere(['split', '--cases', cases, '--folds', '2', '--seed', '3', '--out', splitFile]);
  t.regex(said, /split 5 cases .*: 2 folds of 3, 2 cases; seed 3/);
  const split = readCaseSplit(splitFile);
  t.is(split.root, 'cases', 'the root relative to the split file');
  t.deepEqual(split, writeCaseSplit(path.join(root, 'again.json'), cases, { folds: 2, seed: 3 }) && readCaseSplit(path.join(root, 'again.json')));
  t.deepEqual(splitBratsFiles(splitFile, 'test', 1).map((f) => f.id), split.folds![1]);
  await segvolHere(['split', '--cases', cases, '--test', '2', '--out', path.join(root, 'holdout.json')]);
  t.is(readCaseSplit(path.join(root, 'holdout.json')).test!.length, 2);
  await t.throwsAsync(segvolHere(['split', '--cases', cases, '--folds', '2', '--test', '1', '--out', path.join(root, 'x.json')]), { code: 'ERR_ARGUMENT', message: /one of them/ });
  // An untrained model is enough to check the plumbing: predictions for fold 1's test cases only.
  const model = presets.crossModalityConvLstm({ channels: 4, levels: 2, seed: 1 });
  model.info = { normalize: 'nonzero', channels: { input: ['flair', 't1', 't1ce', 't2'] }, window: [3, 32, 32] };
  model.save(path.join(root, 'model.safetensors'));
  model.dispose();
  const preds = path.join(root, 'preds');
  const predicted = await segvolHere(['predict', '--model', path.join(root, 'model.safetensors'), '--in', cases, '--split', splitFile, '--fold', '1', '--out', `${preds}/`]);
  t.regex(predicted, /predicting 2 cases in sequences of 3 slices/);
  t.deepEqual(fs.readdirSync(preds).sort(), split.folds![1]!.map((id) => `${id}.nii.gz`).sort());
  const report = path.join(root, 'fold1');
  const table = await segvolHere(['evaluate', '--pred', preds, '--truth', cases, '--brats', '--split', splitFile, '--fold', '1', '--report', report]);
  t.regex(table, /case\s+dice_complete/);
  for (const id of split.folds![1]!) t.regex(table, new RegExp(`${id}\\s+\\d\\.\\d{4}`));
  t.regex(table, /mean\s+\d\.\d{4}/);
  t.regex(table, /2 cases; empty truth regions: scored/);
  const json = JSON.parse(fs.readFileSync(`${report}.json`, 'utf8')) as { cases: Array<{ id: string; scores: Record<string, number> }>; statistics: Record<string, { mean: number; n: number }> };
  t.deepEqual(json.cases.map((c) => c.id), split.folds![1]);
  for (const col of bratsColumns) {
    const mean = json.cases.reduce((a, c) => a + c.scores[col]!, 0) / json.cases.length;
    t.true(Math.abs(json.statistics[col]!.mean - mean) < 1e-12, `${col}: the mean of the rows`);
  }
  const csv = fs.readFileSync(`${report}.csv`, 'utf8').trim().split('\n');
  t.is(csv.length, 1 + 2 + 5);
  // Each row is metrics.brats of that case's files.
  const first = json.cases[0]!;
  const direct = metrics.brats(readVolume(path.join(preds, `${first.id}.nii.gz`)).data, readVolume(path.join(cases, first.id, `${first.id}_seg.nii.gz`)).data);
  t.true(Math.abs(first.scores.dice_complete! - direct.complete.dice) < 1e-12);
  // Whole-volume inference is an option; without --split every case under --truth needs a prediction.
  await segvolHere(['predict', '--model', path.join(root, 'model.safetensors'), '--in', path.join(cases, 'case_1'), '--sequence', 'whole', '--out', path.join(root, 'whole.nii.gz')]);
  t.deepEqual(readVolume(path.join(root, 'whole.nii.gz')).shape, [8, 32, 32]);
  await t.throwsAsync(segvolHere(['evaluate', '--pred', preds, '--truth', cases, '--brats']), { code: 'ERR_ARGUMENT', message: /no prediction in .* for 3 of 5 cases/ });
  await t.throwsAsync(segvolHere(['evaluate', '--pred', preds, '--truth', cases, '--brats', '--fold', '1']), { code: 'ERR_ARGUMENT', message: /give --split too/ });
  await t.throwsAsync(segvolHere(['evaluate', '--pred', preds, '--truth', cases, '--brats', '--split', splitFile, '--fold', '2']),
    { code: 'ERR_ARGUMENT', message: /2 folds; expected a fold from 0 to 1/ });
  await t.throwsAsync(segvolHere(['evaluate', '--pred', preds, '--truth', cases]), { code: 'ERR_ARGUMENT', message: /is a folder: give the measure/ });
  t.true(evaluateBratsFolder(preds, cases, { split: splitFile, fold: 1, emptyTruth: 'skip' }).cases.length === 2);
});

test.serial('segvol train: the U-Net with settings "paper" (batch 10 of single slices), the literal rates, on a split\'s training fold', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-brats-unet-'));
  for (let i = 1; i <= 3; ++i) writeBratsCase(path.join(root, 'cases'), `case_${i}`, '2018', 60 + i);
  writeCaseSplit(path.join(root, 'split.json'), path.join(root, 'cases'), { folds: 3, seed: 1 });
  const split = readCaseSplit(path.join(root, 'split.json'));
  fs.writeFileSync(path.join(root, 'train.json'), JSON.stringify({
    model: { preset: 'unet2d', channels: 2, levels: 2, seed: 1 }, settings: 'paper', lrReading: 'literal', size: [1, 32, 32], steps: 1,
    data: { brats: 'cases', split: 'split.json', fold: 0 }, checkpoint: { path: 'model.safetensors' },
  }));
  const log = path.join(root, 'model.log.jsonl');
  const said = await segvolHere(['train', '--config', path.join(root, 'train.json')]);
  t.regex(said, /finished at step 2/, 'two phases of one step');
  const model = loadModel(path.join(root, 'model.safetensors'));
  t.is(model.constructor.name, 'Unet2d');
  t.deepEqual(model.info.window, [1, 32, 32]);
  model.dispose();
  const steps = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.lr !== undefined && e.loss !== undefined);
  t.deepEqual(steps.map((s) => s.lr), [1e-3, 1e-5], 'the literal reading: 1e-3, then 1e-5');
  t.deepEqual(steps.map((s) => s.batchSize), [10, 10], 'batches of 10 slices, as the paper trains the U-Net');
  t.is(split.folds![0]!.length, 1);
  fs.writeFileSync(path.join(root, 'bad.json'), JSON.stringify({ model: { preset: 'unet2d', channels: 2 }, settings: 'paper', lrReading: '10e-4', data: { brats: 'cases' }, steps: 1 }));
  await t.throwsAsync(segvolHere(['train', '--config', path.join(root, 'bad.json')]), { code: 'ERR_ARGUMENT', message: /lrReading "common" .* or "literal"/ });
  fs.writeFileSync(path.join(root, 'bad2.json'), JSON.stringify({ model: { preset: 'unet2d', channels: 2 }, data: { brats: 'cases', fold: 1 }, steps: 1 }));
  await t.throwsAsync(segvolHere(['train', '--config', path.join(root, 'bad2.json')]), { code: 'ERR_ARGUMENT', message: /data\.fold picks a fold of data\.split/ });
});
