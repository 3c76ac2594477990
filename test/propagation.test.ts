// Propagation in overlapping 3D patches (the consistent ConvLSTM's inference at scale):
// tiles in y and x give the same segmentation as one whole-frame tile when the model is
// local; the out-of-core Zarr path equals the in-memory one, resumes and splits into parts;
// the decoder in groups of objects equals one pass over all; memory stays with the patch;
// and the coded errors of bad inputs.
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  choosePatch, estimateConsistentMemory, memoryStats, Model, planPropagation, presets, readZarr, resetPeakMemory, segmentConsistent, syntheticEm, Tensor, writeZarr,
  disposeSpatial, detachSpatial, segmentConsistentZarr, type ModelInput, type ModelInputShape, type RunOptions, type SpatialStates,
} from '../lib';

/**
 * A propagator with a small field of view: an object's mask in frame t is likely where its
 * mask in frame t-1, blurred by 3x3, is high and the image is bright. It sees 1 pixel per
 * frame and pass, so tiles whose margins exceed that must reproduce the whole-frame result.
 */
class LocalPropagator extends Model {
  readonly outChannels = 1;
  readonly options = { hidden: [1, 1, 1, 1, 1], variant: 'ST', inChannels: 1 } as const;
  constructor() {
    super({ inputs: { frames: 1, masks: 1 }, seed: 0 });
  }
  outputShape(shape: ModelInputShape): number[] {
    return [...(this.inputShapes(shape).get('masks') ?? [])];
  }
  forward(_x: ModelInput, _o?: RunOptions): Promise<Tensor> {
    return Promise.reject(new Error('LocalPropagator runs through encode and decode'));
  }
  receptiveField(): number {
    return 32;
  }
  encode(frames: Tensor): Promise<Tensor[]> {
    const [, , T, H, W] = frames.shape as [number, number, number, number, number];
    return Promise.resolve([Tensor.fromArray(frames.toArray(), [T, 1, H, W])]);
  }
  async decode(features: readonly Tensor[], objects: number, maskOf: (o: number) => Tensor,
    options: { onObject: (o: number, mask: Tensor) => void | Promise<void> }): Promise<{ spatial: SpatialStates }> {
    const [T, , H, W] = features[0]!.shape as [number, number, number, number];
    const image = features[0]!.toArray();
    for (let o = 0; o < objects; ++o) {
      const m = maskOf(o).toArray();
      const out = new Float32Array(T * H * W);
      for (let t = 0; t < T; ++t) {
        for (let y = 0; y < H; ++y) {
          for (let x = 0; x < W; ++x) {
            let s = 0;
            for (let dy = -1; dy <= 1; ++dy) for (let dx = -1; dx <= 1; ++dx) {
              const yy = y + dy, xx = x + dx;
              if (yy >= 0 && yy < H && xx >= 0 && xx < W) s += m[(t * H + yy) * W + xx]!;
            }
            const i = (t * H + y) * W + x;
            out[i] = 1 / (1 + Math.exp(-(8 * (s / 9 - 0.5) + 2 * image[i]! - 1)));
          }
        }
      }
      await options.onObject(o, Tensor.fromArray(out, [T, 1, H, W]));
    }
    return { spatial: [] };
  }
}

function emVolume(depth: number, size: number, cells: number, seed: number) {
  const em = syntheticEm({ depth, height: size, width: size, cells, seed });
  // Image in [0, 1]: the local model's objects stay put on bright cells and stop at dark membranes.
  let lo = Infinity, hi = -Infinity;
  for (const v of em.image) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return { ...em, image: Float32Array.from(em.image, (v) => (v - lo) / (hi - lo)) };
}

