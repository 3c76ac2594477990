// Affinity agglomeration (waterz style): the native greedy merge against a brute-force
// reference written here from the definition, thresholds coarsening each other, the
// block-wise pipeline equal to the in-memory one for the same fragments (several block
// shapes, some not dividing the volume), resuming and array-job parts, and segvol segment
// end to end with its errors.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agglomerate, layers, metrics, openZarr, readBlockResult, runStages, segmentBlockwise, sequential, writeZarr, type AgglomerationScoring } from '../lib';
import { createProgram } from '../lib/cli/main';
import { readNpy, writeNpy } from '../lib/io/npy';
import { rng } from './helpers';

type Dims = [number, number, number];
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-agglo-'));

/** Cells: each voxel takes the label of its nearest seed (seeded), so cells touch everywhere. */
function cells(dims: Dims, count: number, seed: number): Int32Array {
  const random = rng(seed);
  const seeds = Array.from({ length: count }, () => dims.map((n) => random() * n));
  const [D, H, W] = dims;
  const out = new Int32Array(D * H * W);
  for (let z = 0, v = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x, ++v) {
    let best = 0, bestD = Infinity;
    seeds.forEach((s, i) => {
      const d = ((z - s[0]!) * 3) ** 2 + (y - s[1]!) ** 2 + (x - s[2]!) ** 2;
      if (d < bestD) [best, bestD] = [i + 1, d];
    });
    out[v] = best;
  }
  return out;
}

/**
 * Affinities (3, D, H, W) of a label volume: high inside a label, low across labels, with
 * noise; `levels` > 0 rounds them to multiples of 1/levels (ties on purpose).
 */
function affinitiesOf(labels: Int32Array, dims: Dims, seed: number, noise = 0.15, levels = 0): Float32Array {
  const [D, H, W] = dims;
  const n = D * H * W, stride = [H * W, W, 1];
  const random = rng(seed);
  const aff = new Float32Array(3 * n);
  for (let z = 0, v = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x, ++v) {
    const c = [z, y, x];
    for (let a = 0; a < 3; ++a) {
      if (c[a] === 0) continue;
      const same = labels[v] === labels[v - stride[a]!] && labels[v] !== 0;
      let value = Math.min(1, Math.max(0, (same ? 0.85 : 0.15) + noise * (2 * random() - 1)));
      if (levels > 0) value = Math.round(value * levels) / levels;
      aff[a * n + v] = value;
    }
  }
  return aff;
}

/** The greedy agglomeration as defined, recomputing every region pair's statistics at every merge. */
function bruteForce(fragments: Int32Array, aff: Float32Array, dims: Dims, scoring: AgglomerationScoring, thresholds: number[]): Int32Array[] {
  const [D, H, W] = dims;
  const n = D * H * W, stride = [H * W, W, 1];
  const edges: Array<{ lo: number; hi: number; a: number }> = [];
  for (let z = 0, v = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x, ++v) {
    const c = [z, y, x];
    for (let a = 0; a < 3; ++a) {
      if (c[a] === 0) continue;
      const f = fragments[v]!, g = fragments[v - stride[a]!]!;
      if (f === 0 || g === 0 || f === g) continue;
      edges.push({ lo: Math.min(f, g), hi: Math.max(f, g), a: aff[a * n + v]! });
    }
  }
  const ids = [...new Set(fragments)].filter((f) => f !== 0).sort((p, q) => p - q);
  const region = new Map(ids.map((f) => [f, f]));
  const score = (s: { count: number; sum: number; levels: number[] }) => {
    if (scoring === 'mean') return 1 - (s.sum / s.count) / 16777216;
    const sorted = [...s.levels].sort((p, q) => p - q);
    const k = Math.min(s.count, Math.floor((scoring.quantile * s.count) / 100) + 1);
    return 1 - (sorted[k - 1]! + 0.5) / 256;
  };
  const out: Int32Array[] = [];
  for (const t of thresholds) {
    for (;;) {
      const groups = new Map<string, { ra: number; rb: number; count: number; sum: number; levels: number[]; lo: number; hi: number }>();
      for (const e of edges) {
        const ra = region.get(e.lo)!, rb = region.get(e.hi)!;
        if (ra === rb) continue;
        const key = `${Math.min(ra, rb)},${Math.max(ra, rb)}`;
        const g = groups.get(key) ?? { ra, rb, count: 0, sum: 0, levels: [], lo: Infinity, hi: Infinity };
        g.count += 1;
        g.sum += Math.round(e.a * 16777216);
        g.levels.push(Math.min(Math.floor(e.a * 256), 255));
        if (e.lo < g.lo || (e.lo === g.lo && e.hi < g.hi)) [g.lo, g.hi] = [e.lo, e.hi];
        groups.set(key, g);
      }
      let best: { ra: number; rb: number; s: number; lo: number; hi: number } | undefined;
      for (const g of groups.values()) {
        const s = score(g);
        if (!best || s < best.s || (s === best.s && (g.lo < best.lo || (g.lo === best.lo && g.hi < best.hi)))) best = { ra: g.ra, rb: g.rb, s, lo: g.lo, hi: g.hi };
      }
      if (!best || !(best.s < t)) break;
      const keep = Math.min(best.ra, best.rb), gone = Math.max(best.ra, best.rb);
      for (const [f, r] of region) if (r === gone) region.set(f, keep);
    }
    const number = new Map<number, number>();
    for (const f of ids) if (!number.has(region.get(f)!)) number.set(region.get(f)!, number.size + 1);
    out.push(Int32Array.from(fragments, (f) => (f === 0 ? 0 : number.get(region.get(f)!)!)));
  }
  return out;
}

