// Chunked volumes: Zarr v2/v3 arrays and OME-Zarr images written by tensorstore
// (test/fixtures/make_zarr_fixtures.py), segvol's writer read back by zarrita (and by
// tensorstore when Python has it), and errors that name the chunk.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { readNpy, writeNpy } from '../lib/io/npy';
import {
  blockDone, layers, openZarr, planChunkedPrediction, predictBlock, predictChunked, predictVolume, readChunkedPlan, readZarr, sequential, Tensor, windowStarts, writeZarr, ZarrWriter,
} from '../lib';

const dir = path.join(__dirname, 'fixtures', 'zarr');

function expected(shape: readonly number[], unsigned: boolean): Float32Array {
  const [D, H, W] = shape as [number, number, number];
  const out = new Float32Array(D * H * W);
  for (let z = 0; z < D; ++z) for (let y = 0; y < H; ++y) for (let x = 0; x < W; ++x) {
    out[(z * H + y) * W + x] = ((z * 131 + y * 17 + x * 3) % 251) - 100 + (unsigned ? 100 : 0);
  }
  return out;
}

const fixtures: Array<[string, number[], number[], string]> = [
  ['v2_uint8_zlib.zarr', [5, 7, 9], [2, 4, 4], 'uint8'],
  ['v2_float32_blosc.zarr', [4, 6, 5], [3, 3, 3], 'float32'],
  ['v2_int16_raw.zarr', [3, 5, 6], [2, 5, 4], 'int16'],
  ['v3_float32_gzip.zarr', [5, 6, 7], [2, 3, 4], 'float32'],
  ['v3_uint16_blosc.zarr', [4, 4, 9], [4, 2, 5], 'uint16'],
  ['v3_int16_raw.zarr', [2, 3, 5], [1, 2, 2], 'int16'],
];

for (const [name, shape, chunks, dtype] of fixtures) {
  test(`reads ${name} written by tensorstore (partial last chunks), whole and by region`, async (t) => {
    const a = await openZarr(path.join(dir, name));
    t.deepEqual(a.shape, shape);
    t.deepEqual(a.chunks, chunks);
    t.regex(a.dtype, new RegExp(dtype));
    const want = expected(shape, dtype.startsWith('uint'));
    const whole = await readZarr(path.join(dir, name));
    t.deepEqual([...whole.data], [...want]);
    // A region across chunk borders.
    const [D, H, W] = shape as [number, number, number];
    const region = await a.read([1, 1, 2], [D - 1, H - 2, W - 3]);
    const check: number[] = [];
    for (let z = 1; z < D; ++z) for (let y = 1; y < H - 1; ++y) for (let x = 2; x < W - 1; ++x) check.push(want[(z * H + y) * W + x]!);
    t.deepEqual([...region], check);
  });
}

test('OME-Zarr: a multiscale image opens at its finest level with its scale as spacing; a level by path', async (t) => {
  const image = await readZarr(path.join(dir, 'image.ome.zarr'));
  t.deepEqual(image.shape, [3, 8, 8]);
  t.deepEqual(image.spacing, [2, 0.5, 0.5]);
  t.deepEqual([...image.data], [...expected([3, 8, 8], true)]);
  const coarse = await readZarr(path.join(dir, 'image.ome.zarr', '1'));
  t.deepEqual(coarse.shape, [3, 4, 4]);
});

