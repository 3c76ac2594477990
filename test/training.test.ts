import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  classStatistics, classWeightsFromCounts, classWeightsFromStatistics, computeLoss, learningRate, Optimizer, presets, Tensor, Trainer, VolumeSampler, type LossKind,
} from '../lib';
import { assertClose, rng } from './helpers';

const kinds: LossKind[] = ['squaredError', 'crossEntropy', 'softDice', 'softIoU'];

function softmaxProbs(n: number, c: number, s: number, random: () => number): Float32Array {
  const out = new Float32Array(n * c * s);
  for (let b = 0; b < n; ++b)
    for (let v = 0; v < s; ++v) {
      let total = 0;
      for (let k = 0; k < c; ++k) total += (out[(b * c + k) * s + v] = Math.exp(3 * (random() - 0.5)));
      for (let k = 0; k < c; ++k) out[(b * c + k) * s + v]! /= total;
    }
  return out;
}

function lossInputs(seed: number) {
  const random = rng(seed);
  const [n, c, s] = [2, 3, 20];
  const probs = softmaxProbs(n, c, s, random);
  const labels = Float32Array.from({ length: n * s }, () => Math.floor(random() * c));
  const mask = Float32Array.from({ length: n * s }, (_, i) => (i % 7 === 3 ? 0 : 1));
  return { probs, labels, mask, shape: [n, c, 4, 5], labelShape: [n, 4, 5], c };
}

for (const kind of kinds) {
  test(`loss ${kind}: optimized matches reference (mask, class weights) and finite differences`, (t) => {
    const { probs, labels, mask, shape, labelShape, c } = lossInputs(3);
    const weights = Tensor.fromArray([0.5, 2, 1], [c]);
    const options = { kind, mask: Tensor.fromArray(mask, labelShape), classWeights: weights };
    const p = Tensor.fromArray(probs, shape);
    const y = Tensor.fromArray(labels, labelShape);
    const a = computeLoss('optimized', p, y, options);
    const b = computeLoss('reference', p, y, options);
    t.true(Math.abs(a.loss - b.loss) < 1e-6 * Math.max(1, Math.abs(b.loss)), `${a.loss} vs ${b.loss}`);
    assertClose(t, a.grad, b.grad, { abs: 1e-6, rel: 1e-4 }, 'gradient');
    const grad = a.grad.toArray();
    const step = 1e-3;
    for (const i of [0, 5, 17, 44, 61, 100, 119]) {
      const plus = Float32Array.from(probs);
      plus[i]! += step;
      const minus = Float32Array.from(probs);
      minus[i]! -= step;
      const numeric = (computeLoss('reference', Tensor.fromArray(plus, shape), y, options).loss -
        computeLoss('reference', Tensor.fromArray(minus, shape), y, options).loss) / (2 * step);
      t.true(Math.abs(numeric - grad[i]!) < 1e-3 + 1e-2 * Math.abs(numeric), `d/dp[${i}] ${grad[i]} vs ${numeric}`);
    }
  });
}

test('losses: hand-checked values', (t) => {
  // Two voxels, two classes: p = (0.8, 0.2) labelled 0 and (0.4, 0.6) labelled 1.
  const p = Tensor.fromArray([0.8, 0.4, 0.2, 0.6], [1, 2, 2]);
  const y = Tensor.fromArray([0, 1], [1, 2]);
  const se = computeLoss('optimized', p, y, { kind: 'squaredError' }).loss;
  t.true(Math.abs(se - (0.04 + 0.04 + 0.16 + 0.16) / 2) < 1e-6);
  const ce = computeLoss('optimized', p, y, { kind: 'crossEntropy' }).loss;
  t.true(Math.abs(ce - -(Math.log(0.8) + Math.log(0.6)) / 2) < 1e-6);
  const perfect = computeLoss('optimized', Tensor.fromArray([1, 0, 0, 1], [1, 2, 2]), y, { kind: 'softDice' }).loss;
  t.true(Math.abs(perfect) < 1e-5);
  const err = t.throws(() => computeLoss('optimized', p, Tensor.fromArray([0, 2], [1, 2]), { kind: 'crossEntropy' })) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /class ids 0\.\.1 in the labels, received 2\.0+ at flat index 1/);
  const masked = computeLoss('optimized', p, Tensor.fromArray([0, 7], [1, 2]), { kind: 'crossEntropy', mask: Tensor.fromArray([1, 0], [1, 2]) });
  t.true(Math.abs(masked.loss + Math.log(0.8)) < 1e-6, 'a masked voxel may hold any label');
  t.throws(() => computeLoss('optimized', p, Tensor.fromArray([0, 1, 1], [3]), { kind: 'crossEntropy' }), { message: /labels of shape \(1, 2\)/ });
});