/** Whether every segment of `fine` lies inside one segment of `coarse`. */
function coarsens(fine: Int32Array, coarse: Int32Array): boolean {
  const into = new Map<number, number>();
  for (let i = 0; i < fine.length; ++i) {
    const seen = into.get(fine[i]!);
    if (seen === undefined) into.set(fine[i]!, coarse[i]!);
    else if (seen !== coarse[i]) return false;
  }
  return true;
}

const dims: Dims = [6, 14, 15];
const voxels = dims[0] * dims[1] * dims[2];
const labels = cells(dims, 9, 1);
const affinities = affinitiesOf(labels, dims, 2, 0.3, 16);
/** Fragments inside the cells: cells cut into boxes of 2x3x4, with scattered ids (not 1..n), 0 in one corner. */
const boxes = Int32Array.from({ length: voxels }, (_, v) => {
  const z = Math.floor(v / (dims[1] * dims[2])), y = Math.floor(v / dims[2]) % dims[1], x = v % dims[2];
  if (z === 0 && y < 3 && x < 4) return 0;
  return ((Math.floor(z / 2) * 29 + Math.floor(y / 3) * 7 + Math.floor(x / 4)) * 16 + labels[v]!) * 13 + 5;
});
const thresholds = [0.2, 0.4, 0.55, 0.7, 0.9];

for (const scoring of ['mean', { quantile: 50 }, { quantile: 75 }, { quantile: 0 }, { quantile: 100 }] as AgglomerationScoring[]) {
  test(`agglomeration equals the brute-force greedy reference (${JSON.stringify(scoring)})`, async (t) => {
    const r = await agglomerate(affinities, dims, { fragments: boxes, thresholds, scoring });
    const expected = bruteForce(boxes, affinities, dims, scoring, thresholds);
    t.deepEqual(r.thresholds, thresholds);
    r.segmentations.forEach((s, i) => t.deepEqual(s, expected[i], `threshold ${thresholds[i]}`));
    // Something merged and something stayed apart: the thresholds span the interesting range.
    const counts = r.segmentations.map((s) => Math.max(...s));
    t.true(counts[0]! > counts.at(-1)!, `segments per threshold ${counts.join(', ')}`);
    t.true(counts.at(-1)! >= 1);
  });
}

test('the watershed\'s fragments agglomerate like the reference too, and every threshold coarsens the one before', async (t) => {
  const r = await agglomerate(affinities, dims, { thresholds: [0.9, 0.1, 0.5, 0.3, 0.7] });
  t.deepEqual(r.thresholds, [0.1, 0.3, 0.5, 0.7, 0.9], 'sorted ascending');
  t.true(r.fragmentCount > 9, `${r.fragmentCount} fragments`);
  const expected = bruteForce(r.fragments, affinities, dims, 'mean', r.thresholds);
  r.segmentations.forEach((s, i) => t.deepEqual(s, expected[i]));
  for (let i = 1; i < r.segmentations.length; ++i) t.true(coarsens(r.segmentations[i - 1]!, r.segmentations[i]!), `threshold ${r.thresholds[i]}`);
  // Ids 1..n, numbered by first appearance in scan order (the watershed's fragments are).
  for (const s of r.segmentations) {
    let next = 1;
    for (const v of s) if (v === next) ++next; else t.true(v < next || v === 0, 'sequential ids in scan order');
  }
});

