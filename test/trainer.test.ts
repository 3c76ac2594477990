// The model core through the Trainer: 'valid' networks trained on output
// windows (one step's gradients against PyTorch), batches (a batch's gradient is
// the mean of its windows'), multi-input graphs over phases with an exact resume,
// two-phase training as in the ConvLSTM paper, numerical safety, initialisers.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  classWeightsFromStatistics, computeLoss, containsClass, graph, initialize, layers, Model, ops, readSafetensors, sequential, Tensor, Trainer,
  VolumeSampler, type DataSource, type LayerBuilder, type ModelInput, type ModelInputShape, type Progress, type RunOptions, type SampledWindow,
  type Size3, type Random, type NamedArray,
} from '../lib';
import { recordOp } from '../lib/autograd/tape';
import { syntheticEm } from '../lib/data/synthetic';
import { assertClose, hashed, randomArray, rng } from './helpers';

const fixtures = path.join(__dirname, 'fixtures', 'convnet');

/** The fixture script's weights: biases U(-0.1, 0.1), weights uniform with std 1/sqrt(fanIn), in parameter order. */
function hashedWeights(params: Map<string, Tensor>): Map<string, NamedArray> {
  return new Map([...params].map(([name, p], k) => {
    const u = hashed(p.size, k);
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    const data = Float32Array.from(u, (v) => (p.rank === 1 ? 0.1 * (2 * v - 1) : (2 * v - 1) * Math.sqrt(3) / Math.sqrt(fanIn)));
    return [name, { shape: [...p.shape], data }];
  }));
}

type Spec = ['conv', number, number[], number[], 'tanh' | 'relu' | 'softmax'] | ['filter', number[], number[]];

function build(spec: readonly Spec[], seed = 1) {
  const builders: LayerBuilder[] = [];
  for (const s of spec) {
    if (s[0] === 'conv') {
      builders.push(layers.conv({ out: s[1], kernel: s[2], dilation: s[3] }), layers[s[4]]());
    } else {
      builders.push(layers.maxFilter({ kernel: s[1], dilation: s[2] }));
    }
  }
  return sequential(builders, { inChannels: 1, seed });
}

const n4Spec: Spec[] = [
  ['conv', 48, [1, 4, 4], [1, 1, 1], 'tanh'], ['filter', [1, 2, 2], [1, 1, 1]],
  ['conv', 48, [1, 5, 5], [1, 2, 2], 'tanh'], ['filter', [1, 2, 2], [1, 2, 2]],
  ['conv', 48, [1, 4, 4], [1, 4, 4], 'tanh'], ['filter', [1, 2, 2], [1, 4, 4]],
  ['conv', 48, [1, 4, 4], [1, 8, 8], 'tanh'], ['filter', [1, 2, 2], [1, 8, 8]],
  ['conv', 200, [1, 3, 3], [1, 16, 16], 'tanh'],
  ['conv', 2, [1, 1, 1], [1, 1, 1], 'softmax'],
];
const smallSpec: Spec[] = [
  ['conv', 6, [1, 3, 3], [1, 1, 1], 'relu'],
  ['conv', 6, [1, 2, 2], [1, 1, 1], 'tanh'], ['filter', [1, 2, 2], [1, 1, 1]],
  ['conv', 8, [1, 3, 3], [1, 2, 2], 'relu'], ['filter', [2, 2, 2], [1, 2, 2]],
  ['conv', 8, [2, 3, 3], [1, 4, 4], 'relu'],
  ['conv', 3, [1, 1, 1], [1, 1, 1], 'softmax'],
];

/** Windows handed out in order, whatever the generator draws. */
class FixedWindows implements DataSource {
  readonly inputs: Record<string, number>;
  private next = 0;
  constructor(private readonly windows: SampledWindow[], inputs: Record<string, number> = { input: 1 }) {
    this.inputs = inputs;
  }
  sample(_random: Random, _size: Size3): SampledWindow {
    return this.windows[this.next++ % this.windows.length]!;
  }
}

/** Values of a model's parameters, by name. */
function snapshot(model: { parameters(): Map<string, Tensor> }): Map<string, Float32Array> {
  return new Map([...model.parameters()].map(([k, v]) => [k, v.toArray()]));
}

