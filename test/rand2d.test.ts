// The 2D Rand F-score of the 2D-3D ConvNet paper (metrics.rand2d, metrics.bestRand2d and
// segvol evaluate --boundary). Expected values come from pairSums below, an independent
// count over pairs of pixels (no contingency table), with the hand arithmetic beside.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { metrics, type BoundaryPixels } from '../lib';
import { writeNpy } from '../lib/io/npy';

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b));

/**
 * One slice's Rand sums by brute force over ordered pairs of pixels (u, v), u = v included:
 * sum n_ij^2 = pairs in one predicted and one true segment, sum a_i^2 = pairs in one predicted
 * segment, sum b_j^2 = pairs in one true segment. Pixels of truth 0 are skipped; a predicted 0
 * is a singleton (pairs only with itself), skipped ('exclude') or an ordinary id ('oneSegment').
 * The ids given must already be the slice's 2D segments.
 */
function pairSums(pred: ArrayLike<number>, truth: ArrayLike<number>, zero: 'singletons' | 'exclude' | 'oneSegment') {
  const pixels: number[] = [];
  for (let i = 0; i < truth.length; ++i) if (truth[i] !== 0 && !(zero === 'exclude' && pred[i] === 0)) pixels.push(i);
  const samePred = (u: number, v: number) => u === v || (pred[u] === pred[v] && (pred[u] !== 0 || zero === 'oneSegment'));
  let joint2 = 0, pred2 = 0, truth2 = 0;
  for (const u of pixels) {
    for (const v of pixels) {
      const p = samePred(u, v), t = truth[u] === truth[v];
      if (p && t) ++joint2;
      if (p) ++pred2;
      if (t) ++truth2;
    }
  }
  return { joint2, pred2, truth2 };
}
const scoresOf = ({ joint2, pred2, truth2 }: { joint2: number; pred2: number; truth2: number }) => {
  const vMerge = joint2 / pred2, vSplit = joint2 / truth2;
  return { vMerge, vSplit, fScore: (2 * vMerge * vSplit) / (vMerge + vSplit) };
};

test('per slice: pooled sums and the mean of the slices\' F differ, each as counted pair by pair', (t) => {
  // Two 4x4 slices. Slice 0: truth halves 1 | 2 (cols 0-1, 2-3), predicted as one segment (a merge).
  // Slice 1: only the top row is labelled (id 3), predicted right (the same one segment).
  const [D, H, W] = [2, 4, 4];
  const truth = new Int32Array(D * H * W), pred = new Int32Array(D * H * W).fill(9);
  for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    truth[y * W + x] = x < 2 ? 1 : 2;
    truth[H * W + y * W + x] = y === 0 ? 3 : 0;
  }
  const slice = (a: Int32Array, z: number) => a.subarray(z * H * W, (z + 1) * H * W);
  const s0 = pairSums(slice(pred, 0), slice(truth, 0), 'singletons'), s1 = pairSums(slice(pred, 1), slice(truth, 1), 'singletons');
  // By hand: slice 0 sum n^2 = 8^2 + 8^2 = 128, sum a^2 = 16^2 = 256, sum b^2 = 128: V_merge 0.5, V_split 1, F 2/3.
  t.deepEqual(s0, { joint2: 128, pred2: 256, truth2: 128 });
  // Slice 1: 4 pixels, all agree: 16 / 16 / 16, F 1.
  t.deepEqual(s1, { joint2: 16, pred2: 16, truth2: 16 });
  const pooled = scoresOf({ joint2: s0.joint2 + s1.joint2, pred2: s0.pred2 + s1.pred2, truth2: s0.truth2 + s1.truth2 });
  t.true(close(pooled.fScore, (2 * (144 / 272)) / (144 / 272 + 1)));  // 144 / 272 = 0.5294: F 0.6923
  const mean = (scoresOf(s0).fScore + scoresOf(s1).fScore) / 2;      // (2/3 + 1) / 2 = 0.8333
  t.true(close(mean, 5 / 6));

  const p = metrics.rand2d(pred, truth, [D, H, W]);
  t.is(p.combine, 'pooled');
  t.true(close(p.fScore, pooled.fScore), `${p.fScore} vs ${pooled.fScore}`);
  t.true(close(p.vMerge, pooled.vMerge) && close(p.vSplit, 1));
  const m = metrics.rand2d(pred, truth, [D, H, W], { combine: 'mean' });
  t.true(close(m.fScore, mean), `${m.fScore} vs ${mean}`);
  t.true(Math.abs(p.fScore - m.fScore) > 0.1, 'the two readings differ here');
  t.deepEqual(m.perSlice.map((s) => [s.slice, s.foreground, s.counted]), [[0, 16, 16], [1, 4, 4]]);
  t.true(close(m.perSlice[0]!.fScore!, 2 / 3) && close(m.perSlice[1]!.fScore!, 1));
  // Pooled over the stack as a 3D volume (metrics.rand) also counts pairs across slices: another number again.
  t.false(close(metrics.rand(pred, truth).fScore, pooled.fScore));
});

