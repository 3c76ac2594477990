import test from 'ava';
import {
  gaussianWeight, layers, normalizeSlices, ops, predictVolume, preprocessZeroingNonFinite, presets, sequential, Tensor, windowStarts, type SegvolError,
} from '../lib';
import { assertClose, randomArray, rng } from './helpers';

test('window starts cover the axis, the last flush with the end', (t) => {
  t.deepEqual(windowStarts(10, 4, 0.5), [0, 2, 4, 6]);
  t.deepEqual(windowStarts(11, 4, 0.5), [0, 2, 4, 6, 7]);
  t.deepEqual(windowStarts(4, 8, 0.5), [0]);
  t.deepEqual(windowStarts(9, 3, 0), [0, 3, 6]);
  const w = gaussianWeight([3, 5, 5], 1 / 8);
  t.is(w[(1 * 5 + 2) * 5 + 2], 1, 'centre weight 1');
  t.true(w[0]! >= 1e-3 && w[0]! < 0.01, 'corners weigh least, but count');
});

test('stitched prediction equals the single-window prediction when one window covers the volume', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 3, hidden: [3], fc: [], kernel: 3, seed: 4 });
  const x = Tensor.fromArray(randomArray(5 * 9 * 7, rng(1)), [1, 1, 5, 9, 7]);
  const direct = await model.predict(x);
  const stitched = await predictVolume(model, x, { window: [8, 16, 16] });
  t.deepEqual(stitched.shape, [1, 3, 5, 9, 7]);
  assertClose(t, stitched, direct, { abs: 1e-6, rel: 1e-6 }, 'stitched vs direct');
});

test('stitching many windows: probabilities stay normalised, progress counts every window, borders covered', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 5 });
  const x = Tensor.fromArray(randomArray(7 * 20 * 17, rng(2)), [1, 1, 7, 20, 17]);
  const seen: number[] = [];
  const y = await predictVolume(model, x, { window: [4, 8, 8], overlap: 0.5, onProgress: (done, total) => seen.push(done / total) });
  // windows: z [0, 2, 3], y [0, 4, 8, 12], x [0, 4, 8, 9] -> 48
  t.is(seen.length, 3 * 4 * 4);
  t.is(seen[seen.length - 1], 1);
  const p = y.toArray();
  const n = 7 * 20 * 17;
  for (let i = 0; i < n; ++i) t.true(Math.abs(p[i]! + p[n + i]! - 1) < 1e-5, `voxel ${i} sums to ${p[i]! + p[n + i]!}`);
  // A voxel seen by one window only takes that window's value exactly.
  const corner = await model.predict(Tensor.fromArray(x.toArray().filter((_, i) => {
    const z = Math.floor(i / (20 * 17)), yy = Math.floor(i / 17) % 20, xx = i % 17;
    return z < 4 && yy < 8 && xx < 8;
  }), [1, 1, 4, 8, 8]));
  t.true(Math.abs(corner.toArray()[0]! - p[0]!) < 1e-6);
  await t.throwsAsync(predictVolume(model, x, { window: [4, 8] as never }), { message: /three positive integers/ });
  await t.throwsAsync(predictVolume(model, Tensor.zeros([1, 7, 20, 17]), { window: [4, 8, 8] }), { message: /\(1, C, D, H, W\)/ });
});

