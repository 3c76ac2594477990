// Nothing silently wrong (issue "Usability and reliability"): raw scores are refused as
// probabilities and taken as PyTorch takes them with input 'logits'; and the refusals
// that guard training, files and checkpoints.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientTape, layers, ops, sequential, Tensor, Trainer, VolumeSampler } from '../lib';
import { assertClose } from './helpers';

interface LogitCase { shape: number[]; logits: number[]; labels: number[]; mask: number[] | null; weights: number[] | null; loss: number; grad: number[] }

for (const name of ['ce_logits_plain', 'ce_logits_weighted_masked', 'ce_logits_large_scores']) {
  test(`cross-entropy of logits equals PyTorch's F.cross_entropy, value and gradient: ${name}`, async (t) => {
    const c = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'loss', `${name}.json`), 'utf8')) as LogitCase;
    const x = Tensor.fromArray(c.logits, c.shape);
    const spatial = [c.shape[0]!, ...c.shape.slice(2)];
    const labels = Tensor.fromArray(c.labels, spatial);
    const mask = c.mask ? Tensor.fromArray(c.mask, spatial) : undefined;
    const classWeights = c.weights ? Tensor.fromArray(c.weights, [c.weights.length]) : undefined;
    const tape = new GradientTape();
    tape.watch(x);
    const loss = await tape.record(() => ops.loss(x, labels, { kind: 'crossEntropy', input: 'logits', ...(mask ? { mask } : {}), ...(classWeights ? { classWeights } : {}) }));
    t.true(Math.abs(loss.toArray()[0]! - c.loss) <= 1e-5 * Math.max(1, Math.abs(c.loss)), `loss ${loss.toArray()[0]} vs PyTorch ${c.loss}`);
    const grad = (await tape.backward(loss)).get(x)!;
    assertClose(t, grad.toArray(), Float32Array.from(c.grad), { abs: 1e-6, rel: 1e-4 }, 'gradient');
    tape.dispose();
  });
}

test('raw scores given as probabilities are refused, naming the fix; probabilities pass', (t) => {
  const logits = Tensor.fromArray([2.1, -0.3, 0.4, 1.7, -1.2, 0.8], [1, 2, 1, 1, 3]);
  const labels = Tensor.fromArray([0, 1, 1], [1, 1, 1, 3]);
  for (const kind of ['crossEntropy', 'squaredError', 'softDice'] as const) {
    const error = t.throws(() => ops.loss(logits, labels, { kind })) as Error & { code?: string };
    t.is(error.code, 'ERR_ARGUMENT');
    t.regex(error.message, /expected class probabilities .* received values in \[-1\.20, 2\.10\].*input: 'logits'/);
  }
  const probs = ops.softmax(logits);
  t.true(ops.loss(probs, labels, { kind: 'crossEntropy' }).toArray()[0]! > 0);
  // The same loss from the scores, as PyTorch computes it.
  assertClose(t, ops.loss(logits, labels, { kind: 'crossEntropy', input: 'logits' }).toArray(), ops.loss(probs, labels, { kind: 'crossEntropy' }).toArray(),
    { abs: 1e-6, rel: 1e-5 }, 'logits and their softmax give one loss');
  assertClose(t, ops.loss(logits, labels, { kind: 'softDice', input: 'logits' }).toArray(), ops.loss(probs, labels, { kind: 'softDice' }).toArray(),
    { abs: 1e-6, rel: 1e-5 }, 'other kinds take the softmax of logits');
  t.throws(() => ops.loss(logits, labels, { kind: 'crossEntropy', input: 'scores' as never }), { message: /expected input 'probabilities' or 'logits'/ });
});