test('a 3D id that falls into two 2D pieces of a slice is two segments there; pieces in other slices never pair', (t) => {
  // Two 3x5 slices. Id 7 covers cols 0-1 and 3-4 of both slices, parted by col 2 (truth 0).
  // The prediction gives each piece of each slice its own id and col 2 as boundary (0).
  const [D, H, W] = [2, 3, 5];
  const truth = new Int32Array(D * H * W), pred = new Int32Array(D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    const i = (z * H + y) * W + x;
    truth[i] = x === 2 ? 0 : 7;
    pred[i] = x === 2 ? 0 : 10 * z + (x < 2 ? 1 : 2);
  }
  const r = metrics.rand2d(pred, truth, [D, H, W]);
  t.is(r.fScore, 1, 'each slice\'s pieces are its truth segments');
  t.deepEqual(r.perSlice.map((s) => s.fScore), [1, 1]);
  // Id 7 taken as one segment: a slice's sum b^2 = 12^2 = 144 against sum n^2 = 6^2 + 6^2 = 72: V_split 0.5.
  const asOne = scoresOf(pairSums(pred.subarray(0, H * W), truth.subarray(0, H * W), 'singletons'));
  t.true(close(asOne.vSplit, 0.5));
  // As a 3D volume id 7 spans both slices: sum b^2 = 24^2 = 576, sum n^2 = 4 * 6^2 = 144: V_split 0.25.
  t.true(close(metrics.rand(pred, truth).vSplit, 0.25));

  // Connectivity: two pixels of one id touching at a corner are one segment with 8, two with 4.
  const corner = Int32Array.from([5, 0, 0, 5]), split = Int32Array.from([1, 0, 0, 2]);
  t.is(metrics.rand2d(split, corner, [2, 2]).fScore, 1);
  t.true(metrics.rand2d(split, corner, [2, 2], { connectivity: 8 }).vSplit < 1);
});

test('predicted boundary pixels inside the truth: singletons, exclude, oneSegment and grow, each as counted by hand', (t) => {
  // One 3x4 slice. Truth: cols 0-1 id 1, cols 2-3 id 2. Prediction: col 0 A, col 3 B, cols 1-2 boundary (0).
  const [H, W] = [3, 4];
  const truth = new Int32Array(H * W), pred = new Int32Array(H * W);
  for (let i = 0; i < H * W; ++i) {
    const x = i % W;
    truth[i] = x < 2 ? 1 : 2;
    pred[i] = x === 0 ? 1 : x === 3 ? 2 : 0;
  }
  // singletons: sum n^2 = 3^2 + 3^2 + 6 = 24, sum a^2 = 24, sum b^2 = 6^2 + 6^2 = 72: V_merge 1, V_split 1/3, F 0.5.
  // exclude: 6 pixels: 18 / 18 / 18: F 1. oneSegment: the 0 segment holds 3 of each truth:
  // sum n^2 = 4 * 9 = 36, sum a^2 = 9 + 9 + 36 = 54, sum b^2 = 72: V_merge 2/3, V_split 1/2, F 4/7.
  const expected: Record<string, number> = { singletons: 0.5, exclude: 1, oneSegment: 4 / 7 };
  for (const mode of ['singletons', 'exclude', 'oneSegment'] as const) {
    const byPairs = scoresOf(pairSums(pred, truth, mode));
    t.true(close(byPairs.fScore, expected[mode]!), `${mode} by pairs: ${byPairs.fScore}`);
    const r = metrics.rand2d(pred, truth, [H, W], { boundaryPixels: mode });
    t.is(r.boundaryPixels, mode);
    t.true(close(r.fScore, expected[mode]!), `${mode}: ${r.fScore} vs ${expected[mode]}`);
  }
  t.is(metrics.rand2d(pred, truth, [H, W], { boundaryPixels: 'exclude' }).perSlice[0]!.counted, 6);

  // grow: the boundary pixels join the segment that reaches them first, lowest boundary first.
  // Col 2 lower (0.55) than col 1 (0.6): B takes col 2 first, A then col 1: the truth exactly, F 1.
  const map = (col1: number, col2: number) => Float32Array.from(pred, (_, i) => (i % W === 1 ? col1 : i % W === 2 ? col2 : 0.1));
  t.is(metrics.rand2d(pred, truth, [H, W], { boundaryPixels: 'grow', boundary: map(0.6, 0.55) }).fScore, 1);
  // Col 1 lower (0.45 < 0.5): A takes col 1, then col 2 (its first labelled neighbour in scan order is A's col 1):
  // A = cols 0-2 (6 of truth 1, 3 of truth 2), B = col 3: sum n^2 = 36 + 9 + 9 = 54, sum a^2 = 81 + 9 = 90,
  // sum b^2 = 72: V_merge 0.6, V_split 0.75, F 2/3.
  const grown = Int32Array.from(pred, (_, i) => (i % W === 3 ? 2 : 1));
  const byPairs = scoresOf(pairSums(grown, truth, 'singletons'));
  t.true(close(byPairs.fScore, 2 / 3));
  const g = metrics.rand2d(pred, truth, [H, W], { boundaryPixels: 'grow', boundary: map(0.45, 0.5) });
  t.true(close(g.fScore, 2 / 3) && close(g.vMerge, 0.6) && close(g.vSplit, 0.75), JSON.stringify(g));
});

