import test from 'ava';
import { graph, layers, Tensor, Trainer, VolumeSampler } from '../lib';
import { modelGradients, randomArray, rng } from './helpers';

// Two input streams (an image and a boundary map, as in recursive training), a
// skip connection (sum), a multiplicative gate and a concatenation.
function twoStream(seed = 2) {
  return graph({
    inputs: { image: 2, boundary: 1 },
    nodes: [
      { name: 'a', layer: layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'uniform', initScale: 0.4 }), input: 'image' },
      { name: 'b', layer: layers.conv({ out: 3, kernel: [1, 3, 3], padding: [0, 1, 1], init: 'uniform', initScale: 0.4 }), input: 'boundary' },
      { name: 'skip', join: 'sum', inputs: ['a', 'b'] },
      { name: 'act', layer: layers.tanh(), input: 'skip' },
      { name: 'gate', layer: layers.sigmoid(), input: 'b' },
      { name: 'gated', join: 'mul', inputs: ['act', 'gate'] },
      { name: 'both', join: 'concat', inputs: ['gated', 'a'] },
      { name: 'head', layer: layers.pixelwise({ units: 2 }), input: 'both' },
      { name: 'out', layer: layers.softmax(), input: 'head' },
    ],
    seed,
  });
}

test('a graph with two inputs, sum, mul and concat: names, shapes, and gradients vs finite differences', async (t) => {
  const model = twoStream();
  t.deepEqual([...model.parameters().keys()],
    ['nodes.a.weight', 'nodes.a.bias', 'nodes.b.weight', 'nodes.b.bias', 'nodes.head.weight', 'nodes.head.bias']);
  t.deepEqual(model.outputShape({ image: [1, 2, 2, 5, 6], boundary: [1, 1, 2, 5, 6] }), [1, 2, 2, 5, 6]);
  t.regex(model.summary({ image: [1, 2, 2, 5, 6], boundary: [1, 1, 2, 5, 6] }), /nodes\.head\s+pixelwise\s+\(1, 2, 2, 5, 6\)\s+14/);
  const image = randomArray(2 * 2 * 30, rng(1));
  const boundary = randomArray(2 * 30, rng(2));
  const r = randomArray(2 * 2 * 30, rng(3));
  const { dxs, grads } = await modelGradients(model, { image: Tensor.fromArray(image, [1, 2, 2, 5, 6]), boundary: Tensor.fromArray(boundary, [1, 1, 2, 5, 6]) }, r);
  t.is(grads.size, 6);
  const loss = async (im: Float32Array, bd: Float32Array) => {
    const out = (await model.predict({ image: Tensor.fromArray(im, [1, 2, 2, 5, 6]), boundary: Tensor.fromArray(bd, [1, 1, 2, 5, 6]) } as never)).toArray();
    return out.reduce((s, v, i) => s + v * r[i]!, 0);
  };
  for (const [name, data, index] of [['image', image, 7], ['image', image, 100], ['boundary', boundary, 3], ['boundary', boundary, 44]] as const) {
    const plus = Float32Array.from(data);
    plus[index]! += 1e-2;
    const minus = Float32Array.from(data);
    minus[index]! -= 1e-2;
    const numeric = name === 'image' ? ((await loss(plus, boundary)) - (await loss(minus, boundary))) / 2e-2
      : ((await loss(image, plus)) - (await loss(image, minus))) / 2e-2;
    const analytic = dxs.get(name)!.toArray()[index]!;
    t.true(Math.abs(numeric - analytic) < 2e-3 + 2e-2 * Math.abs(numeric), `d${name}[${index}] ${analytic} vs ${numeric}`);
  }
});

test('graph errors name the node: unknown inputs, channel mismatch at a join, missing inputs', async (t) => {
  t.throws(() => graph({ inputs: { x: 1 }, nodes: [{ name: 'c', layer: layers.relu(), input: 'y' }] }),
    { message: /node 'c' reads 'y', which is neither an input nor an earlier node; known so far: x/ });
  t.throws(() => graph({
    inputs: { x: 1, z: 2 }, nodes: [{ name: 's', join: 'sum', inputs: ['x', 'z'] }],
  }), { message: /nodes\.s \(sum\): expected inputs with equal channels, received x: 1, z: 2/ });
  const model = twoStream();
  t.throws(() => model.outputShape({ image: [1, 2, 2, 5, 6], boundary: [1, 1, 2, 5, 7] }), { message: /nodes\.skip \(sum\): expected inputs of one batch and spatial size/ });
  await t.throwsAsync(model.forward({ image: Tensor.zeros([1, 2, 2, 5, 6]) } as never), { message: /missing input 'boundary'/ });
});

test('a single-input graph trains with the Trainer (skip connection U-Net style)', async (t) => {
  const model = graph({
    inputs: { x: 1 },
    nodes: [
      { name: 'enc', layer: layers.conv({ out: 4, kernel: [1, 3, 3], padding: [0, 1, 1] }), input: 'x' },
      { name: 'down', layer: layers.maxPool({ kernel: [1, 2, 2] }), input: 'enc' },
      { name: 'mid', layer: layers.conv({ out: 4, kernel: [1, 3, 3], padding: [0, 1, 1] }), input: 'down' },
      { name: 'up', layer: layers.upsample({ scale: [1, 2, 2] }), input: 'mid' },
      { name: 'skip', join: 'concat', inputs: ['enc', 'up'] },
      { name: 'head', layer: layers.pixelwise({ units: 2 }), input: 'skip' },
      { name: 'out', layer: layers.softmax(), input: 'head' },
    ],
    seed: 1,
  });
  const random = rng(4);
  const labels = Float32Array.from({ length: 4 * 16 * 16 }, () => (random() < 0.4 ? 1 : 0));
  const volume = labels.map((v) => (v ? 1 : -1) + 0.2 * (random() - 0.5));
  const losses: number[] = [];
  await new Trainer(model, { seed: 1, optimizer: { kind: 'adam' }, schedule: { kind: 'constant', lr: 0.05 } })
    .fit({ data: new VolumeSampler({ volume, shape: [1, 4, 16, 16], labels }), steps: 40, size: [2, 8, 8], onProgress: (p) => losses.push(p.loss) });
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  t.true(last < first * 0.5, `loss ${first} -> ${last}`);
});
