import test from 'ava';
import { gaussianWeight, predictVolume, presets, Tensor, windowStarts } from '../lib';
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
