import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { presets, readSafetensors, Tensor } from '../lib';
import { assertClose, modelGradients } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'pyramid');

/** Parameters of the paper network, counted by hand from the layer shapes. */
function expectedCount(c: number, classes: number, hidden: number[], fc: number[], k: number): number {
  let total = 0;
  let channels = c;
  hidden.forEach((o, stage) => {
    total += 6 * (4 * o * channels * k * k + 4 * o + 4 * o * o * k * k + 4 * o);
    const out = stage < fc.length ? fc[stage]! : classes;
    total += out * o + out;
    channels = out;
  });
  return total;
}

test('the paper preset has the paper structure and reports its parameter count', (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2 });
  t.deepEqual(model.layers.map((l) => l.type),
    ['pyramidLstm', 'pixelwise', 'tanh', 'pyramidLstm', 'pixelwise', 'tanh', 'pyramidLstm', 'pixelwise', 'softmax']);
  t.is(model.paramCount(), expectedCount(1, 2, [16, 32, 64], [25, 45], 7));
  t.is(model.paramCount(), 10_676_088);
  t.deepEqual(model.parameters().get('layers.0.dir5.wh')!.shape, [64, 16, 7, 7]);
  t.deepEqual(model.parameters().get('layers.7.weight')!.shape, [2, 64]);
  // U(-0.1, 0.1)
  const w = model.parameters().get('layers.3.dir2.wx')!.toArray();
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of w) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  t.true(lo >= -0.1 && hi <= 0.1 && hi > 0.099 && lo < -0.099, `range [${lo}, ${hi}]`);
  const summary = model.summary([1, 1, 20, 256, 256]);
  t.regex(summary, /layers\.6\s+pyramidLstm\s+\(1, 64, 20, 256, 256\)\s+8,206,848/);
  t.regex(summary, /total\s+10,676,088/);
  model.dispose();
});

test('a model with weights written by PyTorch gives PyTorch\'s output', async (t) => {
  const weightsFile = path.join(dir, 'paper_net_small.weights.safetensors');
  const meta = readSafetensors(weightsFile).metadata;
  const model = presets.pyramidNet({
    inChannels: Number(meta.inChannels), classes: Number(meta.classes), hidden: JSON.parse(meta.hidden!) as number[],
    fc: JSON.parse(meta.fc!) as number[], kernel: Number(meta.kernel),
  });
  model.loadWeights(weightsFile);
  const io = readSafetensors(path.join(dir, 'paper_net_small.io.safetensors')).tensors;
  const x = Tensor.fromArray(io.get('x')!.data, io.get('x')!.shape);
  const y = await model.predict(x);
  t.deepEqual(y.shape, io.get('y')!.shape);
  // float32 through three PyraMiD-LSTM layers in both implementations
  assertClose(t, y, io.get('y')!.data, { abs: 1e-5, rel: 1e-4 }, 'probabilities');
  model.dispose();
});

test('weights round-trip through safetensors; a mismatched file lists names and shapes', (t) => {
  const a = presets.pyramidNet({ inChannels: 2, classes: 3, hidden: [2, 3], fc: [4], kernel: 3, seed: 1 });
  const b = presets.pyramidNet({ inChannels: 2, classes: 3, hidden: [2, 3], fc: [4], kernel: 3, seed: 2 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-')), 'm.safetensors');
  a.saveWeights(file);
  t.notDeepEqual(b.parameters().get('layers.0.dir0.wx')!.toArray(), a.parameters().get('layers.0.dir0.wx')!.toArray());
  b.loadWeights(file);
  for (const [name, tensor] of a.parameters()) t.deepEqual(b.parameters().get(name)!.toArray(), tensor.toArray(), name);
  const other = presets.pyramidNet({ inChannels: 2, classes: 4, hidden: [2, 3], fc: [4], kernel: 3 });
  const before = other.parameters().get('layers.4.weight')!.toArray();
  const err = t.throws(() => other.loadWeights(file)) as Error & { code?: string };
  t.is(err.code, 'ERR_SHAPE');
  t.regex(err.message, /layers\.4\.weight: model \(4, 3\) vs file \(3, 3\)/);
  t.deepEqual(other.parameters().get('layers.4.weight')!.toArray(), before, 'a rejected load changes nothing');
});

test('model gradients match finite differences through two PyraMiD-LSTM stages', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2, 2], fc: [3], kernel: 3, seed: 5 });
  const shape = [1, 1, 3, 4, 3];
  const data = Float32Array.from({ length: 36 }, (_, i) => Math.sin(i * 1.7));
  const x = Tensor.fromArray(data, shape);
  const r = Float32Array.from({ length: 2 * 36 }, (_, i) => Math.cos(i * 0.9));
  const { dx, grads } = await modelGradients(model, x, r);
  const loss = async (input: Float32Array) => {
    const out = (await model.predict(Tensor.fromArray(input, shape))).toArray();
    return out.reduce((s, v, i) => s + v * r[i]!, 0);
  };
  const analytic = dx.toArray();
  const step = 1e-2;
  for (const i of [0, 7, 20, 35]) {
    const plus = Float32Array.from(data);
    plus[i]! += step;
    const minus = Float32Array.from(data);
    minus[i]! -= step;
    const numeric = ((await loss(plus)) - (await loss(minus))) / (2 * step);
    t.true(Math.abs(numeric - analytic[i]!) < 2e-3 + 2e-2 * Math.abs(numeric), `dx[${i}]: ${analytic[i]} vs ${numeric}`);
  }
  t.is(grads.size, model.parameters().size);
  t.deepEqual(grads.get('layers.3.dir4.wh')!.shape, [8, 2, 3, 3]);
});