test('segvol writes Zarr v2 and v3 (gzip, zlib, blosc, none; int and float) that zarrita reads back, and tensorstore too when Python has it', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-zarr-'));
  const shape = [5, 9, 7];
  const data = expected(shape, false);
  const cases: Array<[string, 2 | 3, 'gzip' | 'zlib' | 'blosc' | 'none', 'float32' | 'int16' | 'uint8']> = [
    ['w2_gzip_f32.zarr', 2, 'gzip', 'float32'], ['w2_zlib_i16.zarr', 2, 'zlib', 'int16'], ['w2_blosc_f32.zarr', 2, 'blosc', 'float32'],
    ['w3_gzip_i16.zarr', 3, 'gzip', 'int16'], ['w3_blosc_f32.zarr', 3, 'blosc', 'float32'], ['w3_none_f32.zarr', 3, 'none', 'float32'],
  ];
  for (const [name, version, compressor, dtype] of cases) {
    await writeZarr(path.join(tmp, name), data, shape, { chunks: [2, 4, 3], zarrVersion: version, compressor, dtype });
    const back = await readZarr(path.join(tmp, name));
    t.deepEqual(back.shape, shape, name);
    t.deepEqual([...back.data], [...data], `${name}: the values back`);
  }
  // The same chunk written twice gives the same bytes (idempotent block writes).
  const w = ZarrWriter.create(path.join(tmp, 'again.zarr'), { shape: [4, 4], chunks: [2, 2], compressor: 'gzip' });
  await w.writeChunk([1, 1], [1, 2, 3, 4]);
  const first = fs.readFileSync(w.chunkPath([1, 1]));
  await w.writeChunk([1, 1], [1, 2, 3, 4]);
  t.deepEqual(fs.readFileSync(w.chunkPath([1, 1])), first);
  t.deepEqual(fs.readdirSync(path.join(tmp, 'again.zarr')).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
  await t.throwsAsync(() => w.writeChunk([2, 0], [1, 2, 3, 4]), { message: /chunk \(2, 0\) is outside the grid \(2, 2\)/ });
  t.throws(() => ZarrWriter.create(path.join(tmp, 'bad.zarr'), { shape: [4], chunks: [2], compressor: 'zlib', zarrVersion: 3 }), { message: /Zarr v3 has no zlib codec/ });
  const python = spawnSync(process.env.PYTHON ?? 'python3', [path.join(dir, '..', 'make_zarr_fixtures.py'), 'check', tmp], { encoding: 'utf8' });
  if (python.status !== 0) {
    t.log(`tensorstore check skipped: ${(python.stderr || '').trim().split('\n').pop()}`);
  } else {
    const report = JSON.parse(python.stdout) as Record<string, { shape: number[]; sum: number }>;
    const sum = data.reduce((s, v) => s + v, 0);
    for (const [name] of cases) t.true(Math.abs(report[name]!.sum - sum) < 1e-3 && report[name]!.shape.join() === shape.join(), `tensorstore reads ${name}`);
  }
  fs.rmSync(tmp, { recursive: true });
});

test('a corrupt chunk or missing metadata gives a coded error naming what failed', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-zarr-bad-'));
  const store = path.join(tmp, 'a.zarr');
  await writeZarr(store, expected([4, 4, 4], false), [4, 4, 4], { chunks: [2, 2, 2], compressor: 'zlib' });
  fs.writeFileSync(path.join(store, '1.0.1'), 'not zlib');
  const a = await openZarr(store);
  const err = await t.throwsAsync(() => a.read([2, 0, 2], [2, 2, 2])) as Error & { code?: string };
  t.is(err.code, 'ERR_FORMAT');
  t.regex(err.message, /reading region \[2, 0, 2\] \+ \(2, 2, 2\) failed: .*chunk/);
  fs.rmSync(path.join(store, '.zarray'));
  const missing = await t.throwsAsync(() => openZarr(store)) as Error & { code?: string };
  t.is(missing.code, 'ERR_FORMAT');
  t.regex(missing.message, /cannot open the Zarr array .*expected \.zarray \(v2\) or zarr\.json \(v3\) metadata/);
  await t.throwsAsync(() => openZarr(path.join(tmp, 'none.zarr')), { message: /no such Zarr store/ });
  fs.rmSync(tmp, { recursive: true });
});