test('class weights: inverse frequency (ZNN) and median frequency balancing', (t) => {
  const inv = classWeightsFromCounts([100, 300, 0, 600], 'inverseFrequency');
  const total = 1 / 100 + 1 / 300 + 1 / 600;
  t.true(Math.abs(inv[0]! - 1 / 100 / total) < 1e-7 && Math.abs(inv[1]! - 1 / 300 / total) < 1e-7);
  t.is(inv[2], 0);
  const med = classWeightsFromCounts([100, 300, 0, 600], 'medianCount');
  // frequencies over all voxels 0.1, 0.3, 0.6 -> median 0.3
  t.true(Math.abs(med[0]! - 3) < 1e-6 && Math.abs(med[1]! - 1) < 1e-6 && Math.abs(med[3]! - 0.5) < 1e-6);
  t.is(med[2], 0);
});

test('median frequency balancing as Eigen & Fergus define it (Tseng et al.): frequencies over the images holding the class', (t) => {
  // Three 2x2 images:      class 0   class 1   class 2
  //   0 0 | 0 0 | 0 0      3+2+4=9   1+1=2     1
  //   0 1 | 1 2 | 0 0
  // Voxels of the images holding the class: 12 (all three), 8 (images 1, 2), 4 (image 2).
  // freq = 9/12, 2/8, 1/4 = 0.75, 0.25, 0.25; median 0.25; weights 1/3, 1, 1.
  const labels = Float32Array.from([0, 0, 0, 1, 0, 0, 1, 2, 0, 0, 0, 0]);
  const stats = classStatistics(labels, 4, 4);
  t.deepEqual(stats, { counts: [9, 2, 1, 0], imageTotals: [12, 8, 4, 0] });
  const w = classWeightsFromStatistics(stats, 'medianFrequency');
  t.true(Math.abs(w[0]! - 1 / 3) < 1e-6 && Math.abs(w[1]! - 1) < 1e-6 && Math.abs(w[2]! - 1) < 1e-6, `weights ${[...w]}`);
  t.is(w[3], 0, 'an absent class weighs 0');
  // Over all voxels (medianCount) class 2 would weigh twice class 1: the difference the paper's definition makes.
  const byCount = classWeightsFromCounts(stats.counts, 'medianCount');
  t.true(Math.abs(byCount[2]! - 2) < 1e-6 && Math.abs(byCount[0]! - 2 / 9) < 1e-6);
  // Masked voxels count in neither.
  const masked = classStatistics(labels, 4, 3, Float32Array.from([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]));
  t.deepEqual(masked, { counts: [7, 2, 1], imageTotals: [8, 6, 2] });  // image 2 keeps its 1 and 2 only
  t.throws(() => classWeightsFromCounts([1, 2], 'medianFrequency'), { message: /expected the voxels of the images holding each class/ });
  t.throws(() => classStatistics(labels, 5, 3), { message: /12 labels are not whole images of 5 voxels/ });
  t.throws(() => classWeightsFromCounts([1, 2], 'median' as never), { message: /expected inverseFrequency, medianFrequency, medianCount/ });
});

test('schedules: the paper\'s rate halves every 100 epochs towards 1e-6', (t) => {
  t.true(Math.abs(learningRate({ kind: 'paper' }, 0) - 0.010001) < 1e-12);
  t.true(Math.abs(learningRate({ kind: 'paper' }, 100) - 0.005001) < 1e-12);
  t.is(learningRate({ kind: 'step', lr: 1, every: 10, factor: 0.1 }, 25), 0.010000000000000002);
});

