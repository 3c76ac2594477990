// What a new user meets: self-describing model files, recorded pre-processing,
// train/eval modes, validation with the best model kept and early stopping,
// gradient clipping, memory counts (and no leak across steps), epochs as passes
// over the data, lossy writes reported, and argument checks.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  graph, layers, loadModel, memoryStats, Model, normalizeSlices, predictVolume, presets, readSafetensors, readVolume, sequential, Tensor,
  Trainer, VolumeSampler, writeSafetensors, writeVolume, type ModelInput, type ModelInputShape, type Progress, type RunOptions,
} from '../lib';
import { assertClose, randomArray, rng } from './helpers';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-use-'));

function sameWeights(t: import('ava').ExecutionContext, a: { state(): Map<string, Tensor> }, b: { state(): Map<string, Tensor> }) {
  t.deepEqual([...a.state().keys()], [...b.state().keys()]);
  for (const [name, v] of a.state()) t.deepEqual(b.state().get(name)!.toArray(), v.toArray(), name);
}

test('model files rebuild presets, layer lists and graphs with their weights and info', async (t) => {
  const dir = tmp();
  const preset = presets.pyramidNet({ inChannels: 2, classes: 3, hidden: [2, 3], fc: [4], kernel: 3, seed: 4 });
  preset.info = { normalize: 'slice', channels: { input: ['t1', 't2'] }, classes: ['bg', 'a', 'b'], spacing: [3, 1, 1], window: [4, 8, 8] };
  preset.save(path.join(dir, 'preset.safetensors'));
  const back = loadModel(path.join(dir, 'preset.safetensors'));
  sameWeights(t, preset, back);
  t.deepEqual(back.info, preset.info);
  t.deepEqual(back.architecture(), { kind: 'preset', preset: 'pyramidNet', options: { inChannels: 2, classes: 3, hidden: [2, 3], fc: [4], kernel: 3, seed: 4 } });
  const meta = JSON.parse(readSafetensors(path.join(dir, 'preset.safetensors')).metadata['segvol.model']!) as { segvolVersion: string; format: string };
  t.is(meta.format, 'segvol-model-1');
  t.regex(meta.segvolVersion, /^\d+\.\d+\.\d+/);

  const list = sequential([
    layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: { kind: 'xavier', gain: 2 }, biasInit: { kind: 'constant', value: 0.1 } }),
    layers.batchNorm({ momentum: 0.2 }), layers.relu(), layers.maxFilter({ kernel: [1, 2, 2], dilation: [1, 2, 2] }),
    layers.dropout({ p: 0.2 }), layers.pixelwise({ units: 2 }), layers.softmax(),
  ], { inChannels: 1, seed: 7 });
  await list.forward(Tensor.fromArray(randomArray(2 * 36, rng(1)), [1, 1, 2, 6, 6]), { training: true });  // running statistics move
  list.save(path.join(dir, 'list.safetensors'));
  const listBack = loadModel(path.join(dir, 'list.safetensors'));
  sameWeights(t, list, listBack);
  const x = Tensor.fromArray(randomArray(2 * 64, rng(2)), [1, 1, 2, 8, 8]);
  assertClose(t, await listBack.predict(x), await list.predict(x), { abs: 0, rel: 0 }, 'same predictions');

  const g = graph({
    inputs: { image: 1, boundary: 1 },
    nodes: [
      { name: 'a', layer: layers.conv({ out: 2, kernel: [1, 1, 1] }), input: 'image' },
      { name: 'b', layer: layers.conv({ out: 2, kernel: [1, 1, 1] }), input: 'boundary' },
      { name: 'sum', join: 'sum', inputs: ['a', 'b'] },
      { name: 'p', layer: layers.softmax(), input: 'sum' },
      { name: 'q', layer: layers.sigmoid(), input: 'b' },
    ],
    outputs: ['p', 'q'],
    seed: 3,
  });
  g.save(path.join(dir, 'graph.safetensors'));
  const gBack = loadModel(path.join(dir, 'graph.safetensors'));
  sameWeights(t, g, gBack);
  t.deepEqual(gBack.outputNames, ['p', 'q']);
  t.deepEqual(gBack.inputs, { image: 1, boundary: 1 });
});

