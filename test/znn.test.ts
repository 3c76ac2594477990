// Seed 004's networks: N4, VD2D and VD2D3D as ZNN defines them (parameter counts,
// fields of view), their dense output against the max-pooling nets they stand
// for (test/fixtures/make_znn_fixtures.py), in both settings ('modern' and ZNN's
// 'znn-v1': scaled tanh and ZNN's initial weights).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { createLayer, estimateStepMemory, GradientTape, sequential, layers, loadModel, presets, readSafetensors, Tensor, type Graph, type ModelBase, type NamedArray } from '../lib';
import { hashed } from './helpers';

const dir = path.join(__dirname, 'fixtures', 'znn');

/** The fixture script's weights: keyed by the index of the name in sorted order; uniform with variance 2 / fanIn, biases U(-0.1, 0.1). */
function hashedState(model: ModelBase): Map<string, NamedArray> {
  const names = [...model.parameters().keys()].sort();
  return new Map(names.map((name, k) => {
    const p = model.parameters().get(name)!;
    const u = hashed(p.size, k);
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    const data = Float32Array.from(u, (v) => (p.rank === 1 ? 0.1 * (2 * v - 1) : (2 * v - 1) * Math.sqrt(6 / fanIn)));
    return [name, { shape: [...p.shape], data }];
  }));
}

test('N4, VD2D and VD2D3D have ZNN\'s parameter counts and fields of view', (t) => {
  const cases: Array<[string, ModelBase, number, number[]]> = [
    ['n4', presets.n4(), 219_290, [1, 95, 95]],
    ['vd2d', presets.vd2d(), 230_714, [1, 109, 109]],
    ['vd2d tanh', presets.vd2d({ activation: 'tanh' }), 230_714, [1, 109, 109]],
    ['vd2d3d', presets.vd2d3d(), 288_734, [5, 85, 85]],
    ['vd2d3d recursive', presets.vd2d3d({ recursive: true }), 296_486, [5, 85, 85]],
  ];
  for (const [name, model, params, fov] of cases) {
    t.is(model.paramCount(), params, `${name} parameters`);
    t.deepEqual(model.fieldOfView(), fov, `${name} field of view (z, y, x)`);
  }
  t.deepEqual(Object.keys(presets.vd2d3d({ recursive: true }).inputs), ['image', 'boundary']);
  t.true([...presets.vd2d3d({ recursive: true }).parameters().keys()].includes('nodes.conv1c_r.weight'));
  t.false([...presets.vd2d3d({ recursive: true }).parameters().keys()].includes('nodes.conv1c_r.bias'), 'conv1c-r has no own bias');
  t.throws(() => presets.vd2d({ activation: 'sigmoid' as never }), { message: /'relu' or 'tanh'/ });
});

/** A model's state as plain arrays (what loadState takes). */
function plain(model: ModelBase): Map<string, NamedArray> {
  return new Map([...model.stateDict()].map(([k, v]) => [k, { shape: [...v.shape], data: v.toArray() }]));
}

interface ZnnCase {
  preset: 'n4' | 'vd2d' | 'vd2d3d'; options: object; voxels: number[][]; outSize: number[];
  /** The same volume and weights through other options of the preset: their expected tensor's name. */
  variants: Array<{ options: object; expected: string }>;
}

for (const name of ['n4', 'vd2d', 'vd2d3d_recursive']) {
  test(`${name}: the dense output equals the max-pooling net on each voxel's window (PyTorch), in every setting and variant`, async (t) => {
    const f = readSafetensors(path.join(dir, `${name}.safetensors`));
    const meta = JSON.parse(f.metadata.case!) as ZnnCase;
    const image = f.tensors.get('image')!, boundary = f.tensors.get('boundary');
    const x = Tensor.fromArray(image.data, image.shape);
    const input = boundary ? { image: x, boundary: Tensor.fromArray(boundary.data, boundary.shape) } : x;
    const [oz, oy, ox] = meta.outSize as [number, number, number];
    const runs = [{ options: meta.options, expected: 'expected' }, ...meta.variants];
    t.true(runs.length >= 2, 'each net has at least one variant');
    for (const run of runs) {
      const model = (presets[meta.preset] as (o: object) => ModelBase)(run.options);
      model.loadState(hashedState(model));
      const probs = await model.predict(input);
      t.deepEqual(probs.shape, [1, 2, ...meta.outSize]);
      const p = probs.toArray(), expected = f.tensors.get(run.expected)!.data;
      meta.voxels.forEach(([z, y, xx], i) => {
        for (let c = 0; c < 2; ++c) {
          const got = p[((c * oz + z!) * oy + y!) * ox + xx!]!;
          t.true(Math.abs(got - expected[i * 2 + c]!) < 2e-5,
            `${JSON.stringify(run.options)} voxel (${z}, ${y}, ${xx}) class ${c}: ${got} vs ${expected[i * 2 + c]}`);
        }
      });
    }
  });
}

