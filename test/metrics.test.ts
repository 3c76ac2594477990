// Metrics against scikit-image, SciPy and scikit-learn (test/fixtures/make_metric_fixtures.py),
// plus hand-checked cases. Tolerance 1e-9 relative for counts-based scores (exact
// arithmetic on the same counts), 1e-5 for distances (float32-stored inputs).
import test from 'ava';
import * as path from 'node:path';
import { metrics, readSafetensors, type Shape3 } from '../lib';

const dir = path.join(__dirname, 'fixtures', 'metrics');
function load(name: string) {
  const f = readSafetensors(path.join(dir, `${name}.safetensors`));
  return { get: (k: string) => f.tensors.get(k)!.data, expected: JSON.parse(f.metadata.expected!) as Record<string, unknown> };
}
const close = (a: number, b: number, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(1, Math.abs(b));

for (const name of ['rand2d', 'rand3d']) {
  test(`Rand scores, adapted Rand error and VI match scikit-image / scikit-learn (${name})`, (t) => {
    const f = load(name);
    const r = metrics.rand(f.get('pred'), f.get('truth'), { adaptedRand: 'skimage' });
    for (const key of ['adaptedRandError', 'precision', 'recall', 'viMerge', 'viSplit', 'randIndex', 'vMerge', 'vSplit'] as const) {
      t.true(close(r[key], f.expected[key] as number), `${key}: ${r[key]} vs ${f.expected[key]}`);
    }
    t.true(close(r.fScore, (2 * r.vMerge * r.vSplit) / (r.vMerge + r.vSplit)));
  });
}

test('Rand scores: identical, all-merged and all-split segmentations', (t) => {
  const truth = Int32Array.from({ length: 100 }, (_, i) => 1 + Math.floor(i / 10));  // 10 segments of 10
  const same = metrics.rand(truth, truth);
  t.is(same.adaptedRandError, 0);
  t.is(same.fScore, 1);
  t.is(same.viSplit + same.viMerge, 0);
  const merged = metrics.rand(new Int32Array(100).fill(1), truth);
  t.true(close(merged.vSplit, 1) && close(merged.vMerge, 0.1), `${merged.vSplit} ${merged.vMerge}`);
  t.true(close(merged.viMerge, Math.log2(10)) && close(merged.viSplit, 0));
  const split = metrics.rand(Int32Array.from({ length: 100 }, (_, i) => i + 1), truth);
  t.true(close(split.vMerge, 1) && close(split.vSplit, 0.1));
  // scikit-image counts pairs of distinct voxels: a full split keeps none of them.
  t.true(close(split.skimage.precision, 0) && close(split.skimage.recall, 1) && close(split.skimage.adaptedRandError, 1));
  // SNEMI3D squares counts: precision (over the prediction) 100 / 100, recall (over the truth) 100 / 1000.
  t.true(close(split.precision, 1) && close(split.recall, 0.1) && close(split.adaptedRandError, 1 - 0.2 / 1.1));
  // Relabelling does not change any score.
  const relabelled = metrics.rand(Int32Array.from(truth, (v) => 1000 - v), truth);
  t.is(relabelled.adaptedRandError, 0);
  t.is(relabelled.skimage.adaptedRandError, 0);
});

for (const name of ['components2d_4', 'components2d_8', 'components3d_6', 'components3d_26']) {
  test(`connected components match scikit-image (${name})`, (t) => {
    const f = load(name);
    const shape = f.expected.shape as number[] as unknown as Shape3;
    const r = metrics.connectedComponents(f.get('mask'), shape, { connectivity: f.expected.connectivity as 4 });
    t.is(r.count, f.expected.count as number);
    // Same partition: both number components in scan order of first voxel.
    t.deepEqual(Array.from(r.labels), Array.from(f.get('labels')));
  });
}

for (const name of ['hausdorff3d_aniso', 'hausdorff2d']) {
  test(`surface distances and the 95% Hausdorff distance match SciPy's EDT (${name}, anisotropic spacing)`, (t) => {
    const f = load(name);
    const shape = f.expected.shape as number[];
    const spacing = f.expected.spacing as number[];
    const spacing3 = (spacing.length === 2 ? [1, ...spacing] : spacing) as [number, number, number];
    const hd = metrics.hausdorff95(f.get('a'), f.get('b'), shape as unknown as Shape3, { spacing: spacing3 });
    t.true(close(hd, f.expected.hd95 as number, 1e-6), `${hd} vs ${f.expected.hd95}`);
  });
}

test('confusion matrix matches scikit-learn; Dice, Jaccard, PPV, sensitivity, AVD from it', (t) => {
  const f = load('confusion4');
  const classes = f.expected.classes as number;
  const o = metrics.overlap(f.get('pred'), f.get('truth'), classes);
  t.deepEqual(o.confusion, f.expected.confusion);
  const cm = f.expected.confusion as number[][];
  const tp = cm[2]![2]!, truthCount = cm[2]!.reduce((a, b) => a + b), predCount = cm.reduce((a, r) => a + r[2]!, 0);
  t.true(close(o.perClass[2]!.dice, (2 * tp) / (truthCount + predCount)));
  t.true(close(o.perClass[2]!.avd, (100 * Math.abs(predCount - truthCount)) / truthCount));
  // Empty sets: documented values.
  const empty = metrics.overlap(new Int32Array(10), new Int32Array(10), 2);
  t.deepEqual(empty.perClass[1], { dice: 1, jaccard: 1, ppv: 1, sensitivity: 1, avd: 0 });
  t.is(metrics.overlap(Int32Array.from([1, 0]), new Int32Array(2), 2).perClass[1]!.avd, Infinity);
  t.true(Number.isNaN(metrics.hausdorff95(new Int32Array(8), Int32Array.from([1, 1, 0, 0, 0, 0, 0, 0]), [2, 4])));
});

test('pixel error at a threshold and by line search match numpy', (t) => {
  const f = load('pixel_error');
  t.true(close(metrics.pixelError(f.get('prob'), f.get('truth')).error, f.expected.atHalf as number, 1e-12));
  const best = metrics.pixelError(f.get('prob'), f.get('truth'), { search: true, steps: 100 });
  t.true(close(best.error, f.expected.best as number, 1e-12), `${best.error} vs ${f.expected.best}`);
  t.is(best.threshold, f.expected.bestThreshold as number);
});

test('segmentation from boundary maps: threshold components, watershed, and the best Rand F-score', (t) => {
  // Two cells separated by a boundary column, with a weak gap in the boundary.
  const [H, W] = [6, 9];
  const boundary = new Float32Array(H * W).fill(0.1);
  for (let y = 0; y < H; ++y) boundary[y * W + 4] = y === 2 ? 0.45 : 0.9;
  const truth = Int32Array.from({ length: H * W }, (_, i) => (i % W < 4 ? 1 : i % W > 4 ? 2 : 0));
  const loose = metrics.segmentByThreshold(boundary, [H, W], { threshold: 0.5, connectivity: 4 });
  t.is(new Set(loose).size - 1, 1, 'the gap merges the cells at threshold 0.5');
  const strict = metrics.segmentByThreshold(boundary, [H, W], { threshold: 0.3, connectivity: 4 });
  t.is(new Set(strict).size - 1, 2);
  const best = metrics.bestRandFScore(boundary, truth, [H, W], { connectivity: 4 });
  t.is(best.scores.fScore, 1);
  t.true(best.threshold < 0.45);
  const ws = metrics.priorityFlood(boundary, [H, W], { seedThreshold: 0.2, maskThreshold: 0.95, connectivity: 4 });
  t.is(new Set(ws).size, 2, 'two basins fill the whole image, boundary included');
  t.is(metrics.rand(ws, truth).fScore, 1);
  const small = metrics.priorityFlood(boundary, [H, W], { seedThreshold: 0.2, maskThreshold: 0.5, minSize: 100, connectivity: 4 });
  t.true(small.every((v) => v === 0), 'segments below minSize are removed');
});

test('BRATS regions and bad input', (t) => {
  const r = metrics.bratsRegions(Int32Array.from([0, 1, 2, 3, 4]));
  t.deepEqual(Array.from(r.complete), [0, 1, 1, 1, 1]);
  t.deepEqual(Array.from(r.core), [0, 1, 0, 1, 1]);
  t.deepEqual(Array.from(r.enhancing), [0, 0, 0, 0, 1]);
  t.throws(() => metrics.bratsRegions(Int32Array.from([5])), { message: /labels 0\.\.4, received 5/ });
  t.throws(() => metrics.rand(new Int32Array(3), new Int32Array(4)), { message: /3 voxels, the truth 4/ });
  t.throws(() => metrics.confusion(Int32Array.from([0, 3]), Int32Array.from([0, 1]), 2), { message: /class ids 0\.\.1, received 3/ });
  t.throws(() => metrics.rand(Float32Array.from([0.5]), Float32Array.from([1])), { message: /integer ids/ });
  t.throws(() => metrics.hausdorff95(new Int32Array(6), new Int32Array(6), [2, 4]), { message: /holding 6 voxels/ });
  t.throws(() => metrics.connectedComponents(new Int32Array(4), [2, 2], { connectivity: 5 as 4 }), { message: /connectivity: expected 4 or 8/ });
});

test('warping error: a shifted boundary costs nothing, a merge or a spurious object costs its pixels', (t) => {
  const [H, W] = [9, 12];
  // Truth: two cells (1) separated by a vertical membrane (0) at x = 5.
  const truth = Uint8Array.from({ length: H * W }, (_, i) => (i % W === 5 ? 0 : 1));
  // Prediction 1: the membrane shifted to x = 6: pixel errors, no topological error.
  const shifted = Uint8Array.from({ length: H * W }, (_, i) => (i % W === 6 ? 0 : 1));
  const a = metrics.warpingError(shifted, truth, [H, W]);
  t.true(a.pixelError > 0);
  t.is(a.warpingError, 0);
  // Prediction 2: a one-pixel gap in the membrane merges the cells: that pixel stays an error.
  const gap = Uint8Array.from(truth);
  gap[4 * W + 5] = 1;
  const b = metrics.warpingError(gap, truth, [H, W]);
  t.is(b.warpingError * H * W, 1);
  // Prediction 3: a spurious hole (one background pixel) inside a cell: a new component, kept as an error.
  const hole = Uint8Array.from(truth);
  hole[4 * W + 2] = 0;
  t.is(metrics.warpingError(hole, truth, [H, W]).warpingError * H * W, 1);
  // 3D input: each slice on its own.
  const two = new Uint8Array(2 * H * W);
  two.set(gap, 0);
  two.set(shifted, H * W);
  const twoTruth = new Uint8Array(2 * H * W);
  twoTruth.set(truth, 0);
  twoTruth.set(truth, H * W);
  t.is(metrics.warpingError(two, twoTruth, [2, H, W]).warpingError * 2 * H * W, 1);
});
