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