/** A small 'same' net and a 'valid' one (field of view 3x3x3: mirrored borders). */
function nets() {
  const same = sequential([layers.conv({ out: 3, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 2 });
  same.info = { normalize: 'slice' };
  const valid = sequential([layers.conv({ out: 2, kernel: [3, 3, 3], init: 'xavier' }), layers.softmax()], { inChannels: 2, seed: 3 });
  valid.info = { normalize: 'nonzero' };
  return { same, valid };
}

/** A 9x20x17 volume of one channel (in1.zarr) and of two (in2.zarr), written to tmp in uneven chunks. */
async function chunkedInputs(tmp: string) {
  const dims = [9, 20, 17];
  const volume = Float32Array.from({ length: 9 * 20 * 17 }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7));
  const two = new Float32Array(2 * volume.length);
  two.set(volume);
  two.set(volume.map((v, i) => (i % 5 === 0 ? 0 : v * 0.5 + 1)), volume.length);
  await writeZarr(path.join(tmp, 'in1.zarr'), volume, dims, { chunks: [4, 8, 8] });
  await writeZarr(path.join(tmp, 'in2.zarr'), two, [2, ...dims], { chunks: [1, 5, 7, 6] });
  return { dims, volume, two };
}

test('out-of-core prediction equals predictVolume in memory, byte for byte, for any chunking and any split into parts; resume skips finished blocks', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-chunked-'));
  const { same, valid } = nets();
  const { dims, volume, two } = await chunkedInputs(tmp);
  for (const [model, input, channels] of [[same, 'in1.zarr', 1], [valid, 'in2.zarr', 2]] as const) {
    const x = Tensor.fromArray(channels === 1 ? volume : two, [1, channels, ...dims]);
    const memory = (await predictVolume(model, x, { window: [4, 8, 8] })).toArray();
    const n = volume.length;
    // Probabilities, one process.
    const out = path.join(tmp, `${input}.probs.zarr`);
    const r = await predictChunked(model, path.join(tmp, input), out, { window: [4, 8, 8], output: 'probabilities', chunks: [5, 10, 9], zarrVersion: 3, compressor: 'gzip' });
    t.true(fs.existsSync(path.join(out, 'zarr.json')) && !fs.existsSync(path.join(out, '.zarray')), 'every block keeps the chosen Zarr v3 storage');
    t.is(r.blocks, 2 * 2 * 2);
    t.is(r.computed, r.blocks);
    const probs = await readZarr(out);
    t.deepEqual(probs.shape, [model.outChannels, ...dims]);
    t.deepEqual(Buffer.from(probs.data.buffer), Buffer.from(memory.buffer), `${input}: the same floats as in memory`);
    // Labels, in three parts run one after another (array jobs), other chunks.
    const labelsOut = path.join(tmp, `${input}.labels.zarr`);
    for (let i = 0; i < 3; ++i) await predictChunked(model, path.join(tmp, input), labelsOut, { window: [4, 8, 8], chunks: [9, 7, 17], part: { index: i, count: 3 } });
    const labels = await readZarr(labelsOut);
    const argmax = new Float32Array(n);
    for (let v = 0; v < n; ++v) {
      let best = 0;
      for (let c = 1; c < model.outChannels; ++c) if (memory[c * n + v]! > memory[best * n + v]!) best = c;
      argmax[v] = best;
    }
    t.deepEqual([...labels.data], [...argmax], `${input}: labels from three parts`);
    const again = await predictChunked(model, path.join(tmp, input), labelsOut, { window: [4, 8, 8], chunks: [9, 7, 17] });
    t.deepEqual([again.computed, again.skipped], [0, again.blocks], 'resume: every block is done');
    x.dispose();
  }
  await t.throwsAsync(() => predictChunked(same, path.join(tmp, 'in1.zarr'), path.join(tmp, 'in1.zarr.labels.zarr'), { window: [4, 8, 8] }),
    { message: /holds a different job/ });
  await t.throwsAsync(() => predictChunked(valid, path.join(tmp, 'in1.zarr'), path.join(tmp, 'x.zarr'), { window: [4, 8, 8] }),
    { message: /has 1 channel\(s\), the model takes 2/ });
  fs.rmSync(tmp, { recursive: true });
});

