// npm run bench -- consistent: the consistent ConvLSTM segmenting a SNEMI3D-shaped volume
// (100 x 1024 x 1024, 300 or more objects per frame) out of core, Zarr to Zarr, with the peak
// RSS and the time of the process that does it. The data is synthetic (EM-like Voronoi cells,
// written once to --dir); the network is untrained (time and memory do not depend on the
// weights). A stopped run goes on where it stopped when run again (the output resumes);
// every process records its time and peak after each patch (in <dir>/runs/), and the summary adds them up.
//   --size D,H,W (default 100,1024,1024)  --cells N (default 1300)  --window T,h,w (default 8,448,448)
//   --hidden h (default 8, every level)  --passes n (default 1)  --budget 12G  --dir <folder>
//   --smoke: a small volume, to check the suite.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openZarr, presets, segmentConsistentZarr, ZarrWriter } from '../../lib';
import { Random } from '../../lib/core/random';
import type { BenchArgs, Suite } from '../common';
import { repoRoot } from '../processes';

interface Geometry {
  size: [number, number, number];
  cells: number;
  seed: number;
}

/**
 * Voronoi cells in an anisotropic volume (thick sections: z distances count zScale times),
 * dark membranes where the two nearest seeds are almost equally near, per-cell brightness,
 * noise, written slab by slab: the image as uint8 and the cell ids as int32. Seeds are
 * bucketed in y and x so a voxel looks at its neighbourhood only.
 */
async function writeSyntheticStack(dir: string, g: Geometry, log: (line: string) => void): Promise<void> {
  const [D, H, W] = g.size;
  const zScale = 2;
  const random = new Random(g.seed);
  const seeds = Array.from({ length: g.cells }, () => [random.next() * D, random.next() * H, random.next() * W] as const);
  const brightness = Float32Array.from({ length: g.cells }, () => 0.55 + 0.3 * random.next());
  // Buckets of about two seed spacings in y and x.
  const spacing = Math.cbrt((D * zScale * H * W) / g.cells);
  const bucket = Math.max(8, Math.ceil(2 * spacing));
  const by = Math.ceil(H / bucket), bx = Math.ceil(W / bucket);
  const reach = 2 * spacing;
  const slab = 8;
  const image = ZarrWriter.create(path.join(dir, 'em.zarr'), { shape: [D, H, W], chunks: [slab, 256, 256], dtype: 'uint8' });
  const truth = ZarrWriter.create(path.join(dir, 'truth.zarr'), { shape: [D, H, W], chunks: [1, 512, 512], dtype: 'int32' });
  const chunkOf = (values: ArrayLike<number>, z0: number, depth: number, c: readonly number[], chunk: readonly number[]) => {
    const [cz, cy, cx] = chunk as [number, number, number];
    const d = Math.min(cz, depth), h = Math.min(cy, H - c[1]! * cy), w = Math.min(cx, W - c[2]! * cx);
    const out = new Float32Array(d * h * w);
    for (let z = 0; z < d; ++z) for (let y = 0; y < h; ++y) for (let x = 0; x < w; ++x) out[(z * h + y) * w + x] = values[((c[0]! * cz - z0 + z) * H + c[1]! * cy + y) * W + c[2]! * cx + x]!;
    return out;
  };
  let fewest = Infinity;
  for (let z0 = 0; z0 < D; z0 += slab) {
    const depth = Math.min(slab, D - z0);
    const ids = new Int32Array(depth * H * W);
    const values = new Float32Array(depth * H * W);
    for (let z = z0; z < z0 + depth; ++z) {
      const near: number[][] = Array.from({ length: by * bx }, () => []);
      seeds.forEach(([sz, sy, sx], c) => {
        if (Math.abs(sz - z) * zScale > reach) return;
        near[Math.min(by - 1, Math.floor(sy / bucket)) * bx + Math.min(bx - 1, Math.floor(sx / bucket))]!.push(c);
      });
      const objects = new Set<number>();
      for (let y = 0; y < H; ++y) {
        const ty = Math.min(by - 1, Math.floor(y / bucket));
        for (let x = 0; x < W; ++x) {
          const tx = Math.min(bx - 1, Math.floor(x / bucket));
          let d1 = Infinity, d2 = Infinity, nearest = 0;
          for (let yy = Math.max(0, ty - 1); yy <= Math.min(by - 1, ty + 1); ++yy) {
            for (let xx = Math.max(0, tx - 1); xx <= Math.min(bx - 1, tx + 1); ++xx) {
              for (const c of near[yy * bx + xx]!) {
                const s = seeds[c]!;
                const d = ((z - s[0]) * zScale) ** 2 + (y - s[1]) ** 2 + (x - s[2]) ** 2;
                if (d < d1) [d2, d1, nearest] = [d1, d, c];
                else if (d < d2) d2 = d;
              }
            }
          }
          const i = ((z - z0) * H + y) * W + x;
          const membrane = (Math.sqrt(d2) - Math.sqrt(d1)) / 2 < 1.5;
          ids[i] = membrane || d1 === Infinity ? 0 : nearest + 1;
          if (ids[i]) objects.add(ids[i]!);
          values[i] = membrane ? 0.15 : brightness[nearest]!;
        }
      }
      fewest = Math.min(fewest, objects.size);
    }
    for (let i = 0; i < values.length; ++i) values[i] = Math.max(0, Math.min(255, Math.round(255 * (values[i]! + 0.06 * (random.next() - 0.5) * 2))));
    for (let cy = 0; cy * 256 < H; ++cy) for (let cx = 0; cx * 256 < W; ++cx) await image.writeChunk([z0 / slab, cy, cx], chunkOf(values, z0, depth, [z0 / slab, cy, cx], [slab, 256, 256]));
    for (let z = z0; z < z0 + depth; ++z) {
      for (let cy = 0; cy * 512 < H; ++cy) for (let cx = 0; cx * 512 < W; ++cx) await truth.writeChunk([z, cy, cx], chunkOf(ids, z0, depth, [z, cy, cx], [1, 512, 512]));
    }
    log(`synthetic stack: frames ${z0}..${z0 + depth - 1} written`);
  }
  fs.writeFileSync(path.join(dir, 'data.json'), JSON.stringify({ ...g, fewestObjectsPerFrame: fewest }));
}

