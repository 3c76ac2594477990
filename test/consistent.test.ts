// The consistent ConvLSTM (seed 002): the assignment solver against SciPy, the
// matched soft-IoU loss, the ResNet-50 encoder against torchvision, the CConvLSTM
// module against an independent PyTorch version, and a small end-to-end run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { createLayer, GradientTape, layers, linearSumAssignment, loadLayerState, matchedSoftIoU, readSafetensors, Resnet50Encoder, Tensor, torchvisionResnet50State, type NamedArray } from '../lib';
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