class Tiny extends Model {
  readonly outChannels = 2;
  private readonly conv = this.layer('conv', layers.conv({ out: 2, kernel: [1, 1, 1] }), 1);
  constructor(seed: number) {
    super({ inputs: { input: 1 }, seed });
  }
  outputShape(shape: ModelInputShape): number[] {
    const s = this.inputShapes(shape).get('input')!;
    return [s[0]!, 2, ...s.slice(2)];
  }
  async forward(x: ModelInput, options?: RunOptions): Promise<Tensor> {
    return this.conv(this.single(x), this.mode(options));
  }
}

test('model files of custom classes need their factory; weights-only files and unknown formats are refused clearly', (t) => {
  const dir = tmp();
  new Tiny(1).save(path.join(dir, 'tiny.safetensors'));
  const err = t.throws(() => loadModel(path.join(dir, 'tiny.safetensors'))) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /holds a model of the class Tiny; pass its factory: loadModel\(file, \{ custom: \{ Tiny:/);
  const tiny = loadModel(path.join(dir, 'tiny.safetensors'), { custom: { Tiny: () => new Tiny(99) } });
  sameWeights(t, new Tiny(1), tiny);
  new Tiny(1).saveWeights(path.join(dir, 'weights.safetensors'));
  const weightsOnly = t.throws(() => loadModel(path.join(dir, 'weights.safetensors'))) as Error & { code?: string };
  t.is(weightsOnly.code, 'ERR_FORMAT');
  t.regex(weightsOnly.message, /holds weights only, without the model's architecture .* call model\.loadWeights\(file\)/);
  new Tiny(1).saveWeights(path.join(dir, 'future.safetensors'), { 'segvol.model': JSON.stringify({ format: 'segvol-model-9' }) });
  t.throws(() => loadModel(path.join(dir, 'future.safetensors')), { message: /model format 'segvol-model-9' is unknown to this segvol/ });
});

test('checkpoints of segvol 0.1 (format 1, a CLI model config) load, and resume', async (t) => {
  const dir = tmp();
  const old = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 5 });
  const file = path.join(dir, 'old.safetensors');
  const tensors = new Map([...old.state()].map(([k, v]) => [k, { shape: [...v.shape], data: v.toArray() }]));
  writeSafetensors(file, tensors, {
    segvol: JSON.stringify({
      format: 'segvol-checkpoint-1', position: { stage: 0, epoch: 2, stepInEpoch: 0, step: 2 }, random: 123, modelRandom: 5,
      optimizer: { config: { kind: 'rmspropMomentum' }, steps: 2 },
      modelConfig: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 5 },
    }),
  });
  writeSafetensors(`${file}.optimizer`, new Map(), { step: '2' });
  const loaded = loadModel(file);
  sameWeights(t, old, loaded);
  t.deepEqual(loaded.info, {});
  const trainer = new Trainer(loaded);
  trainer.resume(file);
  t.is(trainer.step, 2);
  const volume = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i));
  const done = await trainer.fit({ data: new VolumeSampler({ volume, shape: [1, 4, 8, 8], labels: volume.map((v) => (v > 0 ? 1 : 0)) }), size: [3, 4, 4], steps: 4 });
  t.is(done.steps, 4, 'two more steps: the old position (epoch 2 of one step each) became step 2 of the phase');
});

test('a Trainer checkpoint is a model file: loadModel gives the trained model with its info', async (t) => {
  const dir = tmp();
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  model.info = { normalize: 'slice', classes: ['cell', 'membrane'] };
  const volume = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.cos(i));
  await new Trainer(model, { seed: 2 }).fit({ data: new VolumeSampler({ volume, shape: [1, 4, 8, 8], labels: volume.map((v) => (v > 0 ? 1 : 0)) }),
    size: [3, 6, 6], steps: 2, checkpoint: { path: path.join(dir, 'ckpt.safetensors') } });
  const loaded = loadModel(path.join(dir, 'ckpt.safetensors'));
  sameWeights(t, model, loaded);
  t.deepEqual(loaded.info, model.info);
});