test('optimizers: optimized matches reference over several steps; RMSprop follows eqs. 14-18', (t) => {
  for (const kind of ['rmspropMomentum', 'sgd', 'adam'] as const) {
    const init = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const a = new Map([['w', Tensor.fromArray(init, [5, 10])]]);
    const b = new Map([['w', Tensor.fromArray(init, [5, 10])]]);
    const oa = new Optimizer({ kind, weightDecay: 0.01 }, 'optimized');
    const ob = new Optimizer({ kind, weightDecay: 0.01 }, 'reference');
    for (let s = 0; s < 5; ++s) {
      const g = new Map([['w', Tensor.fromArray(Float32Array.from({ length: 50 }, (_, i) => Math.cos(i * (s + 1))), [5, 10])]]);
      oa.step(a, g, 0.01);
      ob.step(b, g, 0.01);
    }
    assertClose(t, a.get('w')!, b.get('w')!, { abs: 1e-6, rel: 1e-5 }, kind);
  }
  // One element by hand: g = 2, MS = 0.1 * 4 = 0.4, G = 2 / (sqrt(0.4) + 1e-5), M = 0.1 * G, theta = 1 - 0.01 * M.
  const p = new Map([['w', Tensor.fromArray([1], [1])]]);
  new Optimizer({ kind: 'rmspropMomentum' }).step(p, new Map([['w', Tensor.fromArray([2], [1])]]), 0.01);
  const expected = 1 - 0.01 * 0.1 * (2 / (Math.sqrt(0.4) + 1e-5));
  t.true(Math.abs(p.get('w')!.toArray()[0]! - expected) < 1e-6);
  t.throws(() => new Optimizer({ kind: 'rmsprop' as 'sgd' }), { message: /'rmspropMomentum', 'sgd' or 'adam'/ });
  t.throws(() => new Optimizer({ kind: 'sgd', learningRate: 1 } as never), { message: /unknown option 'learningRate'; known: kind, lr,/ });
  t.throws(() => new Optimizer({ kind: 'sgd', lr: -1 }), { message: /expected lr >= 0/ });
});

/** A learnable toy: class 1 where the input is bright. */
function toyData(seed: number) {
  const random = rng(seed);
  const [D, H, W] = [6, 14, 14];
  const volume = new Float32Array(D * H * W);
  const labels = new Float32Array(D * H * W);
  for (let i = 0; i < volume.length; ++i) {
    labels[i] = random() < 0.3 ? 1 : 0;
    volume[i] = labels[i]! ? 0.8 + 0.1 * random() : -0.8 + 0.1 * random();
  }
  return new VolumeSampler({ volume, shape: [1, D, H, W], labels });
}

function toyModel(seed = 1) {
  return presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed });
}

const fitOptions = { steps: 6, size: [3, 6, 6] as const };

test('training lowers the loss, and two runs with one seed give bit-identical weights', async (t) => {
  const runs: Float32Array[][] = [];
  let first = NaN;
  let last = NaN;
  for (let r = 0; r < 2; ++r) {
    const model = toyModel();
    const trainer = new Trainer(model, { seed: 7, optimizer: { kind: 'adam' }, schedule: { kind: 'constant', lr: 0.05 } });
    const losses: number[] = [];
    await trainer.fit({ data: toyData(1), steps: 30, size: [3, 6, 6], onProgress: (p) => losses.push(p.loss) });
    first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    runs.push([...model.parameters().values()].map((p) => p.toArray()));
  }
  t.true(last < first * 0.7, `loss ${first} -> ${last}`);
  t.deepEqual(runs[0], runs[1]);
});