for (const [name, spec] of [['n4_step', n4Spec], ['small_3d_step', smallSpec]] as const) {
  test(`one Trainer step of a 'valid' net (${name}) has PyTorch's gradients, on the output window`, async (t) => {
    const f = readSafetensors(path.join(fixtures, `${name}.safetensors`));
    const meta = f.metadata;
    const model = build(spec);
    model.loadState(hashedWeights(model.parameters()));
    const fov = meta.fov!.split(',').map(Number);
    t.deepEqual(model.fieldOfView(), fov, 'the model reports its field of view');
    const outSize = meta.outSize!.split(',').map(Number) as unknown as Size3;
    const batch = Number(meta.batch);
    const x = f.tensors.get('x')!;
    const labels = f.tensors.get('labels')!;
    const inSize = x.shape.slice(2);
    const per = inSize.reduce((a, b) => a * b, 1);
    const windows = Array.from({ length: batch }, (_, b) => ({
      inputs: { input: x.data.subarray(b * per, (b + 1) * per) }, labels: labels.data.subarray(b * per, (b + 1) * per),
    }));
    const before = snapshot(model);
    const progress: Progress[] = [];
    await new Trainer(model, {
      optimizer: { kind: 'sgd', momentum: 0, lr: 1 },
      loss: { kind: meta.loss as 'crossEntropy', classWeights: meta.classWeights!.split(',').map(Number), normalize: meta.normalize as 'voxels' },
    }).fit({ data: new FixedWindows(windows), outputSize: outSize, batchSize: batch, steps: 1, onProgress: (p) => progress.push(p) });
    t.true(Math.abs(progress[0]!.loss - f.tensors.get('loss')!.data[0]!) < 1e-5, `loss ${progress[0]!.loss} vs PyTorch ${f.tensors.get('loss')!.data[0]}`);
    let worst = 0;
    for (const [param, after] of snapshot(model)) {
      const step = Float32Array.from(before.get(param)!, (v, i) => v - after[i]!);  // SGD, lr 1: the gradient
      const full = f.tensors.get(`${param}.grad`);
      if (full) {
        assertClose(t, step, full.data, { abs: 1e-6, rel: 1e-3 }, `${param} gradient`);
        for (let i = 0; i < step.length; ++i) worst = Math.max(worst, Math.abs(step[i]! - full.data[i]!));
      } else {
        const sampled = f.tensors.get(`${param}.grad_sampled`)!.data;
        const picked = Float32Array.from(sampled, (_, j) => step[Math.floor((j * step.length) / sampled.length)]!);
        assertClose(t, picked, sampled, { abs: 1e-6, rel: 1e-3 }, `${param} gradient (4096 entries)`);
        for (let i = 0; i < picked.length; ++i) worst = Math.max(worst, Math.abs(picked[i]! - sampled[i]!));
        const sumsq = step.reduce((s, v) => s + v * v, 0);
        const expected = f.tensors.get(`${param}.grad_sumsq`)!.data[0]!;
        t.true(Math.abs(sumsq - expected) <= 1e-4 * expected + 1e-12, `${param}: sum of squares ${sumsq} vs ${expected}`);
      }
    }
    t.true(worst < 1e-4, `largest gradient difference ${worst}`);
    t.log(`largest difference from PyTorch's float64 gradient: ${worst.toExponential(2)}`);
  });
}

test('N4 trains on output windows of a synthetic EM stack: the held-out loss falls', async (t) => {
  const [D, H, W] = [4, 160, 160];
  const em = syntheticEm({ depth: D, height: H, width: W, seed: 3 });
  const model = build(n4Spec, 4);
  // Held out: the last slice, scored on the output window of the whole slice.
  const heldOut = async () => {
    const probs = await model.predict(Tensor.fromArray(em.image.subarray(3 * H * W), [1, 1, 1, H, W]));
    const out = probs.shape.slice(2);
    const offset = (H - out[1]!) / 2;
    const labels = Float32Array.from({ length: out[1]! * out[2]! }, (_, i) =>
      em.labels[3 * H * W + (offset + Math.floor(i / out[2]!)) * W + offset + (i % out[2]!)]!);
    return computeLoss('optimized', probs, Tensor.fromArray(labels, [1, 1, out[1]!, out[2]!]), { kind: 'crossEntropy' }).loss;
  };
  const before = await heldOut();
  await new Trainer(model, {
    seed: 2, optimizer: { kind: 'sgd', momentum: 0.9, lr: 0.01 }, loss: { kind: 'crossEntropy', classWeights: 'inverseFrequency', normalize: 'voxels' },
  }).fit({ data: new VolumeSampler({ volume: em.image.subarray(0, 3 * H * W), shape: [1, 3, H, W], labels: em.labels.subarray(0, 3 * H * W) }),
    outputSize: [1, 16, 16], batchSize: 2, steps: 30 });
  const after = await heldOut();
  t.true(after < 0.8 * before, `held-out cross-entropy ${before.toFixed(4)} -> ${after.toFixed(4)}`);
});