test('predict, segment and predictVolume apply the recorded pre-processing, unless told not to', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 3 });
  const shape = [1, 1, 3, 9, 9];
  const raw = Float32Array.from({ length: 243 }, (_, i) => 100 + 40 * Math.sin(i * 0.3));
  const normalised = normalizeSlices(raw, shape);
  const plain = await model.predict(Tensor.fromArray(normalised, shape));
  model.info = { normalize: 'slice' };
  assertClose(t, await model.predict(Tensor.fromArray(raw, shape)), plain, { abs: 0, rel: 0 }, 'predict normalises raw input');
  assertClose(t, await model.predict(Tensor.fromArray(normalised, shape), { preprocess: false }), plain, { abs: 0, rel: 0 }, 'preprocess: false');
  const stitched = await predictVolume(model, Tensor.fromArray(raw, shape), { window: [3, 6, 6], overlap: 0.5 });
  model.info = {};
  const expected = await predictVolume(model, Tensor.fromArray(normalised, shape), { window: [3, 6, 6], overlap: 0.5 });
  assertClose(t, stitched, expected, { abs: 0, rel: 0 }, 'predictVolume normalises the whole volume once, not each window');
  model.info = { normalize: 'slice' };
  t.deepEqual((await model.segment(Tensor.fromArray(raw, shape))).toArray(), (await model.segment(Tensor.fromArray(normalised, shape), { preprocess: false })).toArray());
});

test('model.train() and model.eval() set the default mode; predict always runs in inference mode', async (t) => {
  const model = sequential([layers.dropout({ p: 0.5 })], { inChannels: 1, seed: 2 });
  const x = Tensor.full([1, 1, 2, 10, 10], 1);
  t.false(model.training);
  t.true((await model.forward(x)).toArray().every((v) => v === 1), 'a new model is in eval mode');
  model.train();
  t.true((await model.forward(x)).toArray().some((v) => v === 0), 'train(): dropout on');
  t.true((await model.predict(x)).toArray().every((v) => v === 1), 'predict: inference mode');
  t.true((await model.forward(x, { training: false })).toArray().every((v) => v === 1), 'the option overrides the mode');
  t.is(model.eval(), model);
  t.true((await model.forward(x)).toArray().every((v) => v === 1));
});

function toyVolume(seed: number, d = 6, h = 16, w = 16) {
  const random = rng(seed);
  const labels = Float32Array.from({ length: d * h * w }, () => (random() < 0.35 ? 1 : 0));
  const volume = labels.map((v) => (v ? 0.8 : -0.8) + 0.4 * (random() - 0.5));
  return new VolumeSampler({ volume, shape: [1, d, h, w], labels });
}

test('validation: scored on fixed windows, the best model kept beside the checkpoint, early stopping after patience', async (t) => {
  const dir = tmp();
  const ckpt = path.join(dir, 'run.safetensors');
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 6 });
  const scores: Array<[number, number]> = [];
  const result = await new Trainer(model, { seed: 1, optimizer: { kind: 'adam', lr: 0.05 }, loss: 'crossEntropy' }).fit({
    data: toyVolume(1), size: [3, 8, 8], steps: 12, checkpoint: { path: ckpt },
    validation: { data: toyVolume(2), windows: 4, every: 3, metric: 'dice' },
    onProgress: (p) => { if (p.validation !== undefined) scores.push([p.step, p.validation]); },
  });
  t.deepEqual(scores.map(([s]) => s), [3, 6, 9, 12]);
  t.true(scores.every(([, v]) => v >= 0 && v <= 1), JSON.stringify(scores));
  const best = Math.max(...scores.map(([, v]) => v));
  t.is(result.validation!.best, best);
  t.is(result.validation!.bestStep, scores.find(([, v]) => v === best)![0]);
  t.true(fs.existsSync(path.join(dir, 'run.best.safetensors')), 'the best model is kept');
  const log = fs.readFileSync(path.join(dir, 'run.log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { validation?: number; slice?: string });
  t.is(log.filter((e) => e.validation !== undefined).length, 4);
  // Each score writes the picture input | truth | prediction beside the log (segvol view shows it).
  t.deepEqual(log.filter((e) => e.validation !== undefined).map((e) => e.slice), Array(4).fill('run.validation.png'));
  const picture = readVolume(path.join(dir, 'run.validation.png'));
  t.true(picture.shape[2]! >= 3 * 256 && picture.shape[1]! >= 256, `a readable picture of three panels: (${picture.shape.join(', ')})`);

  // lr 0: the score never improves after the first, so patience 2 stops after the third score.
  const frozen = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 6 });
  const stopped = await new Trainer(frozen, { seed: 1, optimizer: { kind: 'sgd', lr: 0 } }).fit({
    data: toyVolume(1), size: [3, 8, 8], steps: 20, validation: { data: toyVolume(2), windows: 2, every: 2, patience: 2 },
  });
  t.true(stopped.stoppedEarly);
  t.is(stopped.steps, 6);
  t.is(stopped.validation!.bestStep, 2);
  await t.throwsAsync(new Trainer(frozen).fit({ data: toyVolume(1), size: [3, 8, 8], steps: 1, validation: { data: toyVolume(2), metric: 'f1' as never } }),
    { message: /validation: expected metric loss, dice, meanIU, accuracy/ });
});