/** A 'same' network whose classes depend on direction (so flips change its output), pre-processing per slice. */
function sameNet(seed = 7) {
  const model = sequential([layers.conv({ out: 4, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.relu(),
    layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed });
  model.info = { normalize: 'slice' };
  return model;
}

/** A (1, 1, D, H, W) volume with 100 NaN voxels in slice 3 (and one +Infinity in slice 5). */
function withNonFinite(dims: readonly [number, number, number]) {
  const [, H, W] = dims;
  const data = randomArray(dims[0] * H * W, rng(11));
  for (let i = 0; i < 100; ++i) data[3 * H * W + 40 + i] = NaN;
  data[5 * H * W + 2 * W + 1] = Infinity;
  return data;
}

test('non-finite inputs: model.predict and predictVolume refuse them with ERR_NON_FINITE (how many, which slices, where) before any window', async (t) => {
  const model = sameNet();
  const dims = [7, 12, 20] as const;
  const x = Tensor.fromArray(withNonFinite(dims), [1, 1, ...dims]);
  const direct = await t.throwsAsync(model.predict(x)) as SegvolError;
  t.is(direct.code, 'ERR_NON_FINITE');
  t.regex(direct.message, /predict: the input holds 101 non-finite voxels \(100 NaN, 1 infinite\) in slices z 3, 5; the first at \(n, c, z, y, x\) \(0, 0, 3, 2, 0\), \(0, 0, 3, 2, 1\)/);
  t.regex(direct.message, /nonFinite: 'zero' \(segvol predict --non-finite zero\)/);
  let windows = 0;
  const stitched = await t.throwsAsync(predictVolume(model, x, { window: [4, 8, 8], onProgress: () => ++windows })) as SegvolError;
  t.is(stitched.code, 'ERR_NON_FINITE');
  t.regex(stitched.message, /predictVolume: the input holds 101 non-finite voxels \(100 NaN, 1 infinite\) in slices z 3, 5; the first at \(c, z, y, x\) \(0, 3, 2, 0\), \(0, 3, 2, 1\), \(0, 3, 2, 2\), \(0, 3, 2, 3\), \(0, 3, 2, 4\), \.\.\./);
  t.is(windows, 0, 'no window was computed');
  await t.throwsAsync(predictVolume(model, x, { window: [4, 8, 8], nonFinite: 'drop' as never }), { message: /expected nonFinite 'error' or 'zero'/ });
});

test("nonFinite 'zero': statistics skip the non-finite voxels, which become 0 after pre-processing (model.predict and predictVolume alike)", async (t) => {
  const model = sameNet();
  const dims = [7, 12, 20] as const;
  const raw = withNonFinite(dims);
  // By hand: slice 3's statistics over its finite voxels, the NaN voxels 0 afterwards.
  const prepared = preprocessZeroingNonFinite(raw, [1, 1, ...dims], 'slice');
  const plane = dims[1] * dims[2];
  const finite = [...raw.subarray(3 * plane, 4 * plane)].filter(Number.isFinite);
  const mean = finite.reduce((a, b) => a + b, 0) / finite.length;
  const std = Math.sqrt(finite.reduce((a, b) => a + (b - mean) ** 2, 0) / finite.length);
  t.true(Math.abs(prepared[3 * plane]! - (raw[3 * plane]! - mean) / std) < 1e-5, 'a finite voxel of slice 3 standardised by the finite statistics');
  t.is(prepared[3 * plane + 40], 0);
  t.is(prepared[5 * plane + 2 * dims[2] + 1], 0);
  t.deepEqual([...prepared.subarray(0, plane)], [...normalizeSlices(raw.subarray(0, plane), [1, dims[1], dims[2]])], 'slices without any are as before');
  const x = Tensor.fromArray(raw, [1, 1, ...dims]);
  const zeroed = await model.predict(x, { nonFinite: 'zero' });
  const expected = await model.predict(Tensor.fromArray(prepared, [1, 1, ...dims]), { preprocess: false });
  t.deepEqual([...zeroed.toArray()], [...expected.toArray()]);
  t.true(zeroed.toArray().every(Number.isFinite));
  const stitched = await predictVolume(model, x, { window: [4, 8, 8], nonFinite: 'zero' });
  const reference = await predictVolume(model, Tensor.fromArray(prepared, [1, 1, ...dims]), { window: [4, 8, 8], preprocess: false });
  t.deepEqual(Buffer.from(stitched.toArray().buffer), Buffer.from(reference.toArray().buffer));
});

test('test-time augmentation: the mirrored prediction is the mean of the flipped predictions computed by hand; a subset of axes flips only those', async (t) => {
  const model = sameNet(3);
  const dims = [6, 10, 9] as const;
  const x = Tensor.fromArray(randomArray(6 * 10 * 9, rng(5)), [1, 1, ...dims]);
  const byHand = async (sets: number[][]) => {
    const sum = new Float64Array(3 * 6 * 10 * 9);
    for (const axes of sets) {
      const flipped = axes.length ? ops.flip(x, axes) : x;
      const p = await model.predict(flipped);
      const back = axes.length ? ops.flip(p, axes) : p;
      back.toArray().forEach((v, i) => (sum[i]! += v));
    }
    return Float32Array.from(sum, (v) => v / sets.length);
  };
  const all = [[], [2], [3], [4], [2, 3], [2, 4], [3, 4], [2, 3, 4]];
  // One window covers the volume, so the stitched value is the window's.
  const mirrored = await predictVolume(model, x, { window: [8, 16, 16], tta: 'mirror' });
  assertClose(t, mirrored, await byHand(all), { abs: 1e-6, rel: 1e-5 }, 'mirror vs the mean of the 8 flips');
  const plain = await predictVolume(model, x, { window: [8, 16, 16] });
  t.true(plain.toArray().some((v, i) => Math.abs(v - mirrored.toArray()[i]!) > 1e-3), 'the flips change the prediction');
  const xy = await predictVolume(model, x, { window: [8, 16, 16], tta: { flips: ['x', 'y'] } });
  assertClose(t, xy, await byHand([[], [3], [4], [3, 4]]), { abs: 1e-6, rel: 1e-5 }, 'x,y vs the mean of its 4 flips');
  await t.throwsAsync(predictVolume(model, x, { window: [8, 16, 16], tta: { flips: ['x', 'x'] } }), { message: /expected tta 'none', 'mirror' or \{ flips/ });
  await t.throwsAsync(predictVolume(model, x, { window: [8, 16, 16], tta: 'rotate' as never }), { code: 'ERR_ARGUMENT' });
});

test('windowBatch: windows stacked per pass give the same values as one at a time (bit for bit on the cpu), the last batch padded', async (t) => {
  const pyramid = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 5 });
  const valid = sequential([layers.conv({ out: 3, kernel: [3, 3, 3], init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 9 });
  for (const [name, model] of [['pyramidNet', pyramid], ['valid conv', valid]] as const) {
    const x = Tensor.fromArray(randomArray(7 * 20 * 17, rng(2)), [1, 1, 7, 20, 17]);
    const one = (await predictVolume(model, x, { window: [4, 8, 8] })).toArray();
    for (const windowBatch of [4, 5, 48, 100]) {
      let calls = 0;
      const batched = (await predictVolume(model, x, { window: [4, 8, 8], windowBatch, onProgress: () => ++calls })).toArray();
      // Batching may change reduction order on other backends (then within float tolerance); the cpu keeps each window's bits.
      t.deepEqual(Buffer.from(batched.buffer), Buffer.from(one.buffer), `${name}: windowBatch ${windowBatch}`);
      t.is(calls, 48, 'progress counts windows');
    }
  }
  await t.throwsAsync(predictVolume(pyramid, Tensor.zeros([1, 1, 4, 8, 8]), { window: [4, 8, 8], windowBatch: 0 }), { message: /expected windowBatch as a positive integer/ });
});

test('overlap per axis: [d, h, w] fractions set each axis\'s window starts', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 5 });
  const x = Tensor.fromArray(randomArray(8 * 20 * 17, rng(3)), [1, 1, 8, 20, 17]);
  let total = 0;
  const perAxis = await predictVolume(model, x, { window: [4, 8, 8], overlap: [0, 0.75, 0.5], onProgress: (_d, n) => (total = n) });
  // z: [0, 4]; y (step 2): [0, 2, ..., 12]; x (step 4): [0, 4, 8, 9]
  t.is(total, 2 * 7 * 4);
  t.deepEqual(windowStarts(20, 8, 0.75), [0, 2, 4, 6, 8, 10, 12]);
  const same = await predictVolume(model, x, { window: [4, 8, 8], overlap: [0.5, 0.5, 0.5] });
  t.deepEqual([...same.toArray()], [...(await predictVolume(model, x, { window: [4, 8, 8], overlap: 0.5 })).toArray()], 'a number is that fraction on every axis');
  t.false(perAxis.toArray().every((v, i) => v === same.toArray()[i]));
  await t.throwsAsync(predictVolume(model, x, { window: [4, 8, 8], overlap: [0.5, 1, 0] }), { message: /expected overlap as a fraction 0 <= o < 1, or three of them/ });
  await t.throwsAsync(predictVolume(model, x, { window: [4, 8, 8], overlap: [0.5, 0.5] as never }), { code: 'ERR_ARGUMENT' });
});