test('settings \'znn-v1\' is LeCun\'s tanh where ZNN has tanh; both settings share one state dict, and checkpoints load across them', (t) => {
  const scaled = (m: Graph) => {
    const window = [1, 1, ...m.fieldOfView()!];
    const summary = m.summary(Object.fromEntries(Object.keys(m.inputs).map((k) => [k, window])));
    return summary.split('\n').filter((l) => /1\.7159 tanh\(0\.6666 x\)/.test(l)).length;
  };
  t.is(scaled(presets.n4({ settings: 'znn-v1' })), 5, 'N4: conv1..conv4 and fc');
  t.is(scaled(presets.n4()), 0, 'the default is \'modern\': plain tanh');
  t.is(scaled(presets.vd2d({ settings: 'znn-v1', activation: 'tanh' })), 4, 'VD2D tanh variant: conv1c, conv2b, conv3b, conv4b');
  t.is(scaled(presets.vd2d({ settings: 'znn-v1' })), 0, 'the ReLU VD2D has no tanh');
  t.is(scaled(presets.vd2d3d({ settings: 'znn-v1', activation: 'tanh', recursive: true })), 3, 'VD2D3D tanh variant: conv1c, conv2b, conv3b');
  for (const [preset, options] of [['n4', {}], ['vd2d', { activation: 'tanh' }], ['vd2d3d', { activation: 'tanh', recursive: true }]] as const) {
    const build = presets[preset] as (o: object) => ModelBase;
    const modern = build({ ...options, seed: 1 }), znn = build({ ...options, seed: 1, settings: 'znn-v1' });
    const shapes = (m: ModelBase) => [...m.stateDict()].map(([k, v]) => `${k} ${v.shape.join('x')}`).sort();
    t.deepEqual(shapes(znn), shapes(modern), `${preset}: same names and shapes`);
    const first = preset === 'n4' ? 'nodes.conv1.weight' : 'nodes.conv1c.weight';
    // ZNN's VD2D3D files start every convolution MSRA, as 'modern' does: the same seed gives the same weights.
    const ours = modern.parameters().get(first)!.toArray();
    const same = znn.parameters().get(first)!.toArray().every((w, i) => w === ours[i]);
    t.is(same, preset === 'vd2d3d', `${preset}: ${first} starts ${preset === 'vd2d3d' ? 'as' : 'unlike'} 'modern'`);
    znn.loadState(plain(modern));
    const loaded = znn.stateDict();
    t.true([...modern.stateDict()].every(([k, v]) => {
      const a = loaded.get(k)!.toArray(), b = v.toArray();
      return a.every((w, i) => w === b[i]);
    }), `${preset}: a modern checkpoint loads into the znn-v1 net`);
  }
  const bad = t.throws(() => presets.vd2d({ settings: 'znn-v2' as never })) as Error & { code?: string };
  t.is(bad.code, 'ERR_ARGUMENT');
  t.regex(bad.message, /vd2d: settings: expected 'modern' or 'znn-v1', received the string 'znn-v2'/);
  t.throws(() => layers.tanh({ amplitude: -1 }), { message: /tanh: amplitude: expected a positive number, received the number -1/ });
  t.throws(() => layers.tanh({ gain: 2 } as never), { message: /tanh: unknown option 'gain'; known: amplitude, slope/ });
});