test('a batch of 4 gives the mean of the 4 windows\' gradients (loss: mean over all voxels)', async (t) => {
  const random = rng(8);
  const windows = Array.from({ length: 4 }, () => ({
    inputs: { input: randomArray(2 * 6 * 6, random) }, labels: Float32Array.from({ length: 2 * 6 * 6 }, () => (random() < 0.4 ? 1 : 0)),
  }));
  const make = () => sequential([
    layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.tanh(), layers.pixelwise({ units: 2 }), layers.softmax(),
  ], { inChannels: 1, seed: 5 });
  const step = async (ws: SampledWindow[]) => {
    const model = make();
    const before = snapshot(model);
    await new Trainer(model, { optimizer: { kind: 'sgd', momentum: 0, lr: 1 }, loss: 'crossEntropy' })
      .fit({ data: new FixedWindows(ws), size: [2, 6, 6], batchSize: ws.length, steps: 1 });
    return new Map([...snapshot(model)].map(([k, v]) => [k, Float32Array.from(v, (a, i) => before.get(k)![i]! - a)]));
  };
  const batched = await step(windows);
  const singles = await Promise.all(windows.map((w) => step([w])));
  for (const [name, g] of batched) {
    const mean = Float32Array.from(g, (_, i) => singles.reduce((s, m) => s + m.get(name)![i]!, 0) / 4);
    assertClose(t, g, mean, { abs: 1e-6, rel: 1e-4 }, name);
  }
});

// Two inputs (an image and a boundary map, as in recursive training), a skip sum and a concat.
function twoInputGraph(seed: number) {
  return graph({
    inputs: { image: 1, boundary: 1 },
    nodes: [
      { name: 'a', layer: layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'xavier' }), input: 'image' },
      { name: 'b', layer: layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'xavier' }), input: 'boundary' },
      { name: 'skip', join: 'sum', inputs: ['a', 'b'] },
      { name: 'act', layer: layers.relu(), input: 'skip' },
      { name: 'both', join: 'concat', inputs: ['act', 'b'] },
      { name: 'head', layer: layers.pixelwise({ units: 2 }), input: 'both' },
      { name: 'out', layer: layers.softmax(), input: 'head' },
    ],
    seed,
  });
}

function twoInputData(): VolumeSampler {
  const [D, H, W] = [4, 16, 16];
  const random = rng(21);
  const labels = Float32Array.from({ length: D * H * W }, () => (random() < 0.3 ? 1 : 0));
  const image = Float32Array.from(labels, (v) => (v ? 0.7 : -0.7) + 0.3 * (random() - 0.5));
  const boundary = Float32Array.from(labels, (v) => (v ? -1 : 1) * random());
  return new VolumeSampler({ inputs: { image: { data: image, channels: 1 }, boundary: { data: boundary, channels: 1 } }, dims: [D, H, W], labels });
}

const twoPhases = [
  { name: 'warm-up', size: [2, 8, 8] as const, steps: 4, batchSize: 2, optimizer: { kind: 'adam' as const, lr: 0.02 } },
  { name: 'fine', size: [2, 12, 12] as const, epochs: 2, stepsPerEpoch: 2, batchSize: 2, lr: 0.005, loss: { kind: 'crossEntropy' as const, classWeights: 'medianFrequency' as const } },
];

test('a two-input graph trains at batch 2 over two phases; interrupted and resumed, it ends with the uninterrupted weights', async (t) => {
  const straight = twoInputGraph(3);
  const seen: Progress[] = [];
  await new Trainer(straight, { seed: 4 }).fit({ data: twoInputData(), phases: twoPhases, onProgress: (p) => seen.push(p) });
  t.deepEqual(seen.map((p) => `${p.phase}/${p.phases} ${p.phaseName} ${p.batchSize} ${p.lr}`), [
    ...Array(4).fill('1/2 warm-up 2 0.02'), ...Array(4).fill('2/2 fine 2 0.005'),
  ]);
  t.true(seen.every((p) => Number.isFinite(p.loss)));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-phases-'));
  const ckpt = path.join(dir, 'run.safetensors');
  for (const stopAt of [2, 5]) {  // inside phase 1, and inside phase 2 (mid-epoch)
    const first = twoInputGraph(3);
    const ac = new AbortController();
    const stopped = await new Trainer(first, { seed: 4 }).fit({
      data: twoInputData(), phases: twoPhases, signal: ac.signal, checkpoint: { path: ckpt },
      onProgress: (p) => { if (p.step === stopAt) ac.abort(); },
    });
    t.true(stopped.aborted);
    t.is(stopped.steps, stopAt);
    t.true(fs.existsSync(ckpt), 'stopping through the signal writes the checkpoint');
    const resumed = twoInputGraph(77);
    const trainer = new Trainer(resumed, { seed: 999 });
    trainer.resume(ckpt);
    const done = await trainer.fit({ data: twoInputData(), phases: twoPhases });
    t.is(done.steps, 8);
    t.deepEqual([...snapshot(resumed).values()], [...snapshot(straight).values()], `stopped at step ${stopAt}`);
  }
});