test('gradient clipping by global norm and by value; progress reports the norm before clipping', async (t) => {
  const step = async (clip?: { maxNorm?: number; maxValue?: number }) => {
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 9 });
    const before = [...model.parameters().values()].map((p) => p.toArray());
    let norm = NaN;
    await new Trainer(model, { seed: 3, optimizer: { kind: 'sgd', momentum: 0, lr: 1 }, loss: 'crossEntropy', ...(clip ? { clipGradients: clip } : {}) })
      .fit({ data: toyVolume(3), size: [3, 6, 6], steps: 1, onProgress: (p: Progress) => { norm = p.gradNorm; } });
    const delta = [...model.parameters().values()].flatMap((p, k) => [...p.toArray()].map((v, i) => before[k]![i]! - v));
    return { norm, delta };
  };
  const free = await step();
  const l2 = Math.sqrt(free.delta.reduce((s, v) => s + v * v, 0));
  t.true(Math.abs(free.norm - l2) < 1e-5 * l2, `reported ${free.norm}, update ${l2}`);
  const byNorm = await step({ maxNorm: l2 / 4 });
  const clippedNorm = Math.sqrt(byNorm.delta.reduce((s, v) => s + v * v, 0));
  t.true(Math.abs(clippedNorm - l2 / 4) < 1e-4 * l2, `clipped to ${clippedNorm}, asked ${l2 / 4}`);
  t.is(byNorm.norm, free.norm);
  const largest = Math.max(...free.delta.map(Math.abs));
  const byValue = await step({ maxValue: largest / 2 });
  t.true(byValue.delta.every((v) => Math.abs(v) <= largest / 2 + 1e-7));
  t.true(byValue.delta.some((v) => Math.abs(Math.abs(v) - largest / 2) < 1e-7), 'the largest entries sit at the bound');
  t.throws(() => new Trainer(presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [] }), { clipGradients: { maxNorm: -1 } }),
    { message: /clipGradients\.maxNorm: expected a positive number/ });
});

// Serial: no other test allocates meanwhile (ava runs serial tests first, one at a time).
test.serial('memoryStats counts live tensors and bytes per device; training steps leak none', async (t) => {
  (globalThis as { gc?: () => void }).gc?.();  // earlier tests' garbage, so only this test's tensors move the counts
  const before = memoryStats().cpu;
  const a = Tensor.zeros([10, 10]);
  const view = a.reshape([100]);
  const after = memoryStats().cpu;
  t.is(after.tensors - before.tensors, 2);
  t.is(after.storages - before.storages, 1, 'a view shares its storage');
  t.is(after.bytes - before.bytes, 400);
  a.dispose();
  t.is(memoryStats().cpu.storages - before.storages, 1, 'the view keeps the memory');
  view.dispose();
  const live = ({ tensors, storages, bytes }: { tensors: number; storages: number; bytes: number }) => ({ tensors, storages, bytes });
  t.deepEqual(live(memoryStats().cpu), live(before));
  t.true(memoryStats().cpu.peakBytes >= before.bytes + 400, 'the peak remembers the 400 bytes');
  t.deepEqual(Object.keys(memoryStats()), ['cpu', 'cuda']);

  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  const trainer = new Trainer(model, { seed: 1, loss: 'crossEntropy' });
  const data = toyVolume(4);
  await trainer.fit({ data, size: [3, 6, 6], steps: 1, batchSize: 2 });  // creates the optimizer state
  const settled = live(memoryStats().cpu);
  await trainer.fit({ data, size: [3, 6, 6], steps: 5, batchSize: 2, validation: { data, windows: 2, every: 2 } });
  t.deepEqual(live(memoryStats().cpu), settled, 'five more steps and two validations leave nothing behind');
});