test('settings \'znn-v1\' starts the weights as ZNN\'s files: U(-0.05, 0.05), Xavier or MSRA per layer; biases 0', (t) => {
  const moments = (a: Float32Array) => {
    let sum = 0, sq = 0, max = 0;
    for (const v of a) { sum += v; sq += v * v; max = Math.max(max, Math.abs(v)); }
    const mean = sum / a.length;
    return { mean, variance: sq / a.length - mean * mean, max };
  };
  const weight = (m: ModelBase, layer: string) => m.parameters().get(`nodes.${layer}.weight`)!.toArray();
  const uniform = (r: number) => ({ variance: (r * r) / 3, max: r });
  // Relative tolerance on the variance: each layer has >= 20,000 weights, so its sample variance is within ~2% (4 sigma < 5%).
  const check = (a: Float32Array, what: string, expected: { variance: number; max?: number }) => {
    const s = moments(a);
    t.true(Math.abs(s.mean) < 4 * Math.sqrt(expected.variance / a.length), `${what}: mean ${s.mean}`);
    t.true(Math.abs(s.variance / expected.variance - 1) < 0.05, `${what}: variance ${s.variance} vs ${expected.variance}`);
    if (expected.max !== undefined) t.true(s.max <= expected.max && s.max > 0.99 * expected.max, `${what}: max |w| ${s.max} vs ${expected.max}`);
  };
  const n4 = presets.n4({ settings: 'znn-v1', seed: 3 });
  check(weight(n4, 'conv2'), 'N4 conv2 (48x48x5x5)', uniform(0.05));
  check(weight(n4, 'fc'), 'N4 fc (200x48x3x3)', uniform(0.05));
  t.true([...n4.parameters()].filter(([k]) => k.endsWith('.bias')).every(([, b]) => b.toArray().every((v) => v === 0)), 'N4 biases 0');
  const vd2d = presets.vd2d({ settings: 'znn-v1', activation: 'tanh', seed: 3 });
  check(weight(vd2d, 'conv5'), 'VD2D tanh conv5 (before a ReLU)', uniform(0.05));
  // conv4b (60x60x1x3x3): fanIn = fanOut = 540, as ZNN's xavier (in or out maps times the kernel's size).
  check(weight(vd2d, 'conv4b'), 'VD2D tanh conv4b (before a tanh)', uniform(Math.sqrt(6 / (540 + 540))));
  const relu = presets.vd2d3d({ settings: 'znn-v1', recursive: true, seed: 3 });
  // conv4c (100x60x2x3x3): MSRA normal, variance 2 / fanIn = 2 / 1080.
  check(weight(relu, 'conv4c'), 'VD2D3D conv4c', { variance: 2 / 1080 });
  // The setting's choice yields to an explicit init.
  check(weight(presets.n4({ settings: 'znn-v1', init: 'msra', seed: 3 }), 'conv2'), 'N4 conv2 with init msra', { variance: 2 / 1200 });
});

test('a saved znn-v1 model records its setting and reloads with the same outputs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-znn-v1-'));
  const model = presets.vd2d({ settings: 'znn-v1', activation: 'tanh', seed: 4 });
  // The fixtures' weights, larger than ZNN's initial ones, so the two tanh differ well above float noise.
  model.loadState(hashedState(model));
  const x = Tensor.fromArray(Float32Array.from({ length: 112 * 113 }, (_, i) => Math.sin(i * 0.013) + Math.cos(i * 0.0071)), [1, 1, 1, 112, 113]);
  const before = (await model.predict(x)).toArray();
  model.save(path.join(dir, 'vd2d.safetensors'));
  const back = loadModel(path.join(dir, 'vd2d.safetensors'));
  t.deepEqual(back.architecture(), { kind: 'preset', preset: 'vd2d', options: { settings: 'znn-v1', activation: 'tanh', seed: 4 } });
  t.deepEqual((await back.predict(x)).toArray(), before);
  // The same weights through plain tanh give other outputs: the setting, not only the weights, is what came back.
  const modern = presets.vd2d({ activation: 'tanh' });
  modern.loadState(plain(back));
  const other = (await modern.predict(x)).toArray();
  t.true(other.some((v, i) => Math.abs(v - before[i]!) > 1e-3));
  t.deepEqual(modern.architecture(), { kind: 'preset', preset: 'vd2d', options: { activation: 'tanh', settings: 'modern' } });
});