interface CaseOptions {
  dir: string;
  window: [number, number, number];
  hidden: number;
  passes: number;
  budget: number;
}

/** The propagation itself, in this (child) process: prints its peak RSS and time. */
async function propagationCase(o: CaseOptions): Promise<void> {
  const model = presets.consistentConvLstm({ hidden: new Array(5).fill(o.hidden), seed: 1 });
  const truth = await openZarr(path.join(o.dir, 'truth.zarr'));
  const [, H, W] = truth.shape as [number, number, number];
  const first = await truth.read([0, 0, 0], [1, H, W]);
  const start = Date.now();
  // This process's record, rewritten after every patch so that a run stopped by a kill still counts its time and peak.
  const record = path.join(o.dir, 'runs', `${start}-${process.pid}.json`);
  fs.mkdirSync(path.dirname(record), { recursive: true });
  // Each patch's own time too: on a shared machine the median patch says more than the total.
  const patchSeconds: number[] = [];
  let lastPatch = start;
  const note = (extra: object) => fs.writeFileSync(record, JSON.stringify({
    seconds: (Date.now() - start) / 1000, peak_rss_gib: process.resourceUsage().maxRSS / 2 ** 20, patch_seconds: patchSeconds, ...extra,
  }));
  const r = await segmentConsistentZarr(model, {
    input: path.join(o.dir, 'em.zarr'), reference: first, out: path.join(o.dir, 'labels.zarr'), resume: true, normalize: 'slice',
    frames: o.window[0], tile: [o.window[1], o.window[2]], passes: o.passes, memoryBudget: o.budget, modelId: `untrained hidden ${o.hidden}`,
    onProgress: (done, total) => {
      const now = Date.now();
      // A patch done by an earlier process is reported at once, in well under a second: it is not timed.
      if (now - lastPatch >= 1000) patchSeconds.push(Math.round((now - lastPatch) / 100) / 10);
      lastPatch = now;
      note({ done, total });
      console.error(`patch ${done}/${total} after ${((Date.now() - start) / 1000).toFixed(0)} s, peak RSS ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`);
    },
  });
  const summary = {
    computed: r.computed, skipped: r.skipped, tiles: [r.plan.tiles[0].origins.length, r.plan.tiles[1].origins.length], slabs: r.plan.slabs.length, patch: r.plan.patch,
  };
  note({ finished: true, ...summary });
  console.log(JSON.stringify(summary));
  model.dispose();
}