test('a model without a softmax head trains on cross-entropy of logits to a positive, falling loss', async (t) => {
  const [d, h, w] = [2, 12, 12];
  const volume = Float32Array.from({ length: d * h * w }, (_, i) => Math.sin(i * 0.31));
  const labels = Float32Array.from(volume, (v) => (v > 0.2 ? 1 : 0));
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels, flip: {} });
  const model = sequential([layers.conv({ out: 8, kernel: [1, 3, 3], padding: 'same' }), layers.relu(), layers.conv({ out: 2, kernel: [1, 1, 1] })],
    { inChannels: 1, seed: 2 });
  const losses: number[] = [];
  const trainer = new Trainer(model, { seed: 1, optimizer: { kind: 'adam', lr: 0.01 }, loss: { kind: 'crossEntropy', input: 'logits' } });
  await trainer.fit({ data, size: [2, 8, 8], steps: 40, onProgress: (p) => losses.push(p.loss) });
  t.true(losses.every((l) => l > 0), 'cross-entropy is never negative');
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5, last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  t.true(last < 0.7 * first, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  // The same model on the default input is refused before any update.
  await t.throwsAsync(new Trainer(model, { loss: 'crossEntropy' }).fit({ data, size: [2, 8, 8], steps: 1 }), { message: /expected class probabilities/ });
});

test('schedules say which fields they need and take the optimizer\'s lr as their base; memoryPlan checks options as fit does', async (t) => {
  const [d, h, w] = [2, 8, 8];
  const volume = Float32Array.from({ length: d * h * w }, (_, i) => Math.cos(i));
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels: Float32Array.from(volume, (v) => (v > 0 ? 1 : 0)), flip: {} });
  const model = sequential([layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same' }), layers.softmax()], { inChannels: 1, seed: 1 });
  const lrs: number[] = [];
  await new Trainer(model, { optimizer: { kind: 'sgd', lr: 0.2 }, schedule: { kind: 'step', every: 1, factor: 0.5 }, loss: 'crossEntropy' })
    .fit({ data, size: [2, 8, 8], steps: 3, stepsPerEpoch: 1, onProgress: (p) => lrs.push(p.lr) });
  t.deepEqual(lrs, [0.2, 0.1, 0.05], 'the step schedule decays the optimizer\'s rate');
  t.throws(() => new Trainer(model, { optimizer: { kind: 'sgd', lr: 0.2 }, schedule: { kind: 'exponential', gama: 0.9 } as never }),
    { message: /schedule \(exponential\): unknown option 'gama'; known: kind, gamma, lr/ });
  t.throws(() => new Trainer(model, { optimizer: { kind: 'sgd' }, schedule: { kind: 'step', every: 2, factor: 0.5 } }),
    { message: /schedule \(step\): needs a base rate: give lr here or on the optimizer/ });
  t.throws(() => new Trainer(model, { optimizer: { kind: 'sgd', lr: 1 }, schedule: { kind: 'step', every: 2 } as never }),
    { message: /schedule \(step\): needs every and factor; factor is missing/ });
  const trainer = new Trainer(model);
  t.throws(() => trainer.memoryPlan({ data, size: [2, 8, 8], steps: 1, batch: 2 } as never), { message: /memoryPlan: unknown option 'batch'/ });
});

test('preset options are checked at run time; pyramidNet\'s fc follows hidden when only hidden is given', async (t) => {
  const { presets } = await import('../lib');
  t.throws(() => presets.n4({ clases: 3 } as never), { code: 'ERR_ARGUMENT', message: /n4: unknown option 'clases'; known: classes, seed, init/ } as never);
  t.throws(() => presets.vd2d3d({ recursiv: true } as never), { message: /vd2d3d: unknown option 'recursiv'/ });
  t.throws(() => presets.pyramidNet({ inChannels: 1, classes: 2, hiden: [3] } as never), { message: /pyramidNet: unknown option 'hiden'/ });
  const one = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3] });
  t.deepEqual(one.layers.map((l) => l.type), ['pyramidLstm', 'pixelwise', 'softmax']);
  const two = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3, 5] });
  t.deepEqual(two.layers.map((l) => l.outChannels), [3, 3, 3, 5, 2, 2], 'the FC between keeps the first layer\'s width');
  t.is(presets.pyramidNet({ inChannels: 1, classes: 2 }).layers[1]!.outChannels, 25, 'the paper\'s fc with the paper\'s hidden');
});

