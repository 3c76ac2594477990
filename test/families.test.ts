// The family registry and what moved with it: each family's presets and layers are
// found by name, a model file finds its family, one training step (trainStep) is the
// Trainer's, the new ops and defineOp work as documented, and the deprecated names
// still answer.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  argmaxClasses, createLayer, defineOp, differentiableOps, families, familyOf, GradientTape, layers, loadLayerState, loadModel, ops, Optimizer,
  presets, Resnet50Encoder, sequential, Tensor, Trainer, trainStep, trainStepAccumulated, VolumeSampler, writeSafetensors,
} from '../lib';
import { optimized } from '../lib/testing';

test('the registry lists the five families; every preset and layer type is found, and a model file finds its family', (t) => {
  t.deepEqual(families.map((f) => f.name), ['pyramid', 'convnets', 'mri', 'consistent', 'affinity']);
  for (const name of Object.keys(presets)) t.truthy(families.find((f) => name in f.presets), `preset ${name} has a family`);
  for (const type of ['pyramidLstm', 'crossModality', 'consistentConvLstm', 'conv', 'lstm', 'convLstm']) t.is(typeof (layers as Record<string, unknown>)[type], 'function', type);
  t.is(familyOf(presets.vd2d({ seed: 1 }))?.name, 'convnets');
  t.is(familyOf(presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [] }))?.name, 'pyramid');
  t.is(familyOf(sequential([layers.conv({ out: 2, kernel: [3, 3] })], { inChannels: 1 })), undefined, 'a layer list has no family');
  // A ResNet-50 encoder file rebuilds through the registry (its family's preset).
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-family-')), 'encoder.safetensors');
  const encoder = new Resnet50Encoder({ inChannels: 1, seed: 2 });
  encoder.save(file);
  const loaded = loadModel(file);
  t.is(familyOf(loaded)?.name, 'consistent');
  t.deepEqual(loaded.stateDict().get('conv1.weight')!.toArray(), encoder.stateDict().get('conv1.weight')!.toArray());
  encoder.dispose();
  loaded.dispose();
});

/** A small volume with two classes and the model that segments it. */
function toy(seed: number) {
  const [d, h, w] = [3, 10, 10];
  const volume = Float32Array.from({ length: d * h * w }, (_, i) => Math.sin(i * 0.37 + seed));
  const labels = Float32Array.from(volume, (v) => (v > 0 ? 1 : 0));
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels, flip: {} });
  const model = sequential([layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same' }), layers.softmax()], { inChannels: 1, seed });
  return { data, model, volume, labels };
}

test('trainStep is the Trainer\'s step: a hand-written loop on the same windows ends at the same weights', async (t) => {
  const a = toy(1), b = toy(1);
  const trainer = new Trainer(a.model, { seed: 5, optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 }, loss: 'crossEntropy' });
  await trainer.fit({ data: a.data, size: [3, 6, 6], steps: 3 });
  // The same draws: a Trainer seeded 5 draws its windows from Random(5).
  const { Random } = await import('../lib');
  const random = new Random(5);
  const optimizer = new Optimizer({ kind: 'sgd', lr: 0.1, momentum: 0.9 });
  for (let s = 0; s < 3; ++s) {
    const window = b.data.sample(random, [3, 6, 6]);
    const x = Tensor.fromArray(window.inputs.input!, [1, 1, 3, 6, 6]);
    const labels = Tensor.fromArray(window.labels, [1, 3, 6, 6]);
    const r = await trainStep(b.model, optimizer, async () => {
      const y = await b.model.forward(x, { training: true });
      const loss = ops.loss(y, labels, { kind: 'crossEntropy' });
      y.dispose();
      return loss;
    }, { lr: 0.1 });
    t.true(Number.isFinite(r.loss) && r.gradNorm > 0);
    x.dispose();
    labels.dispose();
  }
  for (const [name, p] of a.model.namedParameters()) t.deepEqual(b.model.namedParameters().get(name)!.toArray(), p.toArray(), name);
});