const triple = (text: string | undefined, fallback: [number, number, number]) => (text ? text.split(',').map(Number) as [number, number, number] : fallback);

export const consistent: Suite = {
  name: 'consistent',
  async run({ has, value }: BenchArgs) {
    const smoke = has('--smoke');
    const dir = value('--dir') ?? path.join(os.tmpdir(), smoke ? 'segvol-bench-consistent-smoke' : 'segvol-bench-consistent');
    const options: CaseOptions = {
      dir, window: triple(value('--window'), smoke ? [4, 448, 448] : [8, 448, 448]), hidden: Number(value('--hidden') ?? 8),
      passes: Number(value('--passes') ?? 1), budget: Number(value('--budget-bytes') ?? 12 * 2 ** 30),
    };
    if (has('--case')) {
      await propagationCase(JSON.parse(value('--case')!) as CaseOptions);
      return;
    }
    const geometry: Geometry = { size: triple(value('--size'), smoke ? [6, 600, 600] : [100, 1024, 1024]), cells: Number(value('--cells') ?? (smoke ? 60 : 1300)), seed: 1 };
    fs.mkdirSync(dir, { recursive: true });
    const dataFile = path.join(dir, 'data.json');
    const existing = fs.existsSync(dataFile) ? JSON.parse(fs.readFileSync(dataFile, 'utf8')) as Geometry & { fewestObjectsPerFrame: number } : undefined;
    if (!existing || JSON.stringify(existing.size) !== JSON.stringify(geometry.size) || existing.cells !== geometry.cells) {
      for (const name of ['em.zarr', 'truth.zarr', 'labels.zarr', 'runs', 'data.json']) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      const t0 = Date.now();
      await writeSyntheticStack(dir, geometry, (line) => console.error(line));
      console.error(`synthetic stack written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
    const data = JSON.parse(fs.readFileSync(dataFile, 'utf8')) as { fewestObjectsPerFrame: number };
    // The propagation in a fresh process: its peak RSS is its own.
    const child = spawnSync(process.execPath, ['-r', 'ts-node/register', path.join(repoRoot, 'benchmarks', 'run.ts'), 'consistent', '--case', JSON.stringify(options)],
      { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    if (child.status !== 0) {
      console.log(JSON.stringify({ case: 'consistent propagation', error: `the propagation process exited with ${child.status}; run again to resume` }));
      return;
    }
    const run = JSON.parse(child.stdout.trim().split('\n').pop()!) as { computed: number; skipped: number; tiles: number[]; slabs: number; patch: number[] };
    // Every process of this run, finished or stopped: their times add up, the peak is the largest.
    const runs = fs.readdirSync(path.join(dir, 'runs')).map((f) => JSON.parse(fs.readFileSync(path.join(dir, 'runs', f), 'utf8')) as { seconds: number; peak_rss_gib: number; patch_seconds?: number[] });
    const perPatch = runs.flatMap((r) => r.patch_seconds ?? []).sort((a, b) => a - b);
    const truth = await openZarr(path.join(dir, 'truth.zarr'));
    console.log(JSON.stringify({
      case: `consistent ConvLSTM (hidden ${options.hidden}, untrained), ${truth.shape.join('x')} EM, ${data.fewestObjectsPerFrame}+ objects per frame, ` +
        `patches ${run.patch.join('x')} in ${run.tiles.join('x')} tiles x ${run.slabs} sub-volumes, ${options.passes} pass(es)`,
      seconds: Math.round(runs.reduce((s, r) => s + r.seconds, 0)), processes: runs.length,
      peak_rss_gib: Math.round(Math.max(...runs.map((r) => r.peak_rss_gib)) * 100) / 100, budget_gib: options.budget / 2 ** 30,
      patches_timed: perPatch.length, median_patch_seconds: perPatch.length ? perPatch[perPatch.length >> 1] : null,
    }));
  },
};