test('two-phase training as the ConvLSTM paper: tumour windows with median-frequency weights, then all windows unweighted at lr 1e-6', async (t) => {
  const [D, H, W] = [4, 24, 24];
  const labels = new Float32Array(D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 3; y < 7; ++y) for (let x = 15; x < 19; ++x) labels[(z * H + y) * W + x] = 1 + ((x + y) % 4);
  const volume = Float32Array.from(labels, (v, i) => v * 0.3 + Math.sin(i));
  const sampler = new VolumeSampler({ volume, shape: [1, D, H, W], labels, flip: {} });
  // Which windows the filter let through: phase 1 draws whole volumes, phase 2 2x8x8 windows.
  const trained: Array<{ phase: number; tumour: boolean }> = [];
  const tumour = containsClass([1, 2, 3, 4]);
  const recording: DataSource = {
    inputs: sampler.inputs,
    classCounts: (c) => sampler.classCounts(c),
    classStatistics: (c) => sampler.classStatistics(c),
    sample(random, size) {
      const w = sampler.sample(random, size);
      trained.push({ phase: size[1] === H ? 1 : 2, tumour: tumour({ labels: w.labels, size }) });
      return w;
    },
  };
  const model = sequential([layers.conv({ out: 5, kernel: [1, 3, 3], padding: 'same', init: 'orthogonal' }), layers.softmax()], { inChannels: 1, seed: 6 });
  const firstProbs = await model.predict(Tensor.fromArray(volume, [1, 1, D, H, W]));
  const progress: Progress[] = [];
  const trainer = new Trainer(model, { seed: 8, optimizer: { kind: 'adam', lr: 1e-4 } });
  await trainer.fit({
    data: recording,
    phases: [
      { name: 'tumour', size: [D, H, W], steps: 3, batchSize: 3, filter: tumour, loss: { kind: 'crossEntropy', classWeights: 'medianFrequency' } },
      { name: 'all', size: [2, 8, 8], steps: 3, batchSize: 3, lr: 1e-6, loss: 'crossEntropy' },
    ],
    onProgress: (p) => progress.push(p),
  });
  t.deepEqual(progress.map((p) => [p.phaseName, p.lr]), [['tumour', 1e-4], ['tumour', 1e-4], ['tumour', 1e-4], ['all', 1e-6], ['all', 1e-6], ['all', 1e-6]]);
  t.is(trained.filter((d) => d.phase === 1).length, 9);
  t.true(trained.filter((d) => d.phase === 1).every((d) => d.tumour), 'phase 1 trains on tumour windows only');
  t.true(trained.filter((d) => d.phase === 2).some((d) => !d.tumour), 'phase 2 trains on windows without tumour too');
  // The first step's loss is the median-frequency weighted cross-entropy of the untrained
  // model (the whole volume is the window, three times).
  const weights = classWeightsFromStatistics(sampler.classStatistics(5), 'medianFrequency');
  const stacked = Tensor.fromArray(new Float32Array(3 * firstProbs.size).map((_, i) => firstProbs.toArray()[i % firstProbs.size]!), [3, 5, D, H, W]);
  const labels3 = Tensor.fromArray(new Float32Array(3 * labels.length).map((_, i) => labels[i % labels.length]!), [3, D, H, W]);
  const expected = computeLoss('optimized', stacked, labels3, { kind: 'crossEntropy', classWeights: Tensor.fromArray(weights, [5]) }).loss;
  t.true(Math.abs(progress[0]!.loss - expected) < 1e-5, `first loss ${progress[0]!.loss}, expected ${expected} (median-frequency weights)`);
});