test('with no budget, a step is planned against the memory available now, and a window that cannot fit is refused before any work', async (t) => {
  const { availableMemory, estimateStepMemory, presets } = await import('../lib');
  const cpu = availableMemory('cpu');
  t.true(cpu.total > 0 && cpu.free > 0 && cpu.free <= cpu.total, `available ${cpu.free} of ${cpu.total}`);
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const size: [number, number, number] = [20, 256, 256];
  const volume = new Float32Array(20 * 256 * 256);
  const data = new VolumeSampler({ volume, shape: [1, 20, 256, 256], labels: new Float32Array(volume.length), flip: {} });
  const saved = process.env.SEGVOL_MEMORY_BUDGET;
  delete process.env.SEGVOL_MEMORY_BUDGET;
  try {
    const [plan] = new Trainer(model).memoryPlan({ data, size, steps: 1 });
    const estimate = plan!.estimate!;
    t.is(estimate.budget.source, 'available');
    t.true(estimate.budget.bytes < cpu.total, 'a margin is kept');
    t.true(estimate.peakBytes <= estimate.budget.bytes, 'the chosen schedule fits');
    const fastest = estimateStepMemory(model, [1, 1, ...size])!;
    if (fastest.peakBytes > estimate.budget.bytes) t.true(Boolean(estimate.schedule.recompute || estimate.schedule.scanGroups), 'a leaner schedule than gates kept');
    // A window no schedule fits in what is available: refused before any step, naming the available memory.
    const huge: [number, number, number] = [64, 4096, 4096];
    const error = t.throws(() => new Trainer(model).memoryPlan({ data, size: huge, steps: 1 })) as Error & { code?: string };
    t.is(error.code, 'ERR_MEMORY');
    t.regex(error.message, /over the memory available now .*set memoryBudget/);
    // A fixed schedule that cannot fit is refused too.
    t.throws(() => new Trainer(model, { memorySchedule: { recompute: true } }).memoryPlan({ data, size: huge, steps: 1 }), { code: 'ERR_MEMORY', message: /with the given memorySchedule/ } as never);
  } finally {
    if (saved !== undefined) process.env.SEGVOL_MEMORY_BUDGET = saved;
    model.dispose();
  }
});

