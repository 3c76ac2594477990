// Zlateski and Seung's watershed on hand-worked graphs whose basins and merge order
// are known, on boundary maps, and its determinism.
import test from 'ava';
import { metrics } from '../lib';

/** A line of voxels (1, 1, n) whose x affinities are given: xs[i] joins voxels i - 1 and i (xs[0] unused). */
function line(xs: number[]): Float32Array {
  const n = xs.length;
  const aff = new Float32Array(3 * n);
  xs.forEach((w, i) => { if (i > 0) aff[2 * n + i] = w; });
  return aff;
}

test('steepest ascent, regional maxima and background on a line; the tree and its cuts', (t) => {
  // v0 <-> v1 (0.9) is one maximum, v3 <-> v4 (0.95) another; v2 drains up to v3; v5's only edge is below low.
  const aff = line([0, 0.9, 0.2, 0.8, 0.95, 0.1]);
  const ws = metrics.affinityWatershed(aff, [1, 1, 6], { low: 0.15, high: 0.99, sizeThreshold: 0 });
  t.deepEqual([...ws.segments], [1, 1, 2, 2, 2, 0]);
  t.is(ws.basins, 2);
  t.is(ws.count, 2);
  t.deepEqual([...ws.tree.a], [1]);
  t.deepEqual([...ws.tree.b], [2]);
  t.true(Math.abs(ws.tree.affinity[0]! - 0.2) < 1e-7, 'the strongest edge between the basins');
  t.deepEqual([...ws.cut(0.2)], [1, 1, 1, 1, 1, 0]);
  t.deepEqual([...ws.cut(0.5)], [1, 1, 2, 2, 2, 0]);
  // Size-dependent merging: the 2-voxel basin is under 3 voxels, and the edge (0.2) is above low.
  t.deepEqual([...metrics.affinityWatershed(aff, [1, 1, 6], { low: 0.15, sizeThreshold: 3 }).segments], [1, 1, 1, 1, 1, 0]);
  // Not when the edge is below low.
  t.deepEqual([...metrics.affinityWatershed(aff, [1, 1, 6], { low: 0.25, sizeThreshold: 3 }).segments], [1, 1, 2, 2, 2, 0]);
  // minSize removes what stays small.
  t.deepEqual([...metrics.affinityWatershed(aff, [1, 1, 6], { low: 0.15, sizeThreshold: 0, minSize: 3 }).segments], [0, 0, 1, 1, 1, 0]);
});

test('plateau division: a plateau between two maxima splits towards its exits; a plateau with one exit drains whole', (t) => {
  // v2 <-> v3 is a plateau (0.5); v2 also points down to v1's maximum, v3 to v4's.
  const split = metrics.affinityWatershed(line([0, 0.9, 0.5, 0.5, 0.5, 0.9]), [1, 1, 6], { low: 0.1, sizeThreshold: 0 });
  t.deepEqual([...split.segments], [1, 1, 1, 2, 2, 2]);
  // v0..v2 form a plateau whose only exit is v2 -> v3: everything drains to the maximum v3 <-> v4.
  const whole = metrics.affinityWatershed(line([0, 0.5, 0.5, 0.5, 0.7]), [1, 1, 5], { low: 0.1, sizeThreshold: 0 });
  t.deepEqual([...whole.segments], [1, 1, 1, 1, 1]);
  // A plateau with no exit is one maximum.
  t.deepEqual([...metrics.affinityWatershed(line([0, 0.5, 0.5, 0.5]), [1, 1, 4], { low: 0.1 }).segments], [1, 1, 1, 1]);
  // Edges above high count as equal: 0.995 and 0.999 are one plateau (one basin), not two maxima.
  t.deepEqual([...metrics.affinityWatershed(line([0, 0.995, 0.3, 0.999]), [1, 1, 4], { low: 0.1, high: 0.99, sizeThreshold: 0 }).segments],
    [1, 1, 2, 2]);
});

test('size steps: strong edges merge bigger segments than weak ones, strongest edges first', (t) => {
  // Three maxima: {0,1} (0.9), {2..5} (0.95 ...), {6,7} (0.9); between them 0.8 and 0.4.
  const aff = line([0, 0.9, 0.8, 0.95, 0.95, 0.95, 0.4, 0.9]);
  const none = metrics.affinityWatershed(aff, [1, 1, 8], { low: 0.1, sizeThreshold: 0 });
  t.deepEqual([...none.segments], [1, 1, 2, 2, 2, 2, 3, 3]);
  // At 0.8, segments under 10 voxels merge; at 0.4 only those under 2 (none is).
  const steps = metrics.affinityWatershed(aff, [1, 1, 8], { low: 0.1, sizeThreshold: [[0.3, 2], [0.7, 10]] });
  t.deepEqual([...steps.segments], [1, 1, 1, 1, 1, 1, 2, 2]);
  t.is(steps.basins, 3);
  t.is(steps.count, 2);
});