test('trainStepAccumulated: losses on separate tapes, gradients summed, one update: the same weights as one step on the summed loss', async (t) => {
  const a = toy(3), b = toy(3);
  const x1 = Tensor.full([1, 1, 3, 6, 6], 0.5), x2 = Tensor.fromArray(Float32Array.from({ length: 108 }, (_, i) => Math.sin(i)), [1, 1, 3, 6, 6]);
  const labels = Tensor.fromArray(Float32Array.from({ length: 108 }, (_, i) => i % 2), [1, 3, 6, 6]);
  const lossOf = async (model: typeof a.model, x: Tensor) => {
    const y = await model.forward(x, { training: true });
    const loss = ops.loss(y, labels, { kind: 'crossEntropy' });
    y.dispose();
    return loss;
  };
  const one = await trainStep(a.model, new Optimizer({ kind: 'sgd', lr: 0.5 }), async () => ops.add(await lossOf(a.model, x1), await lossOf(a.model, x2)));
  const parts = await trainStepAccumulated(b.model, new Optimizer({ kind: 'sgd', lr: 0.5 }), [() => lossOf(b.model, x1), () => lossOf(b.model, x2)]);
  t.true(Math.abs(one.loss - parts.loss) < 1e-5 && Math.abs(one.gradNorm - parts.gradNorm) < 1e-5, `loss ${one.loss} vs ${parts.loss}`);
  for (const [name, p] of a.model.namedParameters()) {
    const q = b.model.namedParameters().get(name)!.toArray();
    t.true(p.toArray().every((v, i) => Math.abs(v - q[i]!) < 1e-6), name);
  }
  await t.throwsAsync(trainStepAccumulated(b.model, new Optimizer({ kind: 'sgd', lr: 0.5 }), []), { message: /at least one loss part/ });
  for (const v of [x1, x2, labels]) v.dispose();
});

test('trainStep refuses a non-finite loss before any weight changes, with ERR_NON_FINITE', async (t) => {
  const { model } = toy(2);
  const before = model.namedParameters().get('layers.0.weight')!.toArray();
  const x = Tensor.full([1, 1, 3, 6, 6], 1);
  const error = await t.throwsAsync(trainStep(model, new Optimizer({ kind: 'sgd', lr: 1 }), async () => {
    const y = await model.forward(x, { training: true });
    const big = ops.scale(y, 1e30);
    const overflow = ops.mul(big, big);  // 1e60 is past float32's range
    y.dispose();
    return ops.narrow(ops.narrow(ops.narrow(ops.narrow(ops.narrow(overflow, 0, 0, 1), 1, 0, 1), 2, 0, 1), 3, 0, 1), 4, 0, 1).reshape([1]);
  }, { lr: 1 })) as Error & { code?: string };
  t.is(error.code, 'ERR_NON_FINITE');
  t.regex(error.message, /a NaN or infinite value appeared in the output of mul/);
  t.deepEqual(model.namedParameters().get('layers.0.weight')!.toArray(), before, 'weights unchanged');
  x.dispose();
});

test('ops.argmax, ops.firstNonFinite, ops.optimizerUpdate and ops.dropout; the backward functions are in segvol/testing only', (t) => {
  const scores = Tensor.fromArray([0.1, 0.7, 0.2, 0.9, 0.3, 0.0], [1, 2, 1, 1, 3]);  // (N, C=2, 1, 1, 3)
  t.deepEqual([...ops.argmax(scores).toArray()], [1, 0, 0]);
  t.deepEqual([...argmaxClasses(Float32Array.from([1, 2, 1, 3]), 1, 2)], [0, 1], 'a tie goes to the lower class');
  const fine = Tensor.full([2], 1), bad = Tensor.fromArray([1, NaN], [2]);
  t.is(ops.firstNonFinite([fine, bad]), 1);
  t.is(ops.firstNonFinite([fine]), -1);
  const param = Tensor.full([2], 1), grad = Tensor.full([2], 0.5), s1 = Tensor.zeros([2]), s2 = Tensor.zeros([2]);
  ops.optimizerUpdate('sgd', { lr: 0.1, rho: 0.9, rhoM: 0.9, momentum: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 }, param, grad, s1, s2);
  t.deepEqual([...param.toArray()].map((v) => Number(v.toFixed(6))), [0.95, 0.95]);
  t.throws(() => ops.optimizerUpdate('lion' as never, {} as never, param, grad, s1, s2), { code: 'ERR_ARGUMENT', message: /expected rule/ } as never);
  let k = 0;
  const dropped = ops.dropout(Tensor.full([4], 1), 0.5, () => [0.1, 0.9, 0.2, 0.8][k++]!);
  t.deepEqual([...dropped.toArray()], [0, 2, 0, 2], 'inverted dropout: kept values scaled by 1 / (1 - p)');
  t.throws(() => ops.dropout(fine, 1, Math.random), { message: /expected p in \[0, 1\)/ });
  t.false('convBackward' in ops, 'explicit backward functions left the public ops');
  t.is(typeof optimized.convBackward, 'function');
});

test('defineOp names, declares and tapes a custom op; its gradient reaches the input', async (t) => {
  const cube = defineOp('testCube', (op, x: Tensor): Tensor => {
    const y = ops.mul(ops.mul(x, x), x);
    op.record({ inputs: [x], outputs: [y], save: [x], backward: ([dy], [xs]) => [ops.scale(ops.mul(ops.mul(xs!, xs!), dy!), 3)] });
    return y;
  });
  t.true(differentiableOps().includes('testCube'));
  const x = Tensor.fromArray([1, 2, -1], [3]);
  const tape = new GradientTape();
  tape.watch(x);
  const y = await tape.record(() => cube(x));
  t.true(tape.ops.includes('testCube'));
  const grads = await tape.backward(y, Tensor.full([3], 1));
  t.deepEqual([...grads.get(x)!.toArray()], [3, 12, 3]);
  tape.dispose();
});