test('phase settings are checked before the first step, naming the phase', async (t) => {
  const model = twoInputGraph(1);
  const data = twoInputData();
  await t.throwsAsync(new Trainer(model).fit({ data, phases: [{ size: [2, 8, 8], steps: 1 }, { sise: [1, 1, 1] } as never] }),
    { message: /fit: phase 2: unknown option 'sise'/ });
  const pooling = sequential([layers.maxPool({ kernel: [1, 2, 2] }), layers.softmax()], { inChannels: 1 });
  await t.throwsAsync(new Trainer(pooling).fit({ data: new VolumeSampler({ volume: new Float32Array(4 * 256), shape: [1, 4, 16, 16], labels: new Float32Array(4 * 256) }),
    phases: [{ name: 'x', outputSize: [1, 4, 4], steps: 1 }] }), { message: /phase 1 \(x\): outputSize needs a dense 3D network/ });
  await t.throwsAsync(new Trainer(model).fit({ data, phases: [{ size: [2, 8, 8], steps: 1, batchSize: 0 }] }), { message: /batchSize: expected an integer >= 1/ });
  await t.throwsAsync(new Trainer(model).fit({ data: new VolumeSampler({ volume: new Float32Array(4 * 256), shape: [1, 4, 16, 16], labels: new Float32Array(4 * 256) }), steps: 1 }),
    { message: /the model reads image \(1 channel\), boundary \(1 channel\), the data has input \(1 channel\); name the data inputs like the model inputs/ });
  const filtered = new Trainer(model, { seed: 1 });
  const err = await t.throwsAsync(filtered.fit({ data, phases: [{ name: 'tumour', size: [2, 8, 8], steps: 2, filter: containsClass(7), filterTries: 5 }] })) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /tumour: no window of \(2, 8, 8\) passed the filter in 5 draws/);
  await t.throwsAsync(new Trainer(build(n4Spec)).fit({ data: new VolumeSampler({ volume: new Float32Array(4 * 50 * 50), shape: [1, 4, 50, 50], labels: new Float32Array(4 * 50 * 50) }), size: [1, 50, 50], steps: 1 }),
    { message: /layers\.\d+ \(conv\): expected a volume larger than the dilated kernel/ });
});

// A model whose forward pass turns finite inputs into infinities (scale by 1e38 twice),
// then softmax: NaN probabilities, which cross-entropy's clamp turns into a finite loss.
class Overflowing extends Model {
  readonly outChannels = 2;
  private readonly conv = this.layer('conv', layers.conv({ out: 2, kernel: [1, 1, 1] }), 1);
  constructor() {
    super({ inputs: { input: 1 }, seed: 1 });
  }
  outputShape(shape: ModelInputShape): number[] {
    const s = this.inputShapes(shape).get('input')!;
    return [s[0]!, 2, ...s.slice(2)];
  }
  async forward(x: ModelInput, options?: RunOptions): Promise<Tensor> {
    const y = await this.conv(this.single(x), this.mode(options));
    return ops.softmax(ops.scale(ops.scale(y, 1e38), 1e38));
  }
}

test('a NaN in the activations stops the step before any update, naming the op and layer, even when the loss is finite', async (t) => {
  const model = new Overflowing();
  const probs = await model.predict(Tensor.full([1, 1, 1, 2, 2], 1));
  const clamped = computeLoss('optimized', probs, Tensor.zeros([1, 1, 2, 2]), { kind: 'crossEntropy' });
  t.true(Number.isFinite(clamped.loss), 'the clamped loss of NaN probabilities is finite');
  const before = snapshot(model);
  const data = new VolumeSampler({ volume: new Float32Array(2 * 4 * 4).fill(1), shape: [1, 2, 4, 4], labels: new Float32Array(32) });
  const err = await t.throwsAsync(new Trainer(model, { loss: 'crossEntropy' }).fit({ data, size: [1, 2, 2], steps: 1 })) as Error & { code?: string };
  t.is(err.code, 'ERR_NON_FINITE');
  t.regex(err.message, /appeared in the output of scale at step 1; training stopped before updating the weights/);
  t.deepEqual(snapshot(model), before);
});

