// The consistent ConvLSTM (seed 002): the assignment solver against SciPy, the
// matched soft-IoU loss, the ResNet-50 encoder against torchvision, the CConvLSTM
// module against an independent PyTorch version, and a small end-to-end run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import {
  checkConsistentMemory, createLayer, estimateConsistentMemory, GradientTape, layers, linearSumAssignment, loadLayerState, matchedSoftIoU, memoryStats, metrics,
  Optimizer, presets, readSafetensors, resetPeakMemory, Resnet50Encoder, segmentConsistent, Tensor, torchvisionResnet50State, trainConsistent, type NamedArray,
} from '../lib';
import { syntheticEm } from '../lib/data/synthetic';
import { assertClose, hashed } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'consistent');

interface AssignmentCase {
  name: string; shape: [number, number]; cost: number[]; rows: number[]; cols: number[]; total: number;
  maxRows: number[]; maxCols: number[]; maxTotal: number;
}

test('linearSumAssignment matches SciPy\'s linear_sum_assignment: square, wide, tall and tied costs, minimum and maximum', (t) => {
  const cases = JSON.parse(fs.readFileSync(path.join(dir, 'assignment.json'), 'utf8')) as AssignmentCase[];
  t.true(cases.length >= 15);
  for (const c of cases) {
    const [r, k] = c.shape;
    const a = linearSumAssignment(c.cost, r, k);
    const label = `${c.name} ${r}x${k}`;
    t.true(Math.abs(a.cost - c.total) < 1e-9, `${label}: cost ${a.cost}, SciPy ${c.total}`);
    t.deepEqual(a.rows, c.rows, `${label}: rows`);
    t.deepEqual(a.cols, c.cols, `${label}: the same pairs as SciPy, ties included`);
    const b = linearSumAssignment(c.cost, r, k, { maximize: true });
    t.true(Math.abs(b.cost - c.maxTotal) < 1e-9, `${label}: maximum ${b.cost}, SciPy ${c.maxTotal}`);
    t.deepEqual(b.cols, c.maxCols, `${label}: maximising pairs`);
  }
  // Forbidden pairs and bad input.
  t.deepEqual(linearSumAssignment([Infinity, 1, 2, Infinity], 2, 2).cols, [1, 0]);
  t.throws(() => linearSumAssignment([Infinity, Infinity, 1, 2], 2, 2), { message: /no assignment avoids the forbidden/ });
  t.throws(() => linearSumAssignment([1, NaN], 1, 2), { message: /cost \(0, 1\) is NaN/ });
  t.throws(() => linearSumAssignment([1, 2, 3], 2, 2), { message: /expected a 2 x 2 cost matrix \(4 values\), received 3/ });
  t.deepEqual(linearSumAssignment([], 0, 3), { rows: [], cols: [], cost: 0 });
});

test('matchedSoftIoU: the paper\'s soft IoU, objects matched by the Hungarian method, and its gradient against finite differences', async (t) => {
  // Two predictions of 4 voxels, listed in the other order than the truth.
  const masks = Tensor.fromArray([0.1, 0.2, 0.9, 0.8, /* */ 0.9, 0.7, 0.1, 0.0], [2, 4]);
  const truth = { data: Float32Array.from([1, 1, 0, 0, /* */ 0, 0, 1, 1]), count: 2 };
  const r = matchedSoftIoU(masks, truth);
  t.deepEqual(r.assignment.cols, [1, 0], 'prediction 0 goes with object 1, prediction 1 with object 0');
  // sIoU(p0, g1) = 1 - 1.7 / (2.0 + 2 - 1.7) = 1 - 1.7/2.3; sIoU(p1, g0) = 1 - 1.6 / (1.7 + 2 - 1.6) = 1 - 1.6/2.1
  const expected = ((1 - 1.7 / 2.3) + (1 - 1.6 / 2.1)) / 2;
  t.true(Math.abs(r.loss.toArray()[0]! - expected) < 1e-6, `loss ${r.loss.toArray()[0]}, by hand ${expected}`);
  // Gradient: three predictions, two objects (one prediction unmatched), against central differences.
  const values = Float32Array.from({ length: 3 * 6 }, (_, i) => 0.15 + 0.7 * ((i * 37) % 11) / 11);
  const truth2 = { data: Float32Array.from([1, 1, 1, 0, 0, 0, /* */ 0, 0, 0, 1, 1, 0]), count: 2 };
  const x = Tensor.fromArray(values, [3, 6]);
  x.requiresGrad = true;
  const tape = new GradientTape();
  const out = await tape.record(async () => matchedSoftIoU(x, truth2).loss);
  const grad = (await tape.backward(out)).get(x)!.toArray();
  const f = (v: Float32Array) => matchedSoftIoU(Tensor.fromArray(v, [3, 6]), truth2).loss.toArray()[0]!;
  for (let k = 0; k < values.length; ++k) {
    const up = Float32Array.from(values), down = Float32Array.from(values);
    up[k] += 1e-3;
    down[k] -= 1e-3;
    const fd = (f(up) - f(down)) / 2e-3;
    t.true(Math.abs(fd - grad[k]!) < 2e-3, `d loss / d m[${k}]: tape ${grad[k]}, finite differences ${fd}`);
  }
  t.throws(() => matchedSoftIoU(x, { data: new Float32Array(5), count: 2 }), { message: /2 true masks of 6 voxels need 12 values/ });
});