test.serial('tidy frees what a hand-written step creates; a loop of trainStep keeps the live tensor count flat', async (t) => {
  const { memoryStats, Optimizer, tidy, keep, trainStep } = await import('../lib');
  const model = sequential([layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same' }), layers.tanh(), layers.conv({ out: 2, kernel: [1, 1, 1] }), layers.softmax()],
    { inChannels: 1, seed: 3 });
  const x = Tensor.fromArray(Float32Array.from({ length: 2 * 8 * 8 }, (_, i) => Math.sin(i)), [1, 1, 2, 8, 8]);
  const labels = Tensor.fromArray(Float32Array.from({ length: 2 * 8 * 8 }, (_, i) => i % 2), [1, 2, 8, 8]);
  const optimizer = new Optimizer({ kind: 'sgd', lr: 0.1 });
  // A forward function that leaves intermediates behind, as a hand-written model would.
  const lossOf = async () => {
    const a = await model.forward(x, { training: true });
    const b = ops.scale(a, 1);  // an intermediate nobody disposes
    const c = ops.mul(b, ops.scale(b, 0.5));  // more of them
    return ops.loss(ops.softmax(c), labels, { kind: 'squaredError' });
  };
  await trainStep(model, optimizer, lossOf);  // the optimizer's state is created on the first step
  // Count after the garbage collector has freed what earlier tests forgot (it would lower the count mid-way).
  const live = () => {
    (globalThis as { gc?: () => void }).gc?.();
    return memoryStats().cpu.tensors;
  };
  const before = live();
  for (let i = 0; i < 5; ++i) await trainStep(model, optimizer, lossOf);
  t.is(live(), before, 'no tensor outlives its step');
  const kept = await tidy(async () => {
    const waste = ops.scale(x, 2);
    const cache = keep(ops.scale(x, 3));
    const result = ops.add(waste, cache);
    return { result, cache };
  });
  t.false(kept.result.disposed);
  t.false(kept.cache.disposed);
  t.is(live(), before + 2, 'only the returned and the kept tensors stay');
  kept.result.dispose();
  kept.cache.dispose();
});

test('a 2D image is a one-slice volume for a network of volumes: model.predict, predictVolume and segvol predict', async (t) => {
  const { predictVolume, writeNpy, readNpy } = await import('../lib');
  const model = sequential([layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same' }), layers.relu(), layers.conv({ out: 2, kernel: [1, 1, 1] }), layers.softmax()],
    { inChannels: 1, seed: 1 });
  const data = Float32Array.from({ length: 12 * 10 }, (_, i) => Math.sin(i * 0.7));
  const image = Tensor.fromArray(data, [1, 1, 12, 10]);
  const volume = Tensor.fromArray(data, [1, 1, 1, 12, 10]);
  const fromImage = await model.predict(image), fromVolume = await model.predict(volume);
  t.deepEqual(fromImage.shape, [1, 2, 12, 10]);
  t.deepEqual([...fromImage.toArray()], [...fromVolume.toArray()]);
  const stitched = await predictVolume(model, image, { window: [8, 8] as never });
  t.deepEqual(stitched.shape, [1, 2, 12, 10]);
  const dir = fs.mkdtempSync(path.join((await import('node:os')).tmpdir(), 'segvol-2d-'));
  writeNpy(path.join(dir, 'image.npy'), { shape: [12, 10], data });
  model.save(path.join(dir, 'model.safetensors'));
  const { spawnSync } = await import('node:child_process');
  const main = fs.existsSync(path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js')) ? [path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js')]
    : ['--require=ts-node/register', path.join(__dirname, '..', 'lib', 'cli', 'main.ts')];
  const r = spawnSync(process.execPath, [...main, 'predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'image.npy'),
    '--out', path.join(dir, 'labels.npy'), '--normalize', 'none'], { encoding: 'utf8' });
  // A network that cannot take one slice (PyraMiD-LSTM's kernels span z) says so in the input's terms.
  const { presets } = await import('../lib');
  const pyramid = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], kernel: 3, seed: 1 });
  await t.throwsAsync(pyramid.predict(image), { code: 'ERR_SHAPE', message: /expected a volume \(N, 1, D, H, W\) with every spatial axis >= the kernel 3, received \(1, 1, 12, 10\)/ } as never);
  t.is(r.status, 0, r.stderr);
  const labels = readNpy(path.join(dir, 'labels.npy'));
  t.deepEqual(labels.shape, [12, 10], 'the image keeps its shape');
  t.deepEqual([...labels.data], [...(await model.segment(image)).toArray()]);
  for (const x of [image, volume, fromImage, fromVolume, stitched]) x.dispose();
});

test('a NaN stop names only a checkpoint of this run; Optimizer.step uses the configured lr when none is given', async (t) => {
  const { Optimizer, writeSafetensors } = await import('../lib');
  const dir = fs.mkdtempSync(path.join((await import('node:os')).tmpdir(), 'segvol-stale-'));
  const ckpt = path.join(dir, 'm.safetensors');
  writeSafetensors(ckpt, new Map(), { note: 'an earlier, unrelated run' });
  const [d, h, w] = [2, 8, 8];
  const volume = new Float32Array(d * h * w).fill(NaN);
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels: new Float32Array(d * h * w), flip: {} });
  const model = sequential([layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same' }), layers.softmax()], { inChannels: 1, seed: 1 });
  const error = await t.throwsAsync(new Trainer(model).fit({ data, size: [2, 8, 8], steps: 1, checkpoint: { path: ckpt } })) as Error & { code?: string };
  t.is(error.code, 'ERR_NON_FINITE');
  t.notRegex(error.message, /last good checkpoint/, 'the stale file is no checkpoint of this run');
  const param = Tensor.full([2], 1);
  param.requiresGrad = true;
  const optimizer = new Optimizer({ kind: 'sgd', lr: 0.5, momentum: 0 });
  optimizer.step(new Map([['p', param]]), new Map([['p', Tensor.full([2], 1)]]));
  t.deepEqual([...param.toArray()], [0.5, 0.5], 'the configured lr');
  t.throws(() => new Optimizer({ kind: 'sgd' }).step(new Map([['p', param]]), new Map([['p', Tensor.full([2], 1)]])),
    { message: /no learning rate: pass it to step\(params, grads, lr\), or configure one/ });
});