test('a NaN gradient stops the step before any update, naming the parameter', async (t) => {
  // A custom op whose gradient is NaN while its value is finite.
  class PoisonedGradient extends Model {
    readonly outChannels = 2;
    private readonly conv = this.layer('conv', layers.conv({ out: 2, kernel: [1, 1, 1] }), 1);
    constructor() {
      super({ inputs: { input: 1 }, seed: 2 });
    }
    outputShape(shape: ModelInputShape): number[] {
      const s = this.inputShapes(shape).get('input')!;
      return [s[0]!, 2, ...s.slice(2)];
    }
    async forward(x: ModelInput, options?: RunOptions): Promise<Tensor> {
      const y = await this.conv(this.single(x), this.mode(options));
      const z = y.reshape(y.shape).to('cpu');
      recordOp({ op: 'poison', inputs: [y], outputs: [z], backward: ([dy]) => [Tensor.full(dy!.shape, NaN)] });
      return ops.softmax(z);
    }
  }
  const model = new PoisonedGradient();
  const before = snapshot(model);
  const data = new VolumeSampler({ volume: new Float32Array(2 * 4 * 4).fill(1), shape: [1, 2, 4, 4], labels: new Float32Array(32) });
  const err = await t.throwsAsync(new Trainer(model, { loss: 'crossEntropy' }).fit({ data, size: [1, 2, 2], steps: 1 })) as Error & { code?: string };
  t.is(err.code, 'ERR_NON_FINITE');
  t.regex(err.message, /appeared in the gradient of conv\.weight at step 1/);
  t.deepEqual(snapshot(model), before);
});

test('initialisers: uniform, MSRA, Xavier and orthogonal, seeded, chosen per layer', (t) => {
  const r = rng(3);
  const stats = (a: Float32Array) => {
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    return { mean, std: Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length), max: Math.max(...a.map(Math.abs)) };
  };
  const msra = stats(initialize('msra', [64, 32, 3, 3], r));  // std sqrt(2 / 288)
  t.true(Math.abs(msra.std - Math.sqrt(2 / 288)) < 0.003 && Math.abs(msra.mean) < 0.003, JSON.stringify(msra));
  const xavier = stats(initialize('xavier', [64, 32, 3, 3], r));  // U(+-sqrt(6 / (288 + 576)))
  const bound = Math.sqrt(6 / (288 + 576));
  t.true(xavier.max <= bound + 1e-6 && xavier.max > 0.98 * bound, JSON.stringify(xavier));
  t.true(Math.abs(xavier.std - bound / Math.sqrt(3)) < 0.002);
  const uniform = stats(initialize({ kind: 'uniform', scale: 0.05 }, [1000], r));
  t.true(uniform.max <= 0.05 && uniform.max > 0.049);
  const normal = stats(initialize({ kind: 'normal', std: 0.2, mean: 1 }, [4000], r));
  t.true(Math.abs(normal.mean - 1) < 0.02 && Math.abs(normal.std - 0.2) < 0.01);
  for (const shape of [[8, 3, 3, 3], [40, 2, 2, 2]]) {
    const w = initialize({ kind: 'orthogonal', gain: 2 }, shape, r);
    const rows = shape[0]!, cols = w.length / rows;
    // Fewer rows than columns: rows orthonormal (times the gain); else columns.
    const [outer, inner, at] = rows <= cols ? [rows, cols, (a: number, k: number) => w[a * cols + k]!] : [cols, rows, (a: number, k: number) => w[k * cols + a]!];
    for (let a = 0; a < outer; ++a)
      for (let b = 0; b < outer; ++b) {
        let dot = 0;
        for (let k = 0; k < inner; ++k) dot += at(a, k) * at(b, k);
        t.true(Math.abs(dot - (a === b ? 4 : 0)) < 1e-4, `orthogonal ${shape.join('x')}: <${a}, ${b}> = ${dot}`);
      }
  }
  t.deepEqual(initialize('he', [4, 2], rng(1)), initialize('msra', [4, 2], rng(1)), 'aliases');
  t.throws(() => layers.conv({ out: 2, kernel: [1, 1, 1], init: 'kaiming' as never }), { message: /conv: expected an initialiser \(uniform, normal, msra/ });
  const a = sequential([layers.conv({ out: 4, kernel: [1, 3, 3], init: 'orthogonal', biasInit: { kind: 'constant', value: 0.5 } })], { inChannels: 2, seed: 9 });
  const b = sequential([layers.conv({ out: 4, kernel: [1, 3, 3], init: 'orthogonal', biasInit: { kind: 'constant', value: 0.5 } })], { inChannels: 2, seed: 9 });
  t.deepEqual(a.parameters().get('layers.0.weight')!.toArray(), b.parameters().get('layers.0.weight')!.toArray(), 'a seed fixes the weights');
  t.deepEqual([...a.parameters().get('layers.0.bias')!.toArray()], [0.5, 0.5, 0.5, 0.5]);
});