test('3D affinity graphs use z edges; threeD false segments each slice alone', (t) => {
  // Two slices of 1x2; x edges weak (0.2), z edges strong (0.9).
  const n = 4;
  const aff = new Float32Array(3 * n);
  aff[0 * n + 2] = 0.9;
  aff[0 * n + 3] = 0.9;
  aff[2 * n + 1] = 0.2;
  aff[2 * n + 3] = 0.2;
  const joined = metrics.affinityWatershed(aff, [2, 1, 2], { low: 0.1, sizeThreshold: 0 });
  t.deepEqual([...joined.segments], [1, 2, 1, 2], 'columns joined through z');
  const slices = metrics.affinityWatershed(aff, [2, 1, 2], { low: 0.1, sizeThreshold: 0, threeD: false });
  t.deepEqual([...slices.segments], [1, 1, 2, 2], 'per slice: each slice is one basin');
});

test('boundary maps: two cells split by a membrane, deterministic, and the Rand curve', (t) => {
  const H = 12, W = 16;
  const boundary = new Float32Array(H * W);
  const truth = new Int32Array(H * W);
  for (let y = 0; y < H; ++y) {
    for (let x = 0; x < W; ++x) {
      const membrane = x === 7 || x === 8;
      boundary[y * W + x] = membrane ? 0.9 : 0.05 + 0.02 * Math.sin(x * y);
      truth[y * W + x] = membrane ? 0 : x < 7 ? 1 : 2;
    }
  }
  const a = metrics.watershed(boundary, [H, W], { sizeThreshold: 25 });
  const b = metrics.watershed(boundary, [H, W], { sizeThreshold: 25 });
  t.deepEqual(a.segments, b.segments, 'deterministic');
  t.is(a.count, 2);
  t.is(metrics.rand(a.segments, truth).fScore, 1);
  // With low 0.05 the membrane's edges (affinity 0.1) are followed: its voxels join the cells, which touch.
  const curve = metrics.randCurve(boundary, truth, [H, W], { method: 'watershed', thresholds: [0.5, 0.95], watershed: { low: 0.05 } });
  t.is(curve[0]!.fScore, 1);
  t.is(curve[0]!.segments, 2);
  t.is(curve[1]!.segments, 1, 'cut at affinity 0.05: the membrane joins the cells');
  t.true(curve[1]!.vMerge < curve[0]!.vMerge && curve[1]!.vSplit === 1, 'merging lowers the merge score, not the split score');
  const best = metrics.bestRandFScore(boundary, truth, [H, W], { method: 'watershed' });
  t.is(best.scores.fScore, 1);
  t.throws(() => metrics.watershed(boundary, [H, W], { low: 0.8, high: 0.5 }), { message: /low <= high/ });
  t.throws(() => metrics.watershed(boundary, [H, W], { sizeThreshold: [[2, 5]] }), { message: /affinity in 0\.\.1/ });
  t.throws(() => metrics.affinityWatershed(new Float32Array(10), [1, 1, 3]), { message: /holding/ });
});

test('the Rand curve of the watershed traces the thresholds even where thick membranes are above 0.7 (the tree reaches the lowest cut)', (t) => {
  // Three cells in a row parted by 3-pixel membranes of 0.95, each with a weaker gap (0.75, then 0.85).
  const [H, W] = [12, 30];
  const boundary = new Float32Array(H * W), truth = new Int32Array(H * W);
  for (let y = 0; y < H; ++y) {
    for (let x = 0; x < W; ++x) {
      const wall = x >= 9 && x <= 11 ? 1 : x >= 19 && x <= 21 ? 2 : 0;
      boundary[y * W + x] = wall === 0 ? 0.05 : y === 5 ? (wall === 1 ? 0.75 : 0.85) : 0.95;
      truth[y * W + x] = wall ? 0 : x < 9 ? 1 : x < 19 ? 2 : 3;
    }
  }
  const distinct = (curve: Array<{ vSplit: number; vMerge: number }>) => new Set(curve.map((p) => `${p.vSplit.toFixed(6)} ${p.vMerge.toFixed(6)}`)).size;
  const curve = metrics.randCurve(boundary, truth, [H, W], { method: 'watershed', connectivity: 4 });
  t.is(curve.length, 19);
  t.true(distinct(curve) >= 3, `${distinct(curve)} distinct points`);
  t.is(curve[0]!.fScore, 1, 'a low threshold keeps the cells apart');
  t.deepEqual([curve[13]!.segments, curve[15]!.segments, curve[17]!.segments], [3, 2, 1], 'cut at 0.3 none merge, at 0.2 the weaker gap, at 0.1 both');
  t.is(metrics.bestRandFScore(boundary, truth, [H, W], { method: 'watershed' }).scores.fScore, 1);
  // At low 0.3 the membranes are background: the cells share no edge, and every cut is the same.
  t.is(distinct(metrics.randCurve(boundary, truth, [H, W], { method: 'watershed', watershed: { low: 0.3 } })), 1);
});
