// The affinity family: affinity targets against a brute-force count, the losses on float
// targets against PyTorch, the MALA U-Net against a PyTorch twin (test/fixtures/
// make_affinity_fixtures.py), its shapes and field of view, training through the API and
// through `segvol train`, and the coded errors of options, windows and configs.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  affinities, affinityMask, affinitySettings, Batch, computeTargetLoss, loadModel, ops, predictVolume, presets, readSafetensors, syntheticEm,
  Tensor, Trainer, VolumeSampler, type AffinityUNetOptions, type TargetLossKind, type LossNormalization,
} from '../lib';
import { buildModel, paperSettings, parseTrainConfig } from '../lib/cli/config';
import { readNpy } from '../lib/io/npy';
import { assertClose, rng } from './helpers';

const fixtures = path.join(__dirname, 'fixtures');
type Dims = [number, number, number];

/** Affinities the slow way: every pair of face neighbours, one axis at a time. */
function bruteForce(labels: ArrayLike<number>, [D, H, W]: Dims, mask?: ArrayLike<number>) {
  const at = (z: number, y: number, x: number) => (z * H + y) * W + x;
  const aff = new Float32Array(3 * D * H * W), defined = new Float32Array(3 * D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    const neighbours: Array<[number, number, number] | undefined> = [z > 0 ? [z - 1, y, x] : undefined, y > 0 ? [z, y - 1, x] : undefined, x > 0 ? [z, y, x - 1] : undefined];
    neighbours.forEach((n, a) => {
      if (!n) return;
      const u = at(z, y, x), v = at(...n);
      const e = a * D * H * W + u;
      if (labels[u] !== 0 && labels[u] === labels[v]) aff[e] = 1;
      if (!mask || (mask[u] !== 0 && mask[v] !== 0)) defined[e] = 1;
    });
  }
  return { aff, defined };
}

test('affinities and their mask match a brute-force count over every pair of neighbours; bad input is refused with a code', (t) => {
  const random = rng(7);
  const dims: Dims = [4, 5, 6];
  // Few ids, so that neighbours often agree; 0 is the boundary.
  const labels = Float32Array.from({ length: 120 }, () => Math.floor(random() * 3));
  const mask = Float32Array.from({ length: 120 }, () => (random() < 0.2 ? 0 : 1));
  const expected = bruteForce(labels, dims, mask);
  t.deepEqual(affinities(labels, dims), expected.aff);
  t.deepEqual(affinityMask(dims, mask), expected.defined);
  t.deepEqual(affinityMask(dims), bruteForce(labels, dims).defined);
  // Both 1 and 0 occur, and the first slice's z edges are 0 and undefined.
  const aff = affinities(labels, dims);
  t.true(aff.some((v) => v === 1) && aff.some((v) => v === 0));
  t.true(aff.subarray(0, 30).every((v) => v === 0));
  t.true(affinityMask(dims).subarray(0, 30).every((v) => v === 0));
  t.throws(() => affinities(labels, [4, 5, 5]), { code: 'ERR_SHAPE', message: /labels has 120 values; \(D, H, W\) = \(4, 5, 5\) needs 100/ } as never);
  t.throws(() => affinityMask([4, 5] as never), { code: 'ERR_ARGUMENT', message: /three positive integers/ } as never);
  t.throws(() => affinityMask(dims, new Float32Array(3)), { code: 'ERR_SHAPE' } as never);
});