test('loadLayerState reads a sub-module\'s entries of a larger state_dict with prefix; a wrong prefix is refused, changing nothing', (t) => {
  const source = createLayer(layers.lstm({ inputSize: 3, hiddenSize: 2 }), { seed: 1 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-prefix-')), 'model.safetensors');
  writeSafetensors(file, new Map([...source.parameters].map(([k, v]) => [`encoder.lstm.${k}`, { shape: [...v.shape], data: v.toArray() }])));
  const target = createLayer(layers.lstm({ inputSize: 3, hiddenSize: 2 }), { seed: 2 });
  const before = target.parameters.get('weight_ih_l0')!.toArray();
  const error = t.throws(() => loadLayerState(target, file, { prefix: 'decoder.' })) as Error & { code?: string };
  t.is(error.code, 'ERR_SHAPE');
  t.regex(error.message, /missing: weight_ih_l0.*under 'decoder\.'/);
  t.deepEqual(target.parameters.get('weight_ih_l0')!.toArray(), before, 'nothing changed');
  loadLayerState(target, file, { prefix: 'encoder.lstm.' });
  t.deepEqual(target.parameters.get('weight_ih_l0')!.toArray(), source.parameters.get('weight_ih_l0')!.toArray());
});

test('the deprecated names still answer: parameters(), state(), loadState()', (t) => {
  const { model } = toy(3);
  t.deepEqual([...model.parameters().keys()], [...model.namedParameters().keys()]);
  t.deepEqual([...model.state().keys()], [...model.stateDict().keys()]);
  const other = toy(4).model;
  other.loadState(new Map([...model.stateDict()].map(([k, v]) => [k, { shape: [...v.shape], data: v.toArray() }])));
  t.deepEqual(other.stateDict().get('layers.0.weight')!.toArray(), model.stateDict().get('layers.0.weight')!.toArray());
});

test('train.json: stages count updates (epochs is their old name); a model key another preset takes is refused by the preset\'s family', async (t) => {
  const { parseTrainConfig, phasesOf } = await import('../lib/cli/config');
  const config = (extra: object) => JSON.stringify({ model: { preset: 'pyramidNet', inChannels: 1, classes: 2 }, data: { volume: 'v.npy', labels: 'l.npy' }, ...extra });
  t.deepEqual(phasesOf(parseTrainConfig(config({ stages: [{ size: [4, 8, 8], updates: 3 }] }), 'x.json')), [{ size: [4, 8, 8], steps: 3 }]);
  t.deepEqual(phasesOf(parseTrainConfig(config({ stages: [{ size: [4, 8, 8], epochs: 3 }] }), 'x.json')), [{ size: [4, 8, 8], steps: 3 }]);
  t.throws(() => parseTrainConfig(config({ stages: [{ size: [4, 8, 8], updates: 3, epochs: 3 }] }), 'x.json'), { message: /stages\[0\] needs updates/ });
  t.throws(() => parseTrainConfig(config({ stages: [{ size: [4, 8, 8], updates: 3, lr: 1 }] }), 'x.json'), { message: /unknown key 'stages\[0\]\.lr'/ });
  t.throws(() => parseTrainConfig(JSON.stringify({ model: { preset: 'pyramidNet', channels: 4 }, data: { volume: 'v.npy', labels: 'l.npy' } }), 'x.json'),
    { message: /unknown key 'model\.channels'; known: preset, inChannels/ });
  t.throws(() => parseTrainConfig(JSON.stringify({ model: { preset: 'consistentConvLstm' }, data: { volume: 'v.npy', labels: 'l.npy' } }), 'x.json'),
    { message: /expected epochs \(passes over the training sub-volumes\), or settings 'paper' for the paper's 40/ });
  t.throws(() => parseTrainConfig(JSON.stringify({ model: { preset: 'consistentConvLstm' }, settings: 'paper', steps: 5, data: { volume: 'v.npy', labels: 'l.npy' } }), 'x.json'),
    { message: /steps is not a key of the consistent ConvLSTM's training/ });
  t.throws(() => parseTrainConfig(JSON.stringify({ model: { preset: 'pyramidNet' }, switchEpoch: 3, data: { volume: 'v.npy', labels: 'l.npy' } }), 'x.json'),
    { message: /switchEpoch is for consistentConvLstm models/ });
  t.notThrows(() => parseTrainConfig(JSON.stringify({ model: { preset: 'consistentConvLstm', hidden: [4, 4, 4, 4, 4] }, settings: 'paper', size: [3, 64, 64],
    validation: { fraction: 0.25, split: 'z' }, data: { volume: 'v.npy', labels: 'l.npy' } }), 'x.json'));
});