test('bad inputs are refused with codes, naming what was expected', async (t) => {
  const two = affinities.subarray(0, 2 * voxels);
  let e = await t.throwsAsync(agglomerate(two, dims, { thresholds: [0.5] }));
  t.is((e as { code?: string }).code, 'ERR_SHAPE');
  t.regex(e!.message, /\(3, 6, 14, 15\).*2 channels/);
  e = await t.throwsAsync(agglomerate(affinities, dims, { thresholds: [0.5, 1.5] }));
  t.is((e as { code?: string }).code, 'ERR_ARGUMENT');
  e = await t.throwsAsync(agglomerate(affinities, dims, { thresholds: [0.5, 0.5] }));
  t.regex(e!.message, /given twice/);
  e = await t.throwsAsync(agglomerate(affinities, dims, { thresholds: [0.5], scoring: { quantile: 101 } }));
  t.is((e as { code?: string }).code, 'ERR_ARGUMENT');
  const outOfRange = Float32Array.from(affinities);
  outOfRange[voxels + (2 * 14 + 3) * 15 + 5] = 1.5;  // the y edge between two boxes
  e = await t.throwsAsync(agglomerate(outOfRange, dims, { fragments: boxes, thresholds: [0.5] }));
  t.is((e as { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(e!.message, /affinities in \[0, 1\], received 1\.5.* y edge of voxel \(2, 3, 5\)/);
  e = await t.throwsAsync(agglomerate(affinities, dims, { fragments: Int32Array.from(boxes, (v, i) => (i === 7 ? -3 : v)), thresholds: [0.5] }));
  t.regex(e!.message, /fragment ids >= 0/);
});

/** An affinity store (3, D, H, W) whose chunks differ from the blocks. */
async function affinityStore(dir: string, aff: Float32Array, d: Dims): Promise<string> {
  const store = path.join(dir, 'aff.zarr');
  await writeZarr(store, aff, [3, ...d], { chunks: [1, 4, 8, 8] });
  return store;
}

async function readIds(location: string, d: Dims): Promise<Int32Array> {
  return Int32Array.from(await (await openZarr(location)).readExact!([0, 0, 0], d));
}

for (const scoring of ['mean', { quantile: 75 }] as AgglomerationScoring[]) {
  test(`block-wise equals in memory for the same fragments, whatever the blocks (${JSON.stringify(scoring)})`, async (t) => {
    const dir = tmp();
    const store = await affinityStore(dir, affinities, dims);
    const whole = await agglomerate(affinities, dims, { thresholds, scoring });
    for (const block of [[6, 14, 15], [3, 7, 5], [4, 5, 6], [2, 14, 8]] as Dims[]) {
      const out = path.join(dir, `seg-${block.join('x')}.zarr`);
      const r = await segmentBlockwise(store, out, { thresholds, scoring, block });
      t.false(r.stopped);
      const fragments = await readIds(path.join(out, 'fragments'), dims);
      t.is(new Set(fragments).size - (fragments.includes(0) ? 1 : 0), r.fragments!, 'fragment ids unique over the blocks');
      t.is(Math.max(...fragments), r.fragments!, 'ids 1..n');
      const memory = await agglomerate(affinities, dims, { fragments, thresholds, scoring });
      for (const [i, threshold] of thresholds.entries()) {
        const blockwise = await readIds(path.join(out, `segmentation_${threshold}`), dims);
        t.deepEqual(blockwise, memory.segmentations[i], `block ${block.join('x')}, threshold ${threshold}`);
        t.is(Math.max(...blockwise), r.segments![i]!);
        if (i === 2) {
          const rand = metrics.rand(blockwise, whole.segmentations[i]!, { ignoreTruthZero: false });
          t.log(`block ${block.join('x')}: ${r.fragments} fragments (whole volume ${whole.fragmentCount}); at ${threshold} adapted Rand error ` +
            `against whole-volume fragments ${rand.adaptedRandError.toFixed(4)}`);
        }
      }
      if (block.join() === dims.join()) {
        t.deepEqual(fragments, whole.fragments, 'one block: the whole volume\'s watershed');
        whole.segmentations.forEach((s, i) => t.deepEqual(memory.segmentations[i], s));
      }
    }
  });
}

test('a stopped run resumes: blocks done are skipped, a block whose marker is gone is redone; parts i/n share every stage', async (t) => {
  const dir = tmp();
  const store = await affinityStore(dir, affinities, dims);
  const block: Dims = [3, 7, 6];  // 2 x 2 x 3 = 12 blocks
  const reference = path.join(dir, 'reference.zarr');
  await segmentBlockwise(store, reference, { thresholds, block });
  const expected = await Promise.all(thresholds.map((th) => readIds(path.join(reference, `segmentation_${th}`), dims)));

  const out = path.join(dir, 'stopped.zarr');
  const stop = new AbortController();
  const first = await segmentBlockwise(store, out, {
    thresholds, block, signal: stop.signal, onProgress: (stage, done) => { if (stage === 'fragments' && done === 5) stop.abort(); },
  });
  t.true(first.stopped);
  t.deepEqual(first.stages.map((s) => [s.name, s.computed]), [['fragments', 5]]);
  const resumed = await segmentBlockwise(store, out, { thresholds, block });
  t.deepEqual(resumed.stages.map((s) => [s.name, s.computed, s.skipped]), [['fragments', 7, 5], ['edges', 12, 0], ['agglomerate', 1, 0], ['relabel', 12, 0]]);
  // A block killed while writing: its chunks may be there, its marker is not.
  fs.rmSync(path.join(out, '.segvol', 'done', 'relabel', '4'));
  fs.rmSync(path.join(out, `segmentation_${thresholds[1]}`, '0.1.1'));
  const again = await segmentBlockwise(store, out, { thresholds, block });
  t.deepEqual(again.stages.map((s) => [s.name, s.computed]), [['fragments', 0], ['edges', 0], ['agglomerate', 0], ['relabel', 1]]);
  for (const [i, th] of thresholds.entries()) t.deepEqual(await readIds(path.join(out, `segmentation_${th}`), dims), expected[i]);

  // A damaged block graph is named, with what to do; the segmentations already written stay.
  fs.writeFileSync(path.join(out, '.segvol', 'edges', '7'), 'not a graph');
  fs.rmSync(path.join(out, '.segvol', 'done', 'agglomerate', '0'));
  const damaged = await t.throwsAsync(segmentBlockwise(store, out, { thresholds, block }));
  t.is((damaged as { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(damaged!.message, /edges\/7: region graph: not a segvol region graph .*delete it and its done marker, then resume \(its marker: .*done\/edges\/7\)/);
  t.deepEqual(await readIds(path.join(out, `segmentation_${thresholds[0]}`), dims), expected[0]);
  // Out-of-range affinities are named with their block.
  const bad = Float32Array.from(affinities);
  bad.fill(2, 2 * voxels, 3 * voxels);
  const badStore = path.join(dir, 'bad');
  fs.mkdirSync(badStore);
  const refused = await t.throwsAsync(segmentBlockwise(await affinityStore(badStore, bad, dims), path.join(dir, 'bad.zarr'), { thresholds, block }));
  t.regex(refused!.message, /block \d+ \(from voxel \(\d+, \d+, \d+\)\): .*affinities in \[0, 1\], received 2/);

  // Three parts at once (array jobs): each takes its share of every stage and waits for the others.
  const shared = path.join(dir, 'parts.zarr');
  const parts = await Promise.all([0, 1, 2].map((index) => segmentBlockwise(store, shared, { thresholds, block, part: `${index}/3` })));
  for (const stage of ['fragments', 'edges', 'agglomerate', 'relabel']) {
    const computed = parts.map((p) => p.stages.find((s) => s.name === stage)!.computed);
    t.is(computed.reduce((a, b) => a + b, 0), stage === 'agglomerate' ? 1 : 12, `${stage}: ${computed.join(' + ')}`);
  }
  t.is(readBlockResult<{ fragments: number }>(path.join(shared, '.segvol', 'done', 'fragments'), 11)!.fragments > 0, true);
  for (const [i, th] of thresholds.entries()) t.deepEqual(await readIds(path.join(shared, `segmentation_${th}`), dims), expected[i]);
  // Another job in the same output is refused, and the output is left as it was.
  const e = await t.throwsAsync(segmentBlockwise(store, shared, { thresholds: [0.5], block }));
  t.is((e as { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(e!.message, /holds another segmentation/);
  t.deepEqual(await readIds(path.join(shared, `segmentation_${thresholds[0]}`), dims), expected[0]);
});

test('runStages: a stage waits for the stage before across parts, and results travel with the markers', async (t) => {
  const dir = tmp();
  const order: string[] = [];
  const stages = [
    { name: 'a', blocks: 4, markers: path.join(dir, 'a'), run: async (b: number) => { order.push(`a${b}`); return { square: b * b }; } },
    { name: 'b', blocks: 2, markers: path.join(dir, 'b'), run: async (b: number) => { order.push(`b${b}`); return undefined; } },
  ];
  const runs = await Promise.all([runStages(stages, { part: { index: 1, count: 2 }, pollMs: 5 }), runStages(stages, { part: '0/2', pollMs: 5 })]);
  t.deepEqual(runs.map((r) => r.stages.map((s) => s.computed)), [[2, 1], [2, 1]]);
  t.true(order.indexOf('b0') > Math.max(...['a0', 'a1', 'a2', 'a3'].map((s) => order.indexOf(s))), order.join(' '));
  t.deepEqual(readBlockResult(path.join(dir, 'a'), 3), { square: 9 });
  await t.throwsAsync(runStages(stages, { part: '2/2' }), { message: /0 <= i < n/ });
});

/** segvol in this process (as a user would call it; errors come back with their code). */
async function segvol(args: string[]): Promise<void> {
  await createProgram().exitOverride().parseAsync(['node', 'segvol', ...args]);
}

test('segvol segment: a noisy synthetic volume segmented block-wise and in memory recovers its cells; bad flags are refused with codes', async (t) => {
  const dir = tmp();
  const d: Dims = [8, 24, 24];
  const truth = cells(d, 7, 5);
  const aff = affinitiesOf(truth, d, 6, 0.12);
  const store = await affinityStore(dir, aff, d);
  writeNpy(path.join(dir, 'aff.npy'), { shape: [3, ...d], data: aff });
  writeNpy(path.join(dir, 'truth.npy'), { shape: d, data: Float32Array.from(truth) });
  const out = path.join(dir, 'seg.zarr');
  await segvol(['segment', '--affinities', store, '--out', out, '--thresholds', '0.3,0.5,0.7', '--chunks', '4,10,16']);
  const seg = await readIds(path.join(out, 'segmentation_0.5'), d);
  const error = metrics.rand(seg, truth).adaptedRandError;
  t.true(error < 0.05, `adapted Rand error ${error}`);
  // In memory, from the .npy: the same segmentation is not promised (whole-volume fragments), the quality is.
  await segvol(['segment', '--affinities', path.join(dir, 'aff.npy'), '--out', path.join(dir, 'seg.npy'), '--thresholds', '0.5', '--scoring', 'quantile:50']);
  const memory = readNpy(path.join(dir, 'seg_0.5.npy'));
  t.deepEqual(memory.shape, d);
  t.true(metrics.rand(memory.data, truth).adaptedRandError < 0.05);
  t.true(fs.existsSync(path.join(dir, 'seg_fragments.npy')));
  // The layout is a volume path for the other commands.
  await segvol(['evaluate', '--pred', path.join(out, 'segmentation_0.5'), '--truth', path.join(dir, 'truth.npy'), '--metrics', 'rand']);

  const refused = async (args: string[], code: string, message: RegExp) => {
    const e = await t.throwsAsync(segvol(['segment', ...args]));
    t.is((e as { code?: string }).code, code, args.join(' '));
    t.regex(e!.message, message);
  };
  const base = ['--out', path.join(dir, 'bad.zarr')];
  await refused(['--affinities', store, ...base, '--thresholds', '0.3,1.5'], 'ERR_ARGUMENT', /--thresholds: expected comma-separated numbers in \[0, 1\]/);
  await refused(['--affinities', store, ...base, '--thresholds', '0.5', '--scoring', 'quantile:150'], 'ERR_ARGUMENT', /--scoring/);
  await refused(['--affinities', store, ...base, '--thresholds', '0.5', '--watershed', '0.9,0.1'], 'ERR_ARGUMENT', /--watershed/);
  await refused(['--affinities', store, ...base, '--thresholds', '0.5', '--block', '3/2'], 'ERR_ARGUMENT', /0 <= i < n/);
  await refused([...base, '--thresholds', '0.5'], 'ERR_ARGUMENT', /--affinities .* or --model/);
  writeNpy(path.join(dir, 'two.npy'), { shape: [2, ...d], data: aff.subarray(0, 2 * d[0] * d[1] * d[2]) });
  await refused(['--affinities', path.join(dir, 'two.npy'), '--out', path.join(dir, 'bad2.zarr'), '--thresholds', '0.5'], 'ERR_SHAPE', /\(3, D, H, W\)/);
  await refused(['--affinities', path.join(dir, 'aff.npy'), '--out', path.join(dir, 'x.nii.gz'), '--thresholds', '0.5', '--chunks', '4,4,4'], 'ERR_ARGUMENT', /--out ending in \.zarr/);
  // The finished output is still whole.
  t.deepEqual(await readIds(path.join(out, 'segmentation_0.5'), d), seg);
});

test('segvol segment --model: affinities predicted block by block into the store, then segmented', async (t) => {
  const dir = tmp();
  const d: Dims = [4, 12, 12];
  const image = Float32Array.from(cells(d, 4, 8), (l) => l / 4);
  writeNpy(path.join(dir, 'image.npy'), { shape: d, data: image });
  const model = sequential([layers.conv({ out: 3, kernel: [1, 1, 1], init: 'xavier' }), layers.sigmoid()], { inChannels: 1, seed: 3 });
  model.save(path.join(dir, 'aff.safetensors'));
  const out = path.join(dir, 'seg.zarr');
  await segvol(['segment', '--model', path.join(dir, 'aff.safetensors'), '--in', path.join(dir, 'image.npy'), '--out', out, '--thresholds', '0.5', '--chunks', '2,6,12']);
  const predicted = await openZarr(path.join(out, 'affinities'));
  t.deepEqual(predicted.shape, [3, ...d]);
  const seg = await readIds(path.join(out, 'segmentation_0.5'), d);
  t.is(seg.length, d[0] * d[1] * d[2]);
  t.true(seg.every((v) => v >= 0));
  // In memory (a non-Zarr output): stitched windows, then the same agglomeration.
  await segvol(['segment', '--model', path.join(dir, 'aff.safetensors'), '--in', path.join(dir, 'image.npy'), '--out', path.join(dir, 'seg.npy'), '--thresholds', '0.5']);
  t.deepEqual(readNpy(path.join(dir, 'seg_0.5.npy')).shape, d);
  const e = await t.throwsAsync(segvol(['segment', '--model', path.join(dir, 'aff.safetensors'), '--out', path.join(dir, 'x.zarr'), '--thresholds', '0.5']));
  t.regex(e!.message, /--model needs --in/);
  model.dispose();
});

test('docs/segmentation.md: its TypeScript and command-line examples run as written', async (t) => {
  const root = path.join(__dirname, '..');
  const doc = fs.readFileSync(path.join(root, 'docs', 'segmentation.md'), 'utf8');
  const blocks = [...doc.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, code: m[2]! }));
  const dir = tmp();
  const scripts = blocks.filter((b) => b.lang === 'ts');
  t.is(scripts.length, 2);
  for (const [k, block] of scripts.entries()) {
    const file = path.join(dir, `example${k + 1}.ts`);
    fs.writeFileSync(file, block.code.replace(/from 'segvol'/g, `from '${path.join(root, 'lib')}'`));
    const run = spawnSync(process.execPath, ['--require', path.join(root, 'node_modules', 'ts-node', 'register'), file],
      { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TS_NODE_PROJECT: path.join(root, 'tsconfig.json') } });
    t.is(run.status, 0, `${run.stdout}\n${run.stderr}`);
    t.log(run.stdout.trim());
    if (k === 0) t.regex(run.stdout, /^2 \[ 2, 1 \]\n0$/m);
  }
  // The command lines, with their relative paths taken from the folder the script wrote into.
  const lines = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.code.trim().split('\n'));
  t.true(lines.length >= 3 && lines.every((l) => l.startsWith('segvol ')));
  for (const line of lines) await segvol(line.split(/\s+/).slice(1).map((a) => (a.startsWith('segvol-segment/') ? path.join(dir, a) : a)));
  const truth = readNpy(path.join(dir, 'segvol-segment', 'cells.npy'));
  const seg = await readIds(path.join(dir, 'segvol-segment', 'seg.zarr', 'segmentation_0.5'), truth.shape as Dims);
  const error = metrics.rand(seg, truth.data).adaptedRandError;
  t.true(error < 0.1, `adapted Rand error ${error}`);
  t.log(`the docs' example: adapted Rand error ${error.toFixed(4)} at 0.5`);
});