/** A 1 x 12 x 12 slice of 3x3 cells (boundary 0.1) parted by one-pixel membranes (0.6); truth: the cells, membranes 0. */
function smallCells() {
  const [H, W] = [12, 12];
  const boundary = new Float32Array(H * W), truth = new Int32Array(H * W);
  for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    const membrane = y % 4 === 3 || x % 4 === 3;
    boundary[y * W + x] = membrane ? 0.6 : 0.1;
    truth[y * W + x] = membrane ? 0 : 1 + Math.floor(y / 4) * 3 + Math.floor(x / 4);
  }
  return { boundary, truth, shape: [1, H, W] as const };
}

test('the watershed search over low, high and size finds a better F than fixed parameters; its parameters and per-slice scores come back', async (t) => {
  const { boundary, truth, shape } = smallCells();
  // With ZNN's fixed low 0.3, high 0.99 and size 25, the 9-pixel cells merge along their membranes
  // (affinity 1 - 0.6 = 0.4 >= low) before any cut: no threshold separates them again.
  const fixed = await metrics.bestRand2d(boundary, truth, shape, { method: 'watershed', watershed: { low: [0.3], high: [0.99], sizeThreshold: [25] } });
  t.true(fixed.fScore < 0.5, `fixed parameters: ${fixed.fScore}`);
  const searched = await metrics.bestRand2d(boundary, truth, shape, { method: 'watershed' });
  t.is(searched.fScore, 1);
  t.is(searched.parameters.sizeThreshold, 0, 'the cells stay apart only without the size merge');
  t.true(searched.parameters.threshold < 0.6, 'cut below the membranes\' boundary value');
  t.deepEqual(Object.keys(searched.parameters).sort(), ['high', 'low', 'sizeThreshold', 'threshold']);
  // 2 lows x 3 highs x 3 sizes; the fixed set's own best is among them.
  t.is(searched.grid.length, 18);
  const same = searched.grid.find((g) => g.low === 0.3 && g.high === 0.99 && g.sizeThreshold === 25)!;
  t.true(close(same.fScore, fixed.fScore));
  t.is(searched.curve.length, 19);
  t.deepEqual(searched.perSlice.map((s) => s.fScore), [1]);
  // Connected components below a threshold separate the cells too (membranes above 0.1).
  const components = await metrics.bestRand2d(boundary, truth, shape, { thresholds: [0.05, 0.3, 0.7] });
  t.is(components.method, 'threshold');
  t.deepEqual(components.curve.map((p) => p.fScore === 1), [false, true, false]);
  t.deepEqual(components.parameters, { threshold: 0.3 });
  t.deepEqual(components.grid, []);
});