for (const name of ['target_mse_plain', 'target_mse_weighted_masked_voxels', 'target_bce_plain', 'target_bce_weighted_masked', 'target_bce_saturated']) {
  test(`targetLoss matches PyTorch: ${name}`, async (t) => {
    const f = JSON.parse(fs.readFileSync(path.join(fixtures, 'loss', `${name}.json`), 'utf8')) as {
      kind: TargetLossKind; shape: number[]; input: number[]; targets: number[]; weights: number[] | null; mask: number[] | null;
      normalize: LossNormalization; loss: number; grad: number[];
    };
    const x = Tensor.fromArray(f.input, f.shape);
    const targets = Tensor.fromArray(f.targets, f.shape);
    const weights = f.weights ? Tensor.fromArray(f.weights, f.shape) : undefined;
    const mask = f.mask ? Tensor.fromArray(f.mask, f.shape) : undefined;
    const options = { kind: f.kind, normalize: f.normalize, ...(weights ? { weights } : {}), ...(mask ? { mask } : {}) };
    const { loss, grad } = computeTargetLoss(x, targets, options);
    t.true(Math.abs(loss - f.loss) <= 1e-5 * Math.max(1, Math.abs(f.loss)), `loss ${loss} vs PyTorch ${f.loss}`);
    assertClose(t, grad, Float32Array.from(f.grad), { abs: 1e-6, rel: 1e-4 }, 'gradient');
    // The taped op gives the same value.
    const value = ops.targetLoss(x, targets, options);
    t.true(Math.abs(value.toArray()[0]! - f.loss) <= 1e-5 * Math.max(1, Math.abs(f.loss)));
  });
}