test('an epoch is a pass over the data; the paper\'s schedule counts updates', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  const seen: Progress[] = [];
  // 6x16x16 = 1536 voxels; a step trains on 2 windows of 3x8x8 = 384: 4 steps an epoch.
  await new Trainer(model, { seed: 1 }).fit({ data: toyVolume(5), size: [3, 8, 8], batchSize: 2, epochs: 2, onProgress: (p) => seen.push(p) });
  t.is(seen.length, 8);
  t.deepEqual(seen.map((p) => p.epoch), [0, 0, 0, 1, 1, 1, 1, 2]);
  t.is(seen[0]!.epochs, 2);
  t.true(seen[1]!.lr < seen[0]!.lr, 'the paper schedule decays per update within an epoch');
});

test('writing an integer type that cannot hold the values: NIfTI scales and reports, TIFF refuses unless allowed', (t) => {
  const dir = tmp();
  const data = Float32Array.from({ length: 2 * 4 * 5 }, (_, i) => -3.25 + i * 0.17);
  const volume = { data, shape: [2, 4, 5], dtype: 'float32' };
  const exact = writeVolume(path.join(dir, 'labels.nii'), { ...volume, data: data.map((v) => Math.max(0, Math.round(v))) }, { dtype: 'uint8' });
  t.deepEqual([exact.rounded, exact.clipped, exact.scale], [0, 0, undefined], 'integers in range are stored as they are');
  const report = writeVolume(path.join(dir, 'scaled.nii.gz'), volume, { dtype: 'int16' });
  t.is(report.clipped, 0);
  t.true(report.rounded > 0 && report.scale !== undefined);
  const back = readVolume(path.join(dir, 'scaled.nii.gz')).data;
  const worst = back.reduce((m, v, i) => Math.max(m, Math.abs(v - data[i]!)), 0);
  t.true(worst <= report.maxError + 1e-6 && worst < 1e-3, `read back within ${worst}`);
  const err = t.throws(() => writeVolume(path.join(dir, 'x.tif'), volume, { dtype: 'uint8' })) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  // 17 values are below -0.5 (clipped to 0); of the other 23, 22 are not integers (rounded).
  t.regex(err.message, /uint8 cannot hold these values: 22 voxels \(55\.0%\) would be rounded and 17 \(42\.5%\) clipped to 0\.\.255, changing values by up to 3\.25/);
  t.false(fs.existsSync(path.join(dir, 'x.tif')), 'nothing written');
  const allowed = writeVolume(path.join(dir, 'x.tif'), volume, { dtype: 'uint8', allowLossy: true });
  t.is(allowed.clipped, 17);
  t.deepEqual([...readVolume(path.join(dir, 'x.tif')).data.slice(0, 2)], [0, 0]);
});

test('argument checks: fc longer than hidden, a missing batch axis, absurd tensor sizes', async (t) => {
  t.throws(() => presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4, 4], fc: [3, 3] }), { message: /expected at most 1 fc entries/ });
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3 });
  await t.throwsAsync(model.predict(Tensor.zeros([1, 8, 32, 32])), { message: /received \(1, 8, 32, 32\); the batch axis is missing: reshape to \(1, \.\.\.\)/ });
  const huge = t.throws(() => Tensor.zeros([1e6, 1e6, 1e6, 1e6])) as Error & { code?: string };
  t.is(huge.code, 'ERR_SHAPE');
  t.regex(huge.message, /holds more elements than any memory/);
  const big = t.throws(() => Tensor.zeros([1 << 20, 1 << 20, 1 << 10])) as Error & { code?: string };
  t.is(big.code, 'ERR_MEMORY');
  t.regex(big.message, /could not allocate/);
});