/** The fixture script's weights: by state_dict order k and the entry's role. */
function hashedResnetState(names: string[], shapes: Map<string, number[]>): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  names.forEach((name, k) => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`the encoder has no ${name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const u = hashed(n, k);
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const data = Float32Array.from(u, (v) => name.endsWith('running_var') ? 0.5 + v : name.endsWith('running_mean') ? (v - 0.5) * 0.2
      : shape.length === 1 && name.endsWith('weight') ? 0.2 + 0.3 * v : shape.length === 1 ? (v - 0.5) * 0.2 : (v - 0.5) * 2 * Math.sqrt(6 / fanIn));
    out.set(name, { shape, data });
  });
  return out;
}

test('the ResNet-50 encoder equals torchvision\'s resnet50 (its five block outputs), eval and training mode, with torchvision\'s names', async (t) => {
  const file = readSafetensors(path.join(dir, 'resnet50.safetensors'));
  const names = JSON.parse(file.metadata.names!) as string[];
  const encoder = new Resnet50Encoder();
  const shapes = new Map([...encoder.state()].map(([k, v]) => [k, [...v.shape]]));
  t.is(names.length, shapes.size, 'the same state entries as torchvision\'s (fc and num_batches_tracked aside)');
  t.is(encoder.paramCount(), 23_508_032, 'torchvision\'s parameter count without fc');
  encoder.loadState(torchvisionResnet50State(hashedResnetState(names, shapes)));
  const input = file.tensors.get('input')!;
  const x = Tensor.fromArray(input.data, input.shape);
  const first = Tensor.fromArray(input.data.subarray(0, 3 * 32 * 32), [1, 3, 32, 32]);
  const evalFeatures = await encoder.features(first, { training: false });
  t.deepEqual(evalFeatures.map((f) => f.shape), [[1, 64, 16, 16], [1, 256, 8, 8], [1, 512, 4, 4], [1, 1024, 2, 2], [1, 2048, 1, 1]]);
  evalFeatures.forEach((f, i) => assertClose(t, f, file.tensors.get(`eval.${i}`)!.data, { abs: 1e-4, rel: 1e-3 }, `eval feature ${i}`));
  const trainFeatures = await encoder.features(x, { training: true });
  // Batch statistics of few samples amplify rounding (see the fixture script): features 1 and 2.
  assertClose(t, trainFeatures[1]!, file.tensors.get('train.1')!.data, { abs: 1e-4, rel: 1e-4 }, 'training feature 1');
  assertClose(t, trainFeatures[2]!, file.tensors.get('train.2')!.data, { abs: 1e-3, rel: 1e-3 }, 'training feature 2');
  // A grey encoder takes the RGB weights with conv1's filters summed.
  const grey = torchvisionResnet50State(hashedResnetState(names, shapes), 'encoder.', 1);
  t.deepEqual(grey.get('encoder.conv1.weight')!.shape, [64, 1, 7, 7]);
  t.throws(() => torchvisionResnet50State(hashedResnetState(names, shapes), '', 2), { message: /only RGB -> grey \(1\) is converted/ });
  // The consistent network starts its (grey) encoder from the same weights.
  const net = presets.consistentConvLstm({ hidden: [4, 4, 4, 4, 4] });
  const before = net.parameters().get('proj.0.weight')!.toArray();
  t.is(net.loadEncoderWeights(hashedResnetState(names, shapes)), 265);
  t.deepEqual([...net.parameters().get('encoder.conv1.weight')!.toArray()], [...grey.get('encoder.conv1.weight')!.data]);
  t.deepEqual([...net.state().get('encoder.layer3.5.bn2.running_var')!.toArray()], [...hashedResnetState(names, shapes).get('layer3.5.bn2.running_var')!.data]);
  t.deepEqual(net.parameters().get('proj.0.weight')!.toArray(), before, 'the decoder keeps its values');
  t.throws(() => net.loadEncoderWeights(new Map([['conv1.weight', grey.get('encoder.conv1.weight')!]])), { message: /the ResNet-50 weights lack encoder\.bn1/ });
  net.dispose();
  for (const f of [...evalFeatures, ...trainFeatures]) f.dispose();
  encoder.dispose();
});

for (const name of ['cconvlstm_stc_spatial', 'cconvlstm_stl_first_object', 'cconvlstm_stn', 'cconvlstm_st']) {
  test(`the CConvLSTM module matches an independent PyTorch version, forward and backward: ${name}`, async (t) => {
    const file = readSafetensors(path.join(dir, `${name}.safetensors`));
    const meta = JSON.parse(file.metadata.case!) as { variant: 'ST' | 'STL' | 'STN' | 'STC'; hidden: number; kernel: number; reference: number; spatial: boolean };
    const get = (k: string) => {
      const a = file.tensors.get(k)!;
      return Tensor.fromArray(a.data, a.shape);
    };
    const x = get('x');
    const layer = createLayer(layers.consistentConvLstm({ hidden: meta.hidden, kernel: meta.kernel, variant: meta.variant }), { inChannels: x.shape[1] });
    loadLayerState(layer, new Map([...file.tensors].filter(([k]) => k.startsWith('param.')).map(([k, v]) => [k.slice('param.'.length), v])));
    const local = meta.variant === 'STL' || meta.variant === 'STC';
    const states = meta.spatial ? {
      forward: { h: get('spatial.forward.h'), c: get('spatial.forward.c') },
      ...(local ? { backward: { h: get('spatial.backward.h'), c: get('spatial.backward.c') } } : {}),
    } : undefined;
    const inputs = [x, ...(states ? [states.forward.h, states.forward.c, ...(states.backward ? [states.backward.h, states.backward.c] : [])] : [])];
    for (const i of inputs) i.requiresGrad = true;
    const tape = new GradientTape();
    const r = await tape.record(() => layer.run(x, { ...(states ? { spatial: states } : {}), reference: meta.reference }));
    const tol = { abs: 1e-5, rel: 1e-4 };
    assertClose(t, r.output, file.tensors.get('out.output')!.data, tol, 'output');
    assertClose(t, r.forward.h, file.tensors.get('out.forward.h')!.data, tol, 'forward h');
    assertClose(t, r.forward.c, file.tensors.get('out.forward.c')!.data, tol, 'forward c');
    if (local) assertClose(t, r.backward!.h, file.tensors.get('out.backward.h')!.data, tol, 'backward h');
    const grads = await tape.backward([r.output, r.forward.h], [get('dy'), get('dforward.h')]);
    const gtol = { abs: 1e-4, rel: 1e-3 };
    assertClose(t, grads.get(x)!, file.tensors.get('grad.x')!.data, gtol, 'd x');
    for (const [k, p] of layer.parameters) assertClose(t, grads.get(p)!, file.tensors.get(`grad.${k}`)!.data, gtol, `d ${k}`);
    if (states) {
      assertClose(t, grads.get(states.forward.h)!, file.tensors.get('grad.spatial.forward.h')!.data, gtol, 'd spatial forward h');
      assertClose(t, grads.get(states.forward.c)!, file.tensors.get('grad.spatial.forward.c')!.data, gtol, 'd spatial forward c');
      if (states.backward) assertClose(t, grads.get(states.backward.c)!, file.tensors.get('grad.spatial.backward.c')!.data, gtol, 'd spatial backward c');
    }
    t.is(layer.parameters.has('bwd.weight'), local);
    t.is(layer.parameters.has('out.weight'), meta.variant !== 'ST');
  });
}

test('the network: ResNet-50 encoder, five CConvLSTM levels, one mask per object and frame; the variants and bad shapes', async (t) => {
  const model = presets.consistentConvLstm({ hidden: [8, 8, 4, 4, 4], seed: 1 });
  const names = [...model.parameters().keys()];
  t.true(names.includes('encoder.layer4.2.conv3.weight') && names.includes('encoder.conv1.weight'), 'torchvision\'s names under encoder.');
  t.deepEqual(model.parameters().get('encoder.conv1.weight')!.shape, [64, 1, 7, 7], 'grey frames by default');
  t.deepEqual(model.parameters().get('proj.0.weight')!.shape, [8, 2048, 1, 1], 'level 0 projects layer4\'s features');
  t.deepEqual(model.parameters().get('cconv.1.fwd.weight')!.shape, [32, 8 + 8 + 1 + 2 * 8, 3, 3], '[B2(h) | f\' | S] and two states');
  t.true(names.includes('cconv.4.bwd.weight') && names.includes('cconv.4.out.weight'));
  const frames = Tensor.fromArray(Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.sin(i)), [1, 1, 3, 64, 64]);
  const masks = Tensor.fromArray(Float32Array.from({ length: 2 * 3 * 64 * 64 }, (_, i) => (i % 5 === 0 ? 1 : 0)), [2, 1, 3, 64, 64]);
  const y = await model.predict({ frames, masks });
  t.deepEqual(y.shape, [2, 1, 3, 64, 64]);
  t.true(y.toArray().every((v) => v > 0 && v < 1), 'probabilities');
  await t.throwsAsync(() => model.forward({ frames: Tensor.zeros([1, 1, 3, 60, 64]), masks }), { message: /60x64; ResNet-50 halves them five times: use multiples of 32/ });
  await t.throwsAsync(() => model.forward({ frames, masks: Tensor.zeros([2, 1, 4, 64, 64]) }), { message: /expected masks \(M, 1, 3, 64, 64\)/ });
  t.throws(() => presets.consistentConvLstm({ hidden: [8, 8] }), { message: /5 positive channel counts/ });
  t.throws(() => presets.consistentConvLstm({ variant: 'STX' as 'ST' }), { message: /variant ST, STL, STN, STC/ });
  const count = (variant: 'ST' | 'STL' | 'STN' | 'STC') => {
    const m = presets.consistentConvLstm({ hidden: [8, 8, 4, 4, 4], variant });
    const keys = [...m.parameters().keys()].filter((k) => k.startsWith('cconv.'));
    m.dispose();
    return keys;
  };
  t.false(count('ST').some((k) => k.includes('.bwd.') || k.includes('.out.')), 'ST: forward recurrence only');
  t.true(count('STL').some((k) => k.includes('.bwd.')) && count('STN').every((k) => !k.includes('.bwd.')), 'STL adds the backward direction, STN does not');
  y.dispose();
  model.dispose();
});

// Serial: AVA runs serial tests first, alone, so the process's tensor peak is this test's.
test.serial('memory: the predicted peak of a training step follows the measured one (CPU), and a step that cannot fit is refused before it starts', async (t) => {
  const model = presets.consistentConvLstm({ seed: 1 });
  const optimizer = new Optimizer({ kind: 'adam', lr: 1e-6 });
  const step = async (window: [number, number, number], objects: number) => {
    const [T, H, W] = window;
    const frames = Tensor.fromArray(Float32Array.from({ length: T * H * W }, (_, i) => Math.sin(i)), [1, 1, T, H, W]);
    const masks = Tensor.fromArray(Float32Array.from({ length: objects * T * H * W }, (_, i) => (i % 7 === 0 ? 1 : 0)), [objects, 1, T, H, W]);
    const tape = new GradientTape();
    const loss = await tape.record(async () => matchedSoftIoU(await model.forward({ frames, masks }, { training: true }), { data: masks.toArray(), count: objects }).loss);
    const grads = model.gradientsByName(await tape.backward(loss));
    tape.dispose();
    optimizer.step(model.parameters(), grads, 1e-6);
    for (const g of grads.values()) g.dispose();
    for (const x of [frames, masks, loss]) x.dispose();
  };
  await step([3, 64, 64], 1);  // Adam's state exists from here on
  for (const [window, objects] of [[[3, 64, 64], 4], [[3, 128, 128], 2]] as const) {
    resetPeakMemory('cpu');
    await step([...window], objects);
    const measured = memoryStats().cpu.peakBytes;
    const predicted = estimateConsistentMemory(model, window, objects).trainingBytes;
    t.true(predicted / measured > 0.95 && predicted / measured < 1.35, `${window.join('x')}, ${objects} objects: predicted ${(predicted / 2 ** 20).toFixed(0)} MiB, measured ${(measured / 2 ** 20).toFixed(0)} MiB`);
  }
  const err = t.throws(() => checkConsistentMemory(model, [3, 1024, 1024], 8, true, 12e9)) as Error & { code?: string };
  t.is(err.code, 'ERR_MEMORY');
  t.regex(err.message, /3x1024x1024 frames with 8 objects needs about \d+\.\d GiB, over the budget of 11\.2 GiB; up to 1 objects fit at this window/);
  const before = memoryStats().cpu.bytes;
  await t.throwsAsync(() => trainConsistent(model, {
    volume: new Float32Array(4 * 1024 * 1024), segments: new Int32Array(4 * 1024 * 1024), dims: [4, 1024, 1024], window: [3, 1024, 1024], epochs: 1, memoryBudget: 4e9,
  }), { message: /memory budget \(3\.73 GiB\) is too small for one object: a training step on 3x1024x1024 frames/ });
  t.is(memoryStats().cpu.bytes, before, 'nothing allocated');
  model.dispose();
});

test('training as the paper: epochs over every training sub-volume, all objects in groups whose gradients are summed, true masks for a quarter of the epochs, validation ARI and the best model kept; it lowers the adapted Rand error', async (t) => {
  const train = syntheticEm({ depth: 12, height: 64, width: 64, cells: 10, seed: 1 });
  const held = syntheticEm({ depth: 8, height: 64, width: 64, cells: 10, seed: 2 });
  const model = presets.consistentConvLstm({ hidden: [8, 8, 8, 8, 8], seed: 1 });
  const score = async () => {
    const labels = await segmentConsistent(model, held.image, held.shape, { frames: 4, firstFrame: held.segments.subarray(0, 64 * 64) });
    t.deepEqual([...labels.subarray(0, 64 * 64)], [...held.segments.subarray(0, 64 * 64)], 'the reference frame keeps its labels');
    return metrics.rand(labels, held.segments).adaptedRandError;
  };
  const before = await score();
  const steps: Array<{ epoch: number; inferredMasks: boolean; objects: number; groups: number }> = [];
  const r = await trainConsistent(model, {
    volume: train.image, segments: train.segments, dims: train.shape, window: [3, 64, 64], epochs: 12, optimizer: { kind: 'adam', lr: 1e-2 },
    maxObjects: 4, objectsPerGroup: 2, seed: 1, onProgress: (p) => steps.push(p),
  });
  t.deepEqual(r.subvolumes, { training: 3, validation: 1 }, '4 sub-volumes of 3 frames, 80/20');
  t.is(r.steps, 36, 'an epoch is a pass over the 3 training sub-volumes');
  t.true(steps.every((p) => p.objects === 4 && p.groups === 2), 'every object of the sub-volume (up to maxObjects), two groups of two');
  t.deepEqual([steps.findIndex((p) => p.inferredMasks), steps.filter((p) => !p.inferredMasks).length], [9, 9], 'true masks for the first 3 of 12 epochs');
  t.is(r.epochs.length, 12);
  t.true(r.epochs.every((e) => e.validation !== undefined && e.validation >= 0 && e.validation <= 1), 'validation ARI every epoch');
  const lowest = Math.min(...r.epochs.map((e) => e.validation!));
  t.is(r.best?.score, lowest, 'the best epoch is the lowest validation error');
  t.is(r.best?.epoch, r.epochs.findIndex((e) => e.validation === lowest));
  t.is(r.best?.state.size, model.stateDict().size, 'its weights are kept');
  const after = await score();
  t.log(`adapted Rand error (SNEMI3D) on the held-out stack: ${before.toFixed(3)} untrained, ${after.toFixed(3)} trained; best epoch ${r.best?.epoch}`);
  t.true(after < before - 0.03, `adapted Rand error ${before.toFixed(3)} untrained -> ${after.toFixed(3)}`);
  // Without labels the first frame can come from a watershed of the image.
  const unlabelled = await segmentConsistent(model, held.image, held.shape, { frames: 4, firstFrame: 'watershed' });
  t.true(new Set(unlabelled.subarray(0, 64 * 64)).size > 3, 'the watershed found objects in the first frame');
  // Splits and budgets.
  await t.throwsAsync(() => trainConsistent(model, { volume: train.image, segments: train.segments, dims: train.shape, window: [3, 64, 64], epochs: 1, split: 'z', validationFraction: 0.1 }),
    { message: /split 'z' at frame 11 leaves 11 and 1 frames, and a sub-volume needs 3/ });
  const small = await t.throwsAsync(() => trainConsistent(model, { volume: train.image, segments: train.segments, dims: train.shape, window: [3, 64, 64], epochs: 1, memoryBudget: 2 ** 20 })) as Error & { code?: string };
  t.is(small?.code, 'ERR_MEMORY');
  t.regex(small!.message, /too small for one object/);
  model.dispose();
});