test('targetLoss refuses targets of another shape, values a cross-entropy cannot take, and unknown kinds, with codes', (t) => {
  const x = Tensor.fromArray([0.2, 0.7, 0.5, 0.9], [1, 1, 1, 2, 2]);
  t.throws(() => ops.targetLoss(x, Tensor.fromArray([1, 0, 1], [1, 1, 1, 1, 3]), { kind: 'squaredError' }),
    { code: 'ERR_SHAPE', message: /targets \(1, 1, 1, 1, 3\) must have the input's shape \(1, 1, 1, 2, 2\)/ } as never);
  t.throws(() => ops.targetLoss(Tensor.fromArray([0.2, 1.5, 0.5, 0.9], [1, 1, 1, 2, 2]), x, { kind: 'binaryCrossEntropy' }),
    { code: 'ERR_ARGUMENT', message: /input in \[0, 1\], received 1.5 at entry 1; end the network with a sigmoid/ } as never);
  t.throws(() => ops.targetLoss(x, x, { kind: 'crossEntropy' as never }), { code: 'ERR_ARGUMENT', message: /'squaredError' or 'binaryCrossEntropy'/ } as never);
  // The squared error takes any values.
  t.true(Math.abs(ops.targetLoss(x, Tensor.fromArray([0, 1, 0, 1], [1, 1, 1, 2, 2]), { kind: 'squaredError' }).toArray()[0]! - (0.04 + 0.09 + 0.25 + 0.01) / 4) < 1e-6);
});

for (const name of ['unet_valid', 'unet_same_nearest']) {
  test(`affinityUNet matches its PyTorch twin, parameter names and output included: ${name}`, async (t) => {
    const file = readSafetensors(path.join(fixtures, 'affinity', `${name}.safetensors`));
    const options = JSON.parse(file.metadata.options!) as AffinityUNetOptions;
    const model = presets.affinityUNet(options);
    const { 'fixture.input': input, 'fixture.output': output } = Object.fromEntries([...file.tensors].filter(([k]) => k.startsWith('fixture.')));
    const state = new Map([...file.tensors].filter(([k]) => !k.startsWith('fixture.')));
    // Strict: every name and shape must match the torch.nn module's state_dict.
    model.loadStateDict(state);
    t.deepEqual(model.outputShape(input!.shape), output!.shape);
    const y = await model.predict(Tensor.fromArray(input!.data, input!.shape));
    t.deepEqual(y.shape, output!.shape);
    assertClose(t, y, output!.data, { abs: 1e-5, rel: 1e-4 }, name);
  });
}

test('output shape and field of view: valid windows shrink by the field of view less one, same windows keep their size; several downsamplings', (t) => {
  const cases: Array<{ options: AffinityUNetOptions; input: Dims; output: Dims; fov: Dims }> = [
    // The default: two levels, (1, 2, 2) pooling, 3x3x3 kernels: 4 + 2 * 4 + 4 voxels of context in y and x, 4 + 4 + 4 in z.
    { options: {}, input: [20, 52, 52], output: [8, 36, 36], fov: [13, 17, 17] },
    { options: { downsample: [[2, 2, 2]] }, input: [24, 24, 24], output: [8, 8, 8], fov: [17, 17, 17] },
    // Anisotropic: 1x3x3 kernels at full resolution, no z pooling at first.
    { options: { downsample: [[1, 2, 2], [2, 2, 2]], kernel: [[1, 3, 3], [3, 3, 3], [3, 3, 3]] }, input: [30, 68, 68], output: [14, 28, 28], fov: [17, 41, 41] },
    // MALA's CREMI network (feature maps aside): (84, 268, 268) in, (48, 56, 56) out.
    { options: { ...affinitySettings().network, fmaps: 1, fmapIncFactor: 1 }, input: [84, 268, 268], output: [48, 56, 56], fov: [37, 213, 213] },
    { options: { padding: 'same', downsample: [[2, 2, 2], [1, 2, 2]] }, input: [8, 16, 20], output: [8, 16, 20], fov: [1, 1, 1] },
    { options: { padding: 'same', upsample: 'nearest', convsPerLevel: 1 }, input: [3, 6, 10], output: [3, 6, 10], fov: [1, 1, 1] },
  ];
  for (const c of cases) {
    const model = presets.affinityUNet({ fmaps: 1, ...c.options });
    t.deepEqual(model.outputShape([2, 1, ...c.input]), [2, 3, ...c.output], JSON.stringify(c.options));
    t.deepEqual(model.fieldOfView(), c.fov, JSON.stringify(c.options));
    // A valid U-Net is dense on the windows that fit: every fitting window loses the same context.
    t.deepEqual(model.outputWindow(c.input), { size: c.output, offset: c.fov.map((f) => (f - 1) / 2) });
  }
});

test('windows that do not fit and options that cannot build a U-Net are refused with codes that say what fits', (t) => {
  const model = presets.affinityUNet({ fmaps: 1 });
  t.throws(() => model.outputShape([1, 1, 20, 51, 52]),
    { code: 'ERR_SHAPE', message: /along y, 51 leaves level 0 47 voxels, not a multiple of its downsampling factor 2 \(the nearest sizes that fit: 50 \(output 34\) and 52 \(output 36\)\)/ } as never);
  t.throws(() => model.outputShape([1, 1, 12, 52, 52]), { code: 'ERR_SHAPE', message: /along z, 12 shrinks below one voxel[^]*nearest sizes that fit: 13 \(output 1\)/ } as never);
  t.throws(() => model.outputShape([1, 1, 52, 52]), { code: 'ERR_SHAPE', message: /lacks its batch axis: reshape it to \(1, C, D, H, W\)/ } as never);
  t.throws(() => model.outputShape([1, 2, 20, 52, 52]), { code: 'ERR_SHAPE' } as never);
  const same = presets.affinityUNet({ fmaps: 1, padding: 'same', downsample: [[2, 2, 2]] });
  t.throws(() => same.outputShape([1, 1, 9, 16, 16]), { code: 'ERR_SHAPE', message: /along z, 9 leaves level 0 9 voxels[^]*8 \(output 8\) and 10 \(output 10\)/ } as never);
  for (const [options, message] of [
    [{ kernel: 4 }, /kernel as odd integers/],
    [{ kernel: [[3, 3, 3]] }, /one \(z, y, x\) kernel per level: expected 2/],
    [{ downsample: [[1, 2]] }, /downsample\[0\] as three integers >= 1/],
    [{ downsample: 2 }, /downsample as a list/],
    [{ fmaps: 0 }, /fmaps: expected an integer >= 1/],
    [{ padding: 'full' }, /padding: expected 'valid' or 'same'/],
    [{ upsample: 'linear' }, /upsample: expected 'transposedConv' or 'nearest'/],
    [{ fmap: 4 }, /unknown option 'fmap'/],
  ] as Array<[object, RegExp]>) {
    t.throws(() => presets.affinityUNet(options as AffinityUNetOptions), { code: 'ERR_ARGUMENT', message } as never, JSON.stringify(options));
  }
});

test('a batch\'s affinity targets are the whole window\'s affinities cut to the output window; a same-padded net masks the first slice', async (t) => {
  const em = syntheticEm({ depth: 20, height: 52, width: 52, seed: 5 });
  const labels = Float32Array.from(em.segments);
  const window = { inputs: { input: em.image }, labels };
  const out = Tensor.fromArray(new Float32Array(3 * 8 * 36 * 36).fill(0.5), [1, 3, 8, 36, 36]);
  const batch = new Batch([window], [20, 52, 52], { input: 1 }, new Map([['input', 'input']]), 'cpu');
  const { values, mask } = batch.targets(out, 'affinities');
  t.is(mask, undefined, 'every edge of a valid net\'s output has its predecessor in the window');
  const full = affinities(labels, [20, 52, 52]);
  const got = values.toArray();
  for (const [a, z, y, x] of [[0, 0, 0, 0], [1, 3, 17, 9], [2, 7, 35, 35], [0, 5, 20, 30]] as const) {
    t.is(got[((a * 8 + z) * 36 + y) * 36 + x], full[((a * 20 + z + 6) * 52 + y + 8) * 52 + x + 8]);
  }
  const sameOut = Tensor.fromArray(new Float32Array(3 * 20 * 52 * 52), [1, 3, 20, 52, 52]);
  const same = batch.targets(sameOut, 'affinities');
  t.deepEqual(same.mask!.toArray(), affinityMask([20, 52, 52]));
  t.throws(() => batch.targets(Tensor.fromArray(new Float32Array(2 * 8 * 36 * 36), [1, 2, 8, 36, 36]), 'affinities'),
    { code: 'ERR_SHAPE', message: /targets 'affinities' have 3 channels; expected an output \(1, 3, d, h, w\), received \(1, 2, 8, 36, 36\)/ } as never);
  batch.dispose();
});

test('gradients flow through the U-Net: a few steps on a tiny synthetic stack lower the loss, with either loss and with validation', async (t) => {
  const em = syntheticEm({ depth: 20, height: 48, width: 48, seed: 3 });
  const data = new VolumeSampler({ volume: em.image, shape: [1, ...em.shape], labels: Float32Array.from(em.segments) });
  for (const kind of ['squaredError', 'binaryCrossEntropy'] as const) {
    const model = presets.affinityUNet({ fmaps: 4, seed: 1 });
    const trainer = new Trainer(model, { loss: { kind, targets: 'affinities', classWeights: 'inverseFrequency' }, optimizer: { kind: 'adam', lr: 0.003 }, seed: 2 });
    const losses: number[] = [];
    // The output window (4, 32, 32) stands for the input window (16, 48, 48): the field of view adds the rest.
    const window = kind === 'squaredError' ? { size: [16, 48, 48] as const } : { outputSize: [4, 32, 32] as const };
    const result = await trainer.fit({ data, ...window, steps: 30, onProgress: (p) => losses.push(p.loss), validation: { data, windows: 2, every: 15 } });
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    t.true(mean(losses.slice(-5)) < 0.8 * mean(losses.slice(0, 5)), `${kind}: ${losses.map((v) => v.toFixed(3)).join(' ')}`);
    t.true(Number.isFinite(result.validation!.best), 'validation scores the loss');
  }
});

test('the Trainer refuses losses that do not fit the targets and measures that need classes, before any step', async (t) => {
  const em = syntheticEm({ depth: 16, height: 48, width: 48, seed: 4 });
  const data = new VolumeSampler({ volume: em.image, shape: [1, ...em.shape], labels: Float32Array.from(em.segments) });
  const model = presets.affinityUNet({ fmaps: 1 });
  t.throws(() => new Trainer(model, { loss: 'binaryCrossEntropy' as never }), { code: 'ERR_ARGUMENT', message: /compares with float targets: add targets: 'affinities'/ } as never);
  t.throws(() => new Trainer(model, { loss: { kind: 'crossEntropy', targets: 'affinities' } }), { code: 'ERR_ARGUMENT', message: /a loss on affinities takes kind/ } as never);
  t.throws(() => new Trainer(model, { loss: { kind: 'squaredError', targets: 'edges' as never } }), { code: 'ERR_ARGUMENT', message: /loss targets/ } as never);
  t.throws(() => new Trainer(model, { loss: { kind: 'squaredError', targets: 'affinities', classWeights: 'medianFrequency' } }), { code: 'ERR_ARGUMENT' } as never);
  const trainer = new Trainer(model, { loss: { kind: 'squaredError', targets: 'affinities' } });
  await t.throwsAsync(trainer.fit({ data, size: [16, 48, 48], steps: 1, validation: { data, metric: 'dice' } }),
    { code: 'ERR_ARGUMENT', message: /metric 'dice' scores the most probable class[^]*use metric 'loss'/ } as never);
  t.is(trainer.step, 0);
});

test('predictVolume stitches a valid U-Net\'s windows over a whole stack, its field of view mirrored at the borders', async (t) => {
  const em = syntheticEm({ depth: 10, height: 40, width: 40, seed: 6 });
  const model = presets.affinityUNet({ fmaps: 2, seed: 3 });
  const probs = await predictVolume(model, Tensor.fromArray(em.image, [1, 1, 10, 40, 40]), { window: [8, 20, 20] });
  t.deepEqual(probs.shape, [1, 3, 10, 40, 40]);
  t.true(probs.toArray().every((v) => v > 0 && v < 1));
});

test('train.json: an affinityUNet config is checked (model keys, labels, its loss, its validation measure); settings "paper" is the MALA network and training', (t) => {
  const config = (extra: object, data: object = { volume: 'v.npy', labels: 's.npy' }) => JSON.stringify({ model: { preset: 'affinityUNet' }, data, ...extra });
  const ok = parseTrainConfig(config({ loss: { kind: 'binaryCrossEntropy', targets: 'affinities' } }), 'a.json');
  t.is(ok.model.preset, 'affinityUNet');
  t.throws(() => parseTrainConfig(JSON.stringify({ model: { preset: 'affinityUNet', fmap: 4 }, data: { volume: 'v.npy', labels: 's.npy' } }), 'a.json'),
    { code: 'ERR_ARGUMENT', message: /unknown key 'model.fmap'/ } as never);
  t.throws(() => parseTrainConfig(config({}, { volume: 'v.npy' }), 'a.json'), { code: 'ERR_ARGUMENT', message: /expected data.volume \(a path, or one per modality\) and data.labels/ } as never);
  t.throws(() => parseTrainConfig(config({ loss: 'squaredError' }), 'a.json'), { code: 'ERR_ARGUMENT', message: /affinityUNet predicts affinities/ } as never);
  t.throws(() => parseTrainConfig(config({ loss: { kind: 'squaredError', targets: 'affinities', extra: 1 } }), 'a.json'), { code: 'ERR_ARGUMENT', message: /unknown key 'loss.extra'/ } as never);
  t.throws(() => parseTrainConfig(config({ validation: { volume: 'w.npy', labels: 't.npy', metric: 'dice' } }), 'a.json'),
    { code: 'ERR_ARGUMENT', message: /validation.metric 'dice' scores class labels/ } as never);
  const paper = parseTrainConfig(JSON.stringify({ model: { preset: 'affinityUNet', fmaps: 1, fmapIncFactor: 1 }, data: { volume: 'v.npy', labels: 's.npy' }, settings: 'paper' }), 'p.json');
  const settings = paperSettings(paper)!;
  t.deepEqual(settings.trainer!.optimizer, { kind: 'adam', lr: 0.5e-4, beta1: 0.95, beta2: 0.999, eps: 1e-8 });
  t.deepEqual(settings.trainer!.loss, { kind: 'squaredError', targets: 'affinities', classWeights: 'inverseFrequency', weightsFrom: 'patch' });
  t.deepEqual(settings.size, [84, 268, 268]);
  // The paper's U-Net shape, with the config's own keys winning (small feature maps here).
  const model = buildModel(paper, settings);
  t.deepEqual(model.architecture(), { kind: 'preset', preset: 'affinityUNet', options: { ...affinitySettings().network, fmaps: 1, fmapIncFactor: 1 } });
  t.deepEqual(model.outputShape([1, 1, 84, 268, 268]), [1, 3, 48, 56, 56]);
});

// The command line as a user runs it (sources compiled by ts-node without type checks: tsc checks them).
function segvol(args: string[]) {
  const root = path.join(__dirname, '..');
  const r = spawnSync(process.execPath, ['--require=ts-node/register/transpile-only', path.join(root, 'lib', 'cli', 'main.ts'), ...args],
    { cwd: root, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** The mean squared error of a model's affinities of a whole stack (a window that fits) against the affinities of its instance labels. */
async function affinityError(model: ReturnType<typeof loadModel>, image: Float32Array, segments: Float32Array, dims: Dims): Promise<number> {
  const [D, H, W] = dims;
  const { size: out, offset } = model.outputWindow(dims);
  const truth = affinities(segments, dims);
  const p = (await model.predict(Tensor.fromArray(image, [1, 1, ...dims]))).toArray();
  let sum = 0, n = 0;
  for (let a = 0; a < 3; ++a) for (let z = 0; z < out[0]!; ++z) for (let y = 0; y < out[1]!; ++y) for (let x = 0; x < out[2]!; ++x) {
    const predicted = p[((a * out[0]! + z) * out[1]! + y) * out[2]! + x]!;
    sum += (predicted - truth[((a * D + offset[0]! + z) * H + offset[1]! + y) * W + offset[2]! + x]!) ** 2;
    n += 1;
  }
  return sum / n;
}

test.serial('docs/affinity.md\'s commands: synth --affinities writes its train.json, which trains as written to a model that loadModel reads, predict writes its affinities, and it beats the untrained U-Net on the held-out stack', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-affinity-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The default stacks are 24x96x96; smaller ones train the same config (the window fits both).
  const synth = segvol(['synth', '--affinities', '--out', dir, '--size', '20,52,52']);
  t.is(synth.status, 0, synth.err);
  const docs = fs.readFileSync(path.join(__dirname, '..', 'docs', 'affinity.md'), 'utf8');
  const block = [...docs.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.is(block.length, 1);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8'));
  t.deepEqual(JSON.parse(block[0]!), config, 'the docs show what synth writes');
  const trained = segvol(['train', '--config', path.join(dir, 'train.json')]);
  t.is(trained.status, 0, trained.err);
  t.regex(trained.out, /finished at step 200, last loss [\d.]+; best validation loss [\d.]+ at step (50|100|150|200)/);
  const model = loadModel(path.join(dir, 'model.safetensors'));
  t.deepEqual(model.architecture(), { kind: 'preset', preset: 'affinityUNet', options: { fmaps: 6, seed: 1 } });
  t.deepEqual(model.info.window, [20, 52, 52]);
  const image = readNpy(path.join(dir, 'validation_volume.npy'));
  const segments = readNpy(path.join(dir, 'validation_segments.npy'));
  t.deepEqual(segments.shape, [20, 52, 52]);
  t.true(segments.data.some((v) => v > 1) && segments.data.some((v) => v === 0), 'instance ids and membranes');
  const before = await affinityError(presets.affinityUNet({ fmaps: 6, seed: 1 }), image.data, segments.data, [20, 52, 52]);
  const after = await affinityError(model, image.data, segments.data, [20, 52, 52]);
  t.log(`held-out affinity MSE: trained ${after.toFixed(4)}, untrained ${before.toFixed(4)}`);
  t.true(after < 0.5 * before, `mean squared error on held-out affinities: trained ${after.toFixed(4)}, untrained ${before.toFixed(4)}`);
  // The docs' predict command: stitched output windows of 8x36x36, the affinities as (3, D, H, W).
  const out = path.join(dir, 'affinities.npy');
  const predicted = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'validation_volume.npy'), '--out', out,
    '--probabilities', '--window', '8,36,36']);
  t.is(predicted.status, 0, predicted.err);
  const labels = segvol(['predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, 'validation_volume.npy'), '--out', path.join(dir, 'labels.npy')]);
  t.not(labels.status, 0);
  t.regex(labels.err, /predicts affinities \(z, y, x\), not classes: add --probabilities/);
  t.false(fs.existsSync(path.join(dir, 'labels.npy')));
  const affs = readNpy(out);
  t.deepEqual(affs.shape, [3, 20, 52, 52]);
  t.true(affs.data.every((v) => v >= 0 && v <= 1));
});