/** Window evaluations of the old design, where every block computed every window touching it. */
function windowsTouchingEveryBlock(dims: readonly number[], window: readonly number[], chunks: readonly number[]): number {
  let total = 1;
  for (let a = 0; a < 3; ++a) {
    const starts = windowStarts(dims[a]!, Math.min(window[a]!, dims[a]!), 0.5);
    let n = 0;
    for (let c0 = 0; c0 < dims[a]!; c0 += chunks[a]!) n += starts.filter((s) => s < c0 + chunks[a]! && s + window[a]! > c0).length;
    total *= n;
  }
  return total;
}

test('out-of-core computes each window once, as many as predictVolume, and still equals it byte for byte: chunks off the window grid, uneven edges, 2D and 3D, parts', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-chunked-once-'));
  const { same, valid } = nets();
  const cases = [
    // 3D, chunks smaller than, equal to, off and larger than the window; one block.
    { dims: [11, 23, 19], window: [4, 8, 8], chunkings: [[3, 5, 7], [4, 8, 8], [5, 10, 9], [6, 16, 13], [11, 23, 19]] },
    // 2D: a volume one slice deep.
    { dims: [1, 37, 29], window: [1, 8, 8], chunkings: [[1, 9, 7], [1, 16, 16]] },
  ];
  for (const { dims, window, chunkings } of cases) {
    const n = dims[0]! * dims[1]! * dims[2]!;
    const volume = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7));
    const two = new Float32Array(2 * n);
    two.set(volume);
    two.set(volume.map((v, i) => (i % 5 === 0 ? 0 : v * 0.5 + 1)), n);
    const name = dims.join('x');
    await writeZarr(path.join(tmp, `${name}.1.zarr`), volume, dims, { chunks: [4, 8, 8] });
    await writeZarr(path.join(tmp, `${name}.2.zarr`), two, [2, ...dims], { chunks: [1, 5, 7, 6] });
    for (const [model, channels] of [[same, 1], [valid, 2]] as const) {
      const input = path.join(tmp, `${name}.${channels}.zarr`);
      for (const extra of [{}, { windowBatch: 3, tta: { flips: ['x' as const] } }]) {
        const x = Tensor.fromArray(channels === 1 ? volume : two, [1, channels, ...dims]);
        let inMemory = 0;
        const memory = (await predictVolume(model, x, { window: window as [number, number, number], ...extra, onProgress: (_done, total) => (inMemory = total) })).toArray();
        x.dispose();
        for (const chunks of extra.windowBatch ? [chunkings[0]!] : chunkings) {
          const label = `${name}, ${channels} channel(s), chunks ${chunks.join('x')}${extra.windowBatch ? ', 3 windows per pass, x flips' : ''}`;
          const out = path.join(tmp, `${label.replace(/[^0-9a-z]+/gi, '_')}.zarr`);
          const r = await predictChunked(model, input, out, { window: window as [number, number, number], output: 'probabilities', chunks: chunks as [number, number, number], ...extra });
          t.deepEqual(Buffer.from((await readZarr(out)).data.buffer), Buffer.from(memory.buffer), `${label}: the same floats as in memory`);
          t.is(r.windows, inMemory, `${label}: ${r.windows} windows computed, predictVolume computes ${inMemory}`);
          t.is(readChunkedPlan(out).windows, inMemory);
          t.false(fs.existsSync(path.join(out, '.segvol', 'windows')), `${label}: the shared windows are gone once every block is done`);
          if (r.blocks > 1 && !extra.windowBatch) {
            const before = windowsTouchingEveryBlock(dims, window, chunks);
            t.true(before > inMemory, `${label}: ${before} windows when every block computed all it touches`);
            t.log(`${label}: ${r.blocks} blocks, ${r.windows} windows (every block alone: ${before})`);
          }
        }
      }
    }
  }
  // Array jobs one after another: the second part reads what the first stored; together, each window once.
  const input = path.join(tmp, '11x23x19.1.zarr');
  const out = path.join(tmp, 'parts.zarr');
  const options = { window: [4, 8, 8] as [number, number, number], output: 'probabilities' as const, chunks: [5, 10, 9] as [number, number, number] };
  const first = await predictChunked(same, input, out, { ...options, part: { index: 0, count: 2 } });
  t.true(fs.readdirSync(path.join(out, '.segvol', 'windows')).length > 0, 'the first part leaves the windows it shares with the second');
  const second = await predictChunked(same, input, out, { ...options, part: { index: 1, count: 2 } });
  t.is(first.windows + second.windows, readChunkedPlan(out).windows);
  t.false(fs.existsSync(path.join(out, '.segvol', 'windows')));
  const memory = (await predictVolume(same, Tensor.fromArray(Float32Array.from({ length: 11 * 23 * 19 }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7)), [1, 1, 11, 23, 19]),
    { window: [4, 8, 8] })).toArray();
  t.deepEqual(Buffer.from((await readZarr(out)).data.buffer), Buffer.from(memory.buffer), 'two parts: the same floats as in memory');
  // A stored window cut short (a full disk) is computed again, not read.
  const again = path.join(tmp, 'again.zarr');
  await predictChunked(same, input, again, { ...options, part: { index: 0, count: 2 } });
  const stored = fs.readdirSync(path.join(again, '.segvol', 'windows')).filter((f) => !f.startsWith('.'));
  fs.writeFileSync(path.join(again, '.segvol', 'windows', stored[0]!), Buffer.alloc(8));
  const rest = await predictChunked(same, input, again, { ...options, part: { index: 1, count: 2 } });
  t.true(rest.windows > second.windows, 'the damaged window was computed again');
  t.deepEqual(Buffer.from((await readZarr(again)).data.buffer), Buffer.from(memory.buffer), 'a damaged stored window changes nothing');
  fs.rmSync(tmp, { recursive: true });
});