test('resume from a checkpoint ends with the same weights as an uninterrupted run', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-ckpt-'));
  const straight = toyModel();
  await new Trainer(straight, { seed: 3 }).fit({ data: toyData(2), ...fitOptions });

  const first = toyModel();
  const ac = new AbortController();
  const ckpt = path.join(dir, 'run.safetensors');
  const interrupted = await new Trainer(first, { seed: 3 }).fit({
    data: toyData(2), ...fitOptions, signal: ac.signal, checkpoint: { path: ckpt, every: 1 },
    onProgress: (p) => {
      if (p.step === 3) ac.abort();
    },
  });
  t.true(interrupted.aborted);
  t.is(interrupted.steps, 3);
  const resumedModel = toyModel(99);  // other initial weights: resume must replace them
  const trainer = new Trainer(resumedModel, { seed: 12345 });
  trainer.resume(ckpt);
  t.is(trainer.step, 3);
  const done = await trainer.fit({ data: toyData(2), ...fitOptions, checkpoint: { path: ckpt } });
  t.is(done.steps, 6);
  const a = [...straight.parameters().values()].map((p) => p.toArray());
  const b = [...resumedModel.parameters().values()].map((p) => p.toArray());
  t.deepEqual(a, b);
  t.deepEqual(fs.readdirSync(dir).sort(), ['run.log.jsonl', 'run.safetensors', 'run.safetensors.optimizer'], 'no temporary files left');
  // The log beside the checkpoint: 3 steps before the stop; the resumed fit appends steps 4..6.
  const log = fs.readFileSync(path.join(dir, 'run.log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
  t.deepEqual(log.map((e) => e.step), [1, 2, 3, 4, 5, 6]);
  t.true(log.every((e) => Number.isFinite(e.loss)));
});

test('NaN input stops training with a clear error naming the input, and keeps the last good checkpoint', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-nan-'));
  const ckpt = path.join(dir, 'm.safetensors');
  const D = 6;
  const volume = new Float32Array(D * 14 * 14).fill(0.5);
  const labels = new Float32Array(D * 14 * 14);
  const good = new Trainer(toyModel(), { seed: 1 });
  await good.fit({ data: new VolumeSampler({ volume, shape: [1, D, 14, 14], labels }), steps: 2, size: [3, 6, 6], checkpoint: { path: ckpt } });
  const before = fs.readFileSync(ckpt);
  volume.fill(NaN);
  const err = await t.throwsAsync(good.fit({
    data: new VolumeSampler({ volume, shape: [1, D, 14, 14], labels }), steps: 4, size: [3, 6, 6], checkpoint: { path: ckpt, every: 1 },
  })) as Error & { code?: string };
  t.is(err.code, 'ERR_NON_FINITE');
  t.regex(err.message, /NaN or infinite value appeared in the input 'input' at step 3; training stopped before updating the weights; the last good checkpoint .*m\.safetensors is kept/);
  t.deepEqual(fs.readFileSync(ckpt), before);
});

test('bad configuration: unknown keys, another model\'s checkpoint, missing files', async (t) => {
  t.throws(() => new Trainer(toyModel(), { seeed: 1 } as never), { message: /unknown option 'seeed'/ });
  await t.throwsAsync(new Trainer(toyModel()).fit({ data: toyData(1), epochs: 1, batch: 2 } as never), { message: /unknown option 'batch'/ });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bad-'));
  const ckpt = path.join(dir, 'a.safetensors');
  await new Trainer(toyModel(), {}).fit({ data: toyData(1), steps: 1, size: [3, 6, 6], checkpoint: { path: ckpt } });
  const other = presets.pyramidNet({ inChannels: 1, classes: 3, hidden: [3], fc: [], kernel: 3 });
  const err = t.throws(() => new Trainer(other).resume(ckpt)) as Error & { code?: string };
  t.is(err.code, 'ERR_SHAPE');
  t.regex(err.message, /layers\.0\.dir0\.wx: model \(12, 1, 3, 3\) vs file \(8, 1, 3, 3\)/);
  const missing = t.throws(() => new Trainer(toyModel()).resume(path.join(dir, 'nope.safetensors'))) as Error & { code?: string };
  t.is(missing.code, 'ERR_ARGUMENT');
  t.regex(missing.message, /cannot read .*nope\.safetensors/);
});

// The heavy layers run on the compute thread, so timers fire while a step computes.
// (How long the event loop waits is a timing, measured by npm run bench -- pyramid, not asserted.)
test('timers fire while a training step computes off the main thread', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [8], fc: [], kernel: 5, seed: 2 });
  const volume = Float32Array.from({ length: 8 * 40 * 40 }, (_, i) => Math.sin(i));
  const data = new VolumeSampler({ volume, shape: [1, 8, 40, 40], labels: volume.map((v) => (v > 0 ? 1 : 0)) });
  let ticks = 0;
  const timer = setInterval(() => ++ticks, 1);
  await new Trainer(model, { seed: 1 }).fit({ data, steps: 1, size: [8, 40, 40] });
  clearInterval(timer);
  t.true(ticks > 0, 'no timer fired while the step ran: the main thread was blocked');
});