test('bad input to the 2D Rand scores is refused with coded errors, and the inputs are left as they were', async (t) => {
  const { boundary, truth, shape } = smallCells();
  const kept = Float32Array.from(boundary);
  const labels = metrics.segmentByThreshold(boundary, shape, { threshold: 0.3, connectivity: 4 });
  t.throws(() => metrics.rand2d(labels, truth.subarray(1), shape), { code: 'ERR_SHAPE', message: /144 voxels, the truth 143/ });
  t.throws(() => metrics.rand2d(labels, truth, [2, 12, 12]), { code: 'ERR_SHAPE', message: /holding 144 voxels/ });
  t.throws(() => metrics.rand2d(labels, truth, shape, { boundaryPixels: 'thin' as BoundaryPixels }), { code: 'ERR_ARGUMENT', message: /boundaryPixels as 'singletons', 'grow', 'exclude', 'oneSegment'/ });
  t.throws(() => metrics.rand2d(labels, truth, shape, { combine: 'median' as 'mean' }), { code: 'ERR_ARGUMENT', message: /combine as 'pooled' or 'mean'/ });
  t.throws(() => metrics.rand2d(labels, truth, shape, { connectivity: 6 as 4 }), { code: 'ERR_ARGUMENT', message: /connectivity 4 or 8/ });
  t.throws(() => metrics.rand2d(labels, truth, shape, { boundaryPixels: 'grow' }), { code: 'ERR_ARGUMENT', message: /give it as the option boundary/ });
  t.throws(() => metrics.rand2d(labels, new Int32Array(144), shape), { code: 'ERR_ARGUMENT', message: /no labelled pixel/ });
  t.throws(() => metrics.rand2d(labels, Float32Array.from(truth, (v) => v + 0.5), shape), { code: 'ERR_ARGUMENT', message: /integer ids/ });
  for (const [value, shown] of [[1.5, '1.5'], [-0.25, '-0.25'], [NaN, 'NaN']] as const) {
    const bad = Float32Array.from(boundary);
    bad[17] = value;
    await t.throwsAsync(metrics.bestRand2d(bad, truth, shape), { code: 'ERR_ARGUMENT', message: new RegExp(`in \\[0, 1\\], received ${shown} at index 17`) });
  }
  await t.throwsAsync(metrics.bestRand2d(boundary, truth.subarray(2), shape), { code: 'ERR_SHAPE' });
  await t.throwsAsync(metrics.bestRand2d(boundary, truth, shape, { thresholds: [0.5, 1] }), { code: 'ERR_ARGUMENT', message: /thresholds in \(0, 1\), received the number 1$/ });
  await t.throwsAsync(metrics.bestRand2d(boundary, truth, shape, { method: 'watershed', watershed: { low: [0.9], high: [0.5] } }),
    { code: 'ERR_ARGUMENT', message: /no watershed parameter set has low < high/ });
  await t.throwsAsync(metrics.bestRand2d(boundary, truth, shape, { method: 'watershed', watershed: { sizeThreshold: [2.5] } }),
    { code: 'ERR_ARGUMENT', message: /sizeThreshold values as integers >= 0, received the number 2\.5$/ });
  await t.throwsAsync(metrics.bestRand2d(boundary, truth, shape, { method: 'cut' as 'watershed' }), { code: 'ERR_ARGUMENT', message: /method 'threshold' or 'watershed'/ });
  t.deepEqual(boundary, kept, 'the boundary map is unchanged');
  // Still usable after the refusals.
  t.is((await metrics.bestRand2d(boundary, truth, shape, { thresholds: [0.3] })).fScore, 1);
});

test('segvol evaluate --boundary: per-slice scores and the chosen parameters in JSON, the options named, refused on labels', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-rand2d-'));
  // Two slices of the small cells; the second slice's truth carries the first's ids (3D ids).
  const { boundary, truth } = smallCells();
  const b = new Float32Array(2 * 144), tr = new Float32Array(2 * 144);
  b.set(boundary); b.set(boundary, 144); tr.set(truth); tr.set(truth, 144);
  writeNpy(path.join(dir, 'b.npy'), { shape: [2, 12, 12], data: b });
  writeNpy(path.join(dir, 't.npy'), { shape: [2, 12, 12], data: tr });
  const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
  const run = (args: string[]) => spawnSync(process.execPath, ['--require=ts-node/register/transpile-only', cli, 'evaluate', '--pred', path.join(dir, 'b.npy'),
    '--truth', path.join(dir, 't.npy'), ...args], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 240_000 });
  const r = run(['--boundary', '--metrics', 'rand', '--combine-slices', 'mean', '--boundary-pixels', 'exclude', '--watershed-size', '0,25', '--json']);
  t.is(r.status, 0, r.stderr);
  type Search = { fScore: number; combine: string; boundaryPixels: string; parameters: Record<string, number>; perSlice: Array<{ slice: number; fScore: number }>; grid: unknown[] };
  const out = JSON.parse(r.stdout) as { randThreshold: Search; randWatershed: Search };
  t.is(out.randWatershed.fScore, 1);
  t.is(out.randWatershed.combine, 'mean');
  t.is(out.randWatershed.boundaryPixels, 'exclude');
  t.is(out.randWatershed.parameters.sizeThreshold, 0);
  t.is(out.randWatershed.grid.length, 2 * 3 * 2);
  t.deepEqual(out.randWatershed.perSlice.map((s) => [s.slice, s.fScore]), [[0, 1], [1, 1]]);
  t.deepEqual(Object.keys(out.randThreshold.parameters), ['threshold']);
  const bad = spawnSync(process.execPath, ['--require=ts-node/register/transpile-only', cli, 'evaluate', '--pred', path.join(dir, 't.npy'),
    '--truth', path.join(dir, 't.npy'), '--combine-slices', 'mean'], { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 240_000 });
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--combine-slices sets the 2D Rand search of a boundary map; the prediction holds labels/);
  fs.rmSync(dir, { recursive: true });
});
