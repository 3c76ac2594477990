// The convolutional layers through whole models: N4 from shared/specs/znn-networks.md
// (dilated filters + max-filtering = dense sliding-window output), batch norm
// buffers, dropout modes, shape errors with layer paths, gradients.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { layers, sequential, Tensor } from '../lib';
import { modelGradients, randomArray, rng } from './helpers';

function n4(seed = 1) {
  const k = (y: number) => [1, y, y];
  return sequential([
    layers.conv({ out: 48, kernel: k(4) }), layers.tanh(), layers.maxFilter({ kernel: k(2) }),
    layers.conv({ out: 48, kernel: k(5), dilation: k(2) }), layers.tanh(), layers.maxFilter({ kernel: k(2), dilation: k(2) }),
    layers.conv({ out: 48, kernel: k(4), dilation: k(4) }), layers.tanh(), layers.maxFilter({ kernel: k(2), dilation: k(4) }),
    layers.conv({ out: 48, kernel: k(4), dilation: k(8) }), layers.tanh(), layers.maxFilter({ kernel: k(2), dilation: k(8) }),
    layers.conv({ out: 200, kernel: k(3), dilation: k(16) }), layers.tanh(),
    layers.conv({ out: 2, kernel: [1, 1, 1] }), layers.softmax(),
  ], { inChannels: 1, seed });
}

test('N4 as in the spec: 219,290 parameters, 95x95 field of view, dense output = sliding window', async (t) => {
  const model = n4();
  t.is(model.paramCount(), 219_290);
  t.deepEqual(model.outputShape([1, 1, 1, 95, 95]), [1, 2, 1, 1, 1]);
  t.deepEqual(model.outputShape([1, 1, 1, 100, 100]), [1, 2, 1, 6, 6]);
  const [H, W] = [100, 100];
  const image = randomArray(H * W, rng(5));
  const dense = (await model.predict(Tensor.fromArray(image, [1, 1, 1, H, W]))).toArray();
  for (const [y0, x0] of [[0, 0], [3, 2], [5, 5]] as const) {
    const patch = new Float32Array(95 * 95);
    for (let y = 0; y < 95; ++y) patch.set(image.subarray((y0 + y) * W + x0, (y0 + y) * W + x0 + 95), y * 95);
    const single = (await model.predict(Tensor.fromArray(patch, [1, 1, 1, 95, 95]))).toArray();
    for (let c = 0; c < 2; ++c) {
      const denseValue = dense[c * 36 + y0 * 6 + x0]!;
      t.true(Math.abs(denseValue - single[c]!) < 1e-5, `class ${c} at (${y0}, ${x0}): ${denseValue} vs ${single[c]}`);
    }
  }
  const err = t.throws(() => model.outputShape([1, 1, 1, 90, 90])) as Error & { code?: string };
  t.is(err.code, 'ERR_SHAPE');
  t.regex(err.message, /layers\.12 \(conv\): expected a volume larger than the dilated kernel \(1, 33, 33\), received \(1, 48, 1, 28, 28\)/);
});

test('a 3D encoder-decoder with every layer type: gradients match finite differences', async (t) => {
  const model = sequential([
    layers.conv({ out: 3, kernel: [3, 3, 3], padding: 'same', init: 'uniform', initScale: 0.5 }), layers.batchNorm(), layers.relu(),
    layers.maxPool({ kernel: [1, 2, 2] }), layers.conv({ out: 4, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'uniform', initScale: 0.5 }),
    layers.sigmoid(), layers.avgPool({ kernel: [1, 2, 2] }), layers.upsample({ scale: [1, 2, 2], mode: 'linear' }),
    layers.convTranspose({ out: 2, kernel: [1, 2, 2], stride: [1, 2, 2], initScale: 0.5 }), layers.dropout({ p: 0 }), layers.softmax(),
  ], { inChannels: 2, seed: 3 });
  const shape = [2, 2, 2, 8, 8];
  t.deepEqual(model.outputShape(shape), [2, 2, 2, 8, 8]);
  const data = randomArray(2 * 2 * 2 * 64, rng(9));
  const r = randomArray(2 * 2 * 2 * 64, rng(10));
  const { dx, grads } = await modelGradients(model, Tensor.fromArray(data, shape), r);
  t.deepEqual([...grads.keys()].sort(), ['layers.0.bias', 'layers.0.weight', 'layers.1.bias', 'layers.1.weight', 'layers.4.bias',
    'layers.4.weight', 'layers.8.bias', 'layers.8.weight']);
  // Training-mode loss as a function of the input (batch statistics recomputed each time).
  const loss = async (input: Float32Array) => {
    const out = (await model.forward(Tensor.fromArray(input, shape), { training: true })).toArray();
    return out.reduce((s, v, i) => s + v * r[i]!, 0);
  };
  const analytic = dx.toArray();
  for (const i of [0, 37, 100, 255]) {
    const plus = Float32Array.from(data);
    plus[i]! += 1e-2;
    const minus = Float32Array.from(data);
    minus[i]! -= 1e-2;
    const numeric = ((await loss(plus)) - (await loss(minus))) / 2e-2;
    t.true(Math.abs(numeric - analytic[i]!) < 3e-3 + 3e-2 * Math.abs(numeric), `dx[${i}] ${analytic[i]} vs ${numeric}`);
  }
});

test('batch norm running statistics are updated in training, used in inference, and saved with the weights', async (t) => {
  const model = sequential([layers.batchNorm({ momentum: 0.5 })], { inChannels: 1 });
  const x = Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 2, 2, 2]);
  await model.forward(x, { training: true });
  const mean = model.state().get('layers.0.running_mean')!.toArray()[0]!;
  t.true(Math.abs(mean - 2.25) < 1e-6, `running mean ${mean}`);  // 0.5 * 0 + 0.5 * 4.5
  const inference = (await model.predict(x)).toArray();
  const varNow = model.state().get('layers.0.running_var')!.toArray()[0]!;
  t.true(Math.abs(inference[0]! - (1 - 2.25) / Math.sqrt(varNow + 1e-5)) < 1e-5);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bn-')), 'bn.safetensors');
  model.saveWeights(file);
  const other = sequential([layers.batchNorm()], { inChannels: 1 });
  other.loadWeights(file);
  t.is(other.state().get('layers.0.running_mean')!.toArray()[0], mean);
  t.is(other.paramCount(), 2, 'running statistics are buffers, not parameters');
});

test('dropout drops about p of the voxels in training and nothing in inference', async (t) => {
  const model = sequential([layers.dropout({ p: 0.3 })], { inChannels: 1, seed: 4 });
  const x = Tensor.full([1, 1, 10, 20, 20], 1);
  const trained = (await model.forward(x, { training: true })).toArray();
  const zeros = trained.filter((v) => v === 0).length / trained.length;
  t.true(zeros > 0.25 && zeros < 0.35, `dropped ${zeros}`);
  t.true(trained.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
  t.true((await model.predict(x)).toArray().every((v) => v === 1));
});