test('the scaled tanh layer: amplitude * tanh(slope * x), its gradient amplitude * slope * (1 - tanh^2)', async (t) => {
  const layer = createLayer(layers.tanh({ amplitude: 1.7159, slope: 0.6666 }), { inChannels: 1 });
  const values = [-3, -0.5, 0, 0.25, 1, 4];
  const x = Tensor.fromArray(values, [1, 1, 1, 2, 3]);
  const tape = new GradientTape();
  tape.watch(x);
  const y = await tape.record(() => layer.forward(x, { training: true, random: Math.random }));
  const dy = Tensor.fromArray([1, 2, 3, 4, 5, 6], [1, 1, 1, 2, 3]);
  const dx = (await tape.backward(y, dy)).get(x)!.toArray();
  values.forEach((v, i) => {
    const th = Math.tanh(0.6666 * v);
    t.true(Math.abs(y.toArray()[i]! - 1.7159 * th) < 1e-6, `y(${v})`);
    t.true(Math.abs(dx[i]! - (i + 1) * 1.7159 * 0.6666 * (1 - th * th)) < 1e-5, `dx(${v})`);
  });
  tape.dispose();
  // It keeps tanh's output (the size of its input) for the gradient, besides its own output: the memory planner counts that.
  const memory = (tanh: ReturnType<typeof layers.tanh>) =>
    estimateStepMemory(sequential([layers.conv({ out: 4, kernel: 3 }), tanh, layers.conv({ out: 2, kernel: 1 })], { inChannels: 1 }), [1, 1, 6, 6, 6])!;
  const plainTanh = memory(layers.tanh()), lecun = memory(layers.tanh({ amplitude: 1.7159, slope: 0.6666 }));
  // The next convolution keeps its input either way; the scaled tanh adds tanh's output, 4 maps of 4x4x4 floats.
  t.is(lecun.keptBytes, plainTanh.keptBytes + 4 * 4 * 64, 'one more tensor of the output size kept');
  t.true(lecun.peakBytes > plainTanh.peakBytes, 'its intermediates raise the peak');
  t.deepEqual(layers.tanh().options, {}, 'plain tanh stores no options (older model files rebuild the same)');
  t.deepEqual(layers.tanh({ amplitude: 1.7159, slope: 0.6666 }).options, { amplitude: 1.7159, slope: 0.6666 });
});

test('predictVolume stitches valid networks: mirrored borders, any window gives the single-pass result (one input and two)', async (t) => {
  const { predictVolume } = await import('../lib');
  const n4 = presets.n4({ seed: 3 });
  const image = Tensor.fromArray(Float32Array.from({ length: 2 * 20 * 24 }, (_, i) => Math.sin(i * 0.37)), [1, 1, 2, 20, 24]);
  const whole = (await predictVolume(n4, image, { window: [2, 20, 24] })).toArray();
  const tiled = await predictVolume(n4, image, { window: [1, 8, 10], overlap: 0.25 });
  t.deepEqual(tiled.shape, [1, 2, 2, 20, 24]);
  const a = tiled.toArray();
  t.true(a.every((v, i) => Math.abs(v - whole[i]!) < 1e-5), 'a dense net gives each voxel the same output in any window');
  const rec = presets.vd2d3d({ recursive: true, seed: 2 });
  rec.info = { normalize: { image: 'slice', boundary: 'none' } };
  const inputs = {
    image: Tensor.fromArray(Float32Array.from({ length: 6 * 18 * 20 }, (_, i) => Math.cos(i * 0.21)), [1, 1, 6, 18, 20]),
    boundary: Tensor.fromArray(Float32Array.from({ length: 6 * 18 * 20 }, (_, i) => Math.sin(i * 0.05)), [1, 1, 6, 18, 20]),
  };
  const full = (await predictVolume(rec, inputs, { window: [6, 18, 20] })).toArray();
  const parts = (await predictVolume(rec, inputs, { window: [3, 9, 10], overlap: 0.5 })).toArray();
  t.true(parts.every((v, i) => Math.abs(v - full[i]!) < 1e-5));
  const missing = await t.throwsAsync(predictVolume(rec, { image: inputs.image } as never, { window: [3, 9, 10] }));
  t.regex(missing!.message, /missing input 'boundary'/);
});