test('tiles in y and x reproduce the whole-frame propagation of a local model, whatever the tile, margin and frames per sub-volume', async (t) => {
  const em = emVolume(9, 150, 30, 3);
  const model = new LocalPropagator();
  const first = em.segments.subarray(0, 150 * 150);
  const whole = await segmentConsistent(model, em.image, em.shape, { firstFrame: first, frames: 4, tile: [160, 160] });
  t.deepEqual([...whole.subarray(0, 150 * 150)], [...first], 'the reference frame is kept');
  t.true(new Set(whole.subarray(8 * 150 * 150)).size > 5, 'objects reach the last frame');
  for (const [tile, margin, frames] of [[[64, 64], 8, 4], [[96, 64], [16, 4], 4], [[64, 128], 2, 3]] as const) {
    const plan = planPropagation(model, em.shape, tile, { margin, frames });
    t.true(plan.tiles[0].origins.length > 1 || plan.tiles[1].origins.length > 1, 'several tiles');
    const reference = frames === 4 ? whole : await segmentConsistent(model, em.image, em.shape, { firstFrame: first, frames, tile: [160, 160] });
    const tiled = await segmentConsistent(model, em.image, em.shape, { firstFrame: first, frames, tile, margin });
    let differ = 0;
    for (let i = 0; i < tiled.length; ++i) if (tiled[i] !== reference[i]) ++differ;
    t.is(differ, 0, `tiles ${tile.join('x')} with margin ${JSON.stringify(margin)}, ${frames} frames: ${differ} voxels differ`);
  }
  // The cores split the frame: every pixel belongs to exactly one tile.
  const plan = planPropagation(model, em.shape, [64, 64], { margin: 8 });
  for (const axis of plan.tiles) {
    t.is(axis.cores[0]![0], 0);
    t.is(axis.cores[axis.cores.length - 1]![1], 150);
    axis.cores.forEach((c, i) => {
      if (i > 0) t.is(c[0], axis.cores[i - 1]![1]);
      t.true(c[0] - axis.origins[i]! >= (i > 0 ? 8 : 0) && axis.origins[i]! + 64 - c[1] >= (i < axis.cores.length - 1 ? 8 : 0), 'the margin around each core');
    });
  }
});

test('out of core: Zarr to Zarr equals the in-memory result; a stopped run resumes; parts share the tiles', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-propagation-'));
  const em = emVolume(10, 100, 20, 4);
  const model = new LocalPropagator();
  const first = em.segments.subarray(0, 100 * 100);
  const geometry = { frames: 4, tile: [64, 64] as const, margin: 8 };
  const expected = await segmentConsistent(model, em.image, em.shape, { firstFrame: first, ...geometry });
  const input = path.join(dir, 'em.zarr');
  await writeZarr(input, em.image, em.shape, { chunks: [4, 32, 32] });
  const run = (out: string, extra: Partial<Parameters<typeof segmentConsistentZarr>[1]> = {}) =>
    segmentConsistentZarr(model, { input, reference: first, out, ...geometry, chunks: [48, 48], ...extra });
  const out = path.join(dir, 'labels.zarr');
  const full = await run(out);
  t.is(full.computed, full.plan.slabs.length * 4);
  t.deepEqual([...(await readZarr(out)).data], [...expected], 'the same labels as in memory');
  // A run stopped after 5 patches, resumed: the rest is computed, nothing twice.
  const stopped = path.join(dir, 'stopped.zarr');
  const controller = new AbortController();
  await t.throwsAsync(() => run(stopped, { signal: controller.signal, onProgress: (done) => { if (done === 5) controller.abort(); } }), { message: /aborted/ });
  await t.throwsAsync(() => run(stopped), { message: /exists \(an earlier propagation\); go on with it with resume/ });
  await t.throwsAsync(() => run(stopped, { resume: true, margin: 4 }), { message: /holds another propagation \(margin \[8,8\] there, \[4,4\] now\)/ });
  const resumed = await run(stopped, { resume: true });
  t.is(resumed.skipped, 5);
  t.is(resumed.computed, full.computed - 5);
  t.deepEqual([...(await readZarr(stopped)).data], [...expected]);
  // Two parts at once (two array jobs): each computes half the tiles of every sub-volume.
  const shared = path.join(dir, 'parts.zarr');
  const parts = await Promise.all([0, 1].map((index) => run(shared, { part: { index, count: 2 }, pollMs: 20 })));
  t.is(parts[0]!.computed + parts[1]!.computed, full.computed);
  t.true(parts[0]!.computed > 0 && parts[1]!.computed > 0);
  t.deepEqual([...(await readZarr(shared)).data], [...expected]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the consistent network: decoding objects in groups that carry the spatial states equals one pass over all of them; its tiles must cover its field of view', async (t) => {
  const model = presets.consistentConvLstm({ hidden: [4, 4, 4, 4, 4], seed: 2 });
  t.is(model.receptiveField(), 427, 'ResNet-50\'s receptive field');
  const [T, H, W] = [3, 64, 64];
  const frames = Tensor.fromArray(Float32Array.from({ length: T * H * W }, (_, i) => Math.sin(i / 7)), [1, 1, T, H, W]);
  const masks = Array.from({ length: 5 }, (_, o) => Tensor.fromArray(Float32Array.from({ length: T * H * W }, (_, i) => ((i + o * 11) % 13 < 4 ? 1 : 0)), [T, 1, H, W]));
  const features = await model.encode(frames);
  const once: number[][] = [];
  disposeSpatial((await model.decode(features, 5, (o) => masks[o]!, { onObject: (_, m) => void once.push([...m.toArray()]) })).spatial);
  const grouped: number[][] = [];
  const a = await model.decode(features, 2, (o) => masks[o]!, { onObject: (_, m) => void grouped.push([...m.toArray()]) });
  const carried = detachSpatial(a.spatial);
  disposeSpatial(a.spatial);
  disposeSpatial((await model.decode(features, 3, (o) => masks[o + 2]!, { spatial: carried, onObject: (_, m) => void grouped.push([...m.toArray()]) })).spatial);
  disposeSpatial(carried);
  t.deepEqual(grouped, once, 'the same masks, bit for bit');
  // Tiles smaller than the field of view are refused; a frame smaller than it is one tile.
  const err = t.throws(() => planPropagation(model, [8, 1024, 1024], [256, 256])) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /tile's height 256 is smaller than the network's field of view \(427 pixels/);
  t.deepEqual(planPropagation(model, [8, 100, 90], [128, 128]).patch, [8, 128, 96], 'a small frame is one tile, padded to multiples of 32');
  for (const x of [frames, ...masks, ...features]) x.dispose();
  model.dispose();
});

