// Seed 004's networks: N4, VD2D and VD2D3D as ZNN defines them (parameter counts,
// fields of view), and their dense output against the max-pooling nets they stand
// for (test/fixtures/make_znn_fixtures.py).
import * as path from 'node:path';
import test from 'ava';
import { presets, readSafetensors, Tensor, type ModelBase, type NamedArray } from '../lib';
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

for (const name of ['n4', 'vd2d', 'vd2d3d_recursive']) {
  test(`${name}: the dense output equals the max-pooling net on each voxel's window (PyTorch)`, async (t) => {
    const f = readSafetensors(path.join(dir, `${name}.safetensors`));
    const meta = JSON.parse(f.metadata.case!) as { preset: 'n4' | 'vd2d' | 'vd2d3d'; options: object; voxels: number[][]; outSize: number[] };
    const model = (presets[meta.preset] as (o: object) => ModelBase)(meta.options);
    model.loadState(hashedState(model));
    const image = f.tensors.get('image')!, boundary = f.tensors.get('boundary');
    const x = Tensor.fromArray(image.data, image.shape);
    const input = boundary ? { image: x, boundary: Tensor.fromArray(boundary.data, boundary.shape) } : x;
    const probs = await model.predict(input);
    t.deepEqual(probs.shape, [1, 2, ...meta.outSize]);
    const p = probs.toArray(), expected = f.tensors.get('expected')!.data;
    const [oz, oy, ox] = meta.outSize as [number, number, number];
    meta.voxels.forEach(([z, y, xx], i) => {
      for (let c = 0; c < 2; ++c) {
        const got = p[((c * oz + z!) * oy + y!) * ox + xx!]!;
        t.true(Math.abs(got - expected[i * 2 + c]!) < 2e-5, `voxel (${z}, ${y}, ${xx}) class ${c}: ${got} vs ${expected[i * 2 + c]}`);
      }
    });
  });
}

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