test('transferWeights: VD2D3D starts from VD2D\'s conv1a..conv3b and says what it copied; the boundary map is in [-1, 1]', async (t) => {
  const { transferWeights, vd2dSharedLayers, recursiveBoundaryMap } = await import('../lib');
  const vd2d = presets.vd2d({ seed: 5 });
  const vd2d3d = presets.vd2d3d({ recursive: true, seed: 6 });
  const fresh4a = vd2d3d.parameters().get('nodes.conv4a.weight')!.toArray();
  const report = transferWeights(vd2d, vd2d3d, { layers: vd2dSharedLayers });
  t.deepEqual(report.transferred.length, 14);
  t.true(report.transferred.includes('nodes.conv3b.bias'));
  t.true(report.fresh.includes('nodes.conv1a_r.weight') && report.fresh.includes('nodes.conv4a.weight') && report.fresh.includes('nodes.output.weight'));
  t.deepEqual(vd2d3d.parameters().get('nodes.conv2b.weight')!.toArray(), vd2d.parameters().get('nodes.conv2b.weight')!.toArray());
  t.deepEqual(vd2d3d.parameters().get('nodes.conv4a.weight')!.toArray(), fresh4a, 'layers outside the list keep their weights');
  // Without a list, conv4a/b (1x3x3 vs 2x3x3) and the output (200 vs 100 inputs) have counterparts of other shapes: reported, not copied.
  const all = transferWeights(vd2d, presets.vd2d3d({ seed: 7 }));
  t.deepEqual(all.mismatched.map((m) => m.name), ['nodes.conv4a.weight', 'nodes.conv4b.weight', 'nodes.output.weight']);
  t.throws(() => transferWeights(vd2d, vd2d3d, { layers: ['conv9'] }), { message: /nothing was copied for conv9/ });
  const volume = Float32Array.from({ length: 1 * 12 * 14 }, (_, i) => Math.sin(i * 0.3));
  const map = await recursiveBoundaryMap(presets.vd2d({ seed: 1 }), volume, [1, 12, 14], { window: [1, 6, 7] });
  t.is(map.length, volume.length);
  t.true(map.every((v) => v >= -1 && v <= 1));
});

test('the paper\'s pipeline end to end at a small size: N4, VD2D, VD2D3D recursive, scored on held-out slices', async (t) => {
  const { runPipeline } = await import('../benchmarks/znn_pipeline');
  const lines: string[] = [];
  const scores = await runPipeline({ size: [8, 124, 124], heldOut: 3, patch: 8, steps: 4, log: (l) => lines.push(l) });
  t.deepEqual(scores.map((s) => s.network), ['N4', 'VD2D', 'VD2D3D (recursive)']);
  for (const s of scores) {
    for (const v of [s.pixelError, s.randThreshold, s.randWatershed]) t.true(v >= 0 && v <= 1, `${s.network}: ${v}`);
    t.true(Number.isFinite(s.firstLoss) && Number.isFinite(s.lastLoss));
  }
  t.true(lines.some((l) => /VD2D3D starts from VD2D's 14 tensors of conv1a\.\.conv3b/.test(l)));
  t.log(lines.filter((l) => /held-out/.test(l)).join(' | '));
});

test('a train config\'s settings \'paper\' builds the ZNN nets with settings \'znn-v1\'; model.settings in the config wins', async (t) => {
  const { parseTrainConfig, buildModel, paperSettings } = await import('../lib/cli/config');
  const built = (model: object, settings?: 'paper') => {
    const config = parseTrainConfig(JSON.stringify({ model, data: { volume: 'v.npy', labels: 'l.npy' }, steps: 1, ...(settings ? { settings } : {}) }), 'train.json');
    return buildModel(config, paperSettings(config)).architecture();
  };
  t.deepEqual(built({ preset: 'n4' }, 'paper'), { kind: 'preset', preset: 'n4', options: { settings: 'znn-v1' } });
  t.deepEqual(built({ preset: 'n4', settings: 'modern' }, 'paper'), { kind: 'preset', preset: 'n4', options: { settings: 'modern' } });
  t.deepEqual(built({ preset: 'vd2d', activation: 'tanh', settings: 'znn-v1' }), { kind: 'preset', preset: 'vd2d', options: { activation: 'tanh', settings: 'znn-v1' } });
  t.deepEqual(built({ preset: 'vd2d' }), { kind: 'preset', preset: 'vd2d', options: { settings: 'modern' } });
  const bad = t.throws(() => built({ preset: 'vd2d3d', settings: 'paper' })) as Error & { code?: string };
  t.is(bad.code, 'ERR_ARGUMENT');
  t.regex(bad.message, /vd2d3d: settings: expected 'modern' or 'znn-v1', received the string 'paper'/);
});