test('bad inputs: a first frame without objects, ids over 2^31, a budget too small for one object', async (t) => {
  const model = presets.consistentConvLstm({ hidden: [4, 4, 4, 4, 4], seed: 2 });
  const volume = new Float32Array(4 * 64 * 64);
  const empty = await t.throwsAsync(() => segmentConsistent(model, volume, [4, 64, 64], { firstFrame: new Int32Array(64 * 64) })) as Error & { code?: string };
  t.is(empty?.code, 'ERR_ARGUMENT');
  t.regex(empty!.message, /the first frame has no objects \(every label is 0\)/);
  const big = new Float64Array(64 * 64);
  big[100] = 2 ** 31;
  const ids = await t.throwsAsync(() => segmentConsistent(model, volume, [4, 64, 64], { firstFrame: big })) as Error & { code?: string };
  t.is(ids?.code, 'ERR_ARGUMENT');
  t.regex(ids!.message, /object ids must be integers in 0\.\.2147483647 \(2\^31 - 1\); voxel 100 holds 2147483648/);
  const first = Int32Array.from({ length: 64 * 64 }, (_, i) => 1 + (i % 3));
  const budget = t.throws(() => choosePatch(model, [4, 64, 64], first, { memoryBudget: 2 ** 20 })) as Error & { code?: string };
  t.is(budget.code, 'ERR_MEMORY');
  t.regex(budget.message, /the memory budget \(0\.00 GiB\) is too small for one object: a 4x64x64 patch .* with one object needs about/);
  const before = memoryStats().cpu.bytes;
  await t.throwsAsync(() => segmentConsistent(model, volume, [4, 64, 64], { firstFrame: first, memoryBudget: 2 ** 20 }), { message: /too small for one object/ });
  t.is(memoryStats().cpu.bytes, before, 'refused before allocating');
  model.dispose();
});

test.serial('memory: a patch\'s tensors stay the same with 2 or 12 objects, and near the prediction', async (t) => {
  const model = presets.consistentConvLstm({ hidden: [8, 8, 8, 8, 8], seed: 1 });
  const [T, H, W] = [4, 128, 128];
  const em = syntheticEm({ depth: T, height: H, width: W, cells: 40, seed: 5 });
  const peaks: number[] = [];
  for (const objects of [2, 12]) {
    const first = Int32Array.from(em.segments.subarray(0, H * W), (v) => (v > 0 && v <= objects ? v : 0));
    resetPeakMemory('cpu');
    const before = memoryStats().cpu.bytes;
    await segmentConsistent(model, em.image, em.shape, { firstFrame: first, frames: T });
    const peak = memoryStats().cpu.peakBytes - before;
    peaks.push(peak);
    const e = estimateConsistentMemory(model, [T, H, W], objects);
    const predicted = e.inferenceBytes - e.inferenceHostBytes - 4 * model.paramCount();
    t.true(predicted / peak > 0.95 && predicted / peak < 1.3, `${objects} objects: tensor peak ${(peak / 2 ** 20).toFixed(1)} MiB, predicted ${(predicted / 2 ** 20).toFixed(1)} MiB`);
  }
  t.true(peaks[1]! < 1.1 * peaks[0]!, `the decoder holds one or two objects at a time: ${peaks.map((p) => (p / 2 ** 20).toFixed(1)).join(' vs ')} MiB`);
  model.dispose();
});