test('read-only HTTP stores: a Zarr array and an OME-Zarr image served over http read like local ones', async (t) => {
  const server = http.createServer((req, res) => {
    const file = path.join(dir, decodeURIComponent((req.url ?? '/').split('?')[0]!));
    if (!file.startsWith(dir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const remote = await readZarr(`${base}/v3_float32_gzip.zarr`);
    t.deepEqual([...remote.data], [...expected([5, 6, 7], false)]);
    const v2 = await openZarr(`${base}/v2_uint8_zlib.zarr`);
    t.deepEqual([...(await v2.read([4, 6, 8], [1, 1, 1]))], [expected([5, 7, 9], true)[5 * 7 * 9 - 1]!]);
    const image = await readZarr(`${base}/image.ome.zarr`);
    t.deepEqual(image.spacing, [2, 0.5, 0.5]);
    await t.throwsAsync(() => openZarr(`${base}/missing.zarr`), { message: /cannot open the Zarr array/ });
  } finally {
    server.close();
  }
});

test('segvol convert writes Zarr (chunks, compressor, version) from any format and back; inspect reads it chunk slab by slab', (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-zarr-cli-'));
  const data = expected([5, 9, 7], false);
  writeNpy(path.join(tmp, 'v.npy'), { shape: [5, 9, 7], data });
  const run = (...args: string[]) => spawnSync(process.execPath, ['--require=ts-node/register', path.join(__dirname, '..', 'lib', 'cli', 'main.ts'), ...args],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8' });
  const c = run('convert', path.join(tmp, 'v.npy'), path.join(tmp, 'v.zarr'), '--chunks', '2,4,4', '--compressor', 'blosc', '--zarr-version', '3', '--dtype', 'int16');
  t.is(c.status, 0, c.stderr);
  t.true(fs.existsSync(path.join(tmp, 'v.zarr', 'zarr.json')));
  const i = run('inspect', path.join(tmp, 'v.zarr'));
  t.is(i.status, 0, i.stderr);
  t.regex(i.stdout, /shape {4}5 x 9 x 7\n {2}chunks {3}2 x 4 x 4\n {2}dtype {4}int16/);
  t.regex(i.stdout, /range {4}-100 \.\. 150/);
  const back = run('convert', path.join(tmp, 'v.zarr'), path.join(tmp, 'back.npy'));
  t.is(back.status, 0, back.stderr);
  t.deepEqual([...readNpy(path.join(tmp, 'back.npy')).data], [...data]);
  const bad = run('convert', path.join(tmp, 'v.npy'), path.join(tmp, 'v.nii.gz'), '--chunks', '2,2,2');
  t.is(bad.status, 1);
  t.regex(bad.stderr, /--chunks, --compressor and --zarr-version are for Zarr output/);
  fs.rmSync(tmp, { recursive: true });
});

test('out-of-core with every inference option (test-time flips, windows per pass, overlap per axis) equals predictVolume byte for byte; the plan records them', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-chunked-options-'));
  const { same, valid } = nets();
  const { dims, volume, two } = await chunkedInputs(tmp);
  const options = [
    { tta: 'mirror' as const, windowBatch: 3, overlap: [0.25, 0.5, 0.5] as [number, number, number] },
    { tta: { flips: ['x' as const, 'y' as const] }, windowBatch: 4, overlap: [0, 0.5, 0.75] as [number, number, number] },
  ];
  for (const [model, input, channels] of [[same, 'in1.zarr', 1], [valid, 'in2.zarr', 2]] as const) {
    const x = Tensor.fromArray(channels === 1 ? volume : two, [1, channels, ...dims]);
    for (const [k, o] of options.entries()) {
      const memory = (await predictVolume(model, x, { window: [4, 8, 8], ...o })).toArray();
      const out = path.join(tmp, `${input}.${k}.zarr`);
      await predictChunked(model, path.join(tmp, input), out, { window: [4, 8, 8], output: 'probabilities', chunks: [5, 10, 9], ...o });
      t.deepEqual(Buffer.from((await readZarr(out)).data.buffer), Buffer.from(memory.buffer), `${input}, options ${k}: the same floats as in memory`);
      const plan = readChunkedPlan(out);
      t.deepEqual([plan.overlap, plan.tta, plan.windowBatch, plan.nonFinite], [o.overlap, k === 0 ? ['z', 'y', 'x'] : ['y', 'x'], o.windowBatch, 'error']);
      await t.throwsAsync(() => predictChunked(model, path.join(tmp, input), out, { window: [4, 8, 8], output: 'probabilities', chunks: [5, 10, 9], ...o, windowBatch: 1 }),
        { message: /holds a different job/ }, 'another windowBatch is another job');
    }
    x.dispose();
  }
  fs.rmSync(tmp, { recursive: true });
});

test('non-finite inputs out of core: refused by the statistics pass (nothing written), zeroed byte-identically to predictVolume, and a block whose input changed refuses; the CLI exits 1 without output', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-chunked-nan-'));
  const { same } = nets();
  const dims = [9, 20, 17];
  const plane = 20 * 17;
  const volume = Float32Array.from({ length: 9 * plane }, (_, i) => Math.sin(i * 0.37) * 3 + (i % 7));
  const bad = Float32Array.from(volume);
  for (let i = 0; i < 100; ++i) bad[3 * plane + i] = NaN;
  await writeZarr(path.join(tmp, 'bad.zarr'), bad, dims, { chunks: [4, 8, 8] });
  const refused = await t.throwsAsync(() => predictChunked(same, path.join(tmp, 'bad.zarr'), path.join(tmp, 'out.zarr'), { window: [4, 8, 8] })) as Error & { code?: string };
  t.is(refused.code, 'ERR_NON_FINITE');
  t.regex(refused.message, /chunked prediction: the input .*bad\.zarr holds 100 non-finite voxels \(100 NaN, 0 infinite\) in slice z 3; the first at \(c, z, y, x\) \(0, 3, 0, 0\), \(0, 3, 0, 1\)/);
  t.false(fs.existsSync(path.join(tmp, 'out.zarr')), 'no plan, no metadata, no chunk');
  // 'zero': the statistics skip them; the same bytes as in memory.
  const memory = (await predictVolume(same, Tensor.fromArray(bad, [1, 1, ...dims]), { window: [4, 8, 8], nonFinite: 'zero' })).toArray();
  await predictChunked(same, path.join(tmp, 'bad.zarr'), path.join(tmp, 'zero.zarr'), { window: [4, 8, 8], output: 'probabilities', chunks: [5, 10, 9], nonFinite: 'zero' });
  t.deepEqual(Buffer.from((await readZarr(path.join(tmp, 'zero.zarr'))).data.buffer), Buffer.from(memory.buffer));
  t.is(readChunkedPlan(path.join(tmp, 'zero.zarr')).nonFiniteVoxels, 100);
  // A block re-checks what it reads: the input changed after planning.
  await writeZarr(path.join(tmp, 'good.zarr'), volume, dims, { chunks: [4, 8, 8] });
  const plan = await planChunkedPrediction(same, path.join(tmp, 'good.zarr'), path.join(tmp, 'later.zarr'), { window: [4, 8, 8], chunks: [9, 20, 17] });
  await writeZarr(path.join(tmp, 'good.zarr'), bad, dims, { chunks: [4, 8, 8] });
  const block = await t.throwsAsync(() => predictBlock(same, path.join(tmp, 'later.zarr'), plan, 0)) as Error & { code?: string };
  t.is(block.code, 'ERR_NON_FINITE');
  t.regex(block.message, /block 0: the input .*good\.zarr \(changed since the plan was made\?\) holds \d+ non-finite voxels .* in slice z 3/);
  t.false(blockDone(path.join(tmp, 'later.zarr'), 0));
  t.false(fs.existsSync(path.join(tmp, 'later.zarr', '0.0.0')), 'no chunk written');
  // The command line: refused with the count and slices, exit 1, nothing written; --non-finite zero predicts.
  const model = path.join(tmp, 'model.safetensors');
  same.save(model);
  writeNpy(path.join(tmp, 'bad.npy'), { shape: dims, data: bad });
  const run = (...args: string[]) => spawnSync(process.execPath, ['--require=ts-node/register', path.join(__dirname, '..', 'lib', 'cli', 'main.ts'), ...args],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8' });
  for (const [input, out] of [['bad.npy', 'p.npy'], ['bad.npy', 'p.zarr'], ['bad.zarr', 'q.zarr']] as const) {
    const r = run('predict', '--model', model, '--in', path.join(tmp, input), '--out', path.join(tmp, out), '--window', '4,8,8');
    t.is(r.status, 1, `${input} -> ${out}`);
    t.regex(r.stderr, /holds 100 non-finite voxels \(100 NaN, 0 infinite\) in slice z 3; the first at \(c, z, y, x\) \(0, 3, 0, 0\).*--non-finite zero/);
    t.false(fs.existsSync(path.join(tmp, out)), `${out}: nothing written`);
  }
  const zeroed = run('predict', '--model', model, '--in', path.join(tmp, 'bad.npy'), '--out', path.join(tmp, 'z.npy'), '--window', '4,8,8', '--non-finite', 'zero',
    '--tta', 'x,y', '--window-batch', '2', '--overlap', '0,0.5,0.5');
  t.is(zeroed.status, 0, zeroed.stderr);
  const flags = run('predict', '--model', model, '--in', path.join(tmp, 'bad.npy'), '--out', path.join(tmp, 'y.npy'), '--tta', 'x,w');
  t.is(flags.status, 1);
  t.regex(flags.stderr, /--tta.*expected none, mirror, or distinct axes among z,y,x/);
  fs.rmSync(tmp, { recursive: true });
});
