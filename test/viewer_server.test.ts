// The viewer's server without a browser: what it refuses, which chunks a slice reads,
// every format it serves, and the log follower behind the Training tab.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeVolume, writeZarr, ZarrWriter } from '../lib';
import { syntheticEm } from '../lib/data/synthetic';
import { writeOmeGroup } from '../lib/io/ome_zarr';
import { viewerOptions } from '../lib/cli/commands/view';
import { startViewer, type Viewer } from '../lib/cli/viewer/server';
import { LogTail } from '../lib/training/log';
import { blockValue, root, segvolArgs, writeBlockStore } from './viewer_fixtures';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-viewer-server-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A raw request (Node's fetch would normalise the "..": the server must see them as sent). */
function request(port: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const slice = async (viewer: Viewer, query: string) => {
  const r = await request(viewer.port, `/api/slice?${query}`);
  if (r.status !== 200) throw new Error(r.body.toString());
  const header = JSON.parse(String(r.headers['x-segvol-slice'])) as { rows: number; cols: number; dtype: 'float32' | 'float64' };
  const bytes = r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.length);
  return { ...header, data: header.dtype === 'float64' ? new Float64Array(bytes) : new Float32Array(bytes) };
};

// 512^3 uint8 in 64^3 chunks; chunk (cz, cy, cx) holds one value, so a voxel tells its chunk.
const bigStore = path.join(dir, 'big.zarr');
test.before(() => writeBlockStore(bigStore));

test('paths outside the given files, foreign hosts and writes are refused, and no file text comes back', async (t) => {
  const image = path.join(dir, 'small.npy');
  writeVolume(image, { data: new Float32Array(2 * 3 * 4).fill(7), shape: [2, 3, 4], dtype: 'float32' });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: image }] });
  t.teardown(() => viewer.close());
  const secret = fs.readFileSync(path.join(root, 'package.json'), 'utf8').slice(0, 40);
  for (const target of ['/../package.json', '/assets/../../../package.json', '/assets/%2e%2e%2fserver.ts', '/assets/..%2f..%2flayers.ts', '/etc/passwd',
    '/assets/server.ts', '/lib/cli/viewer/server.ts', '/api/slice?layer=../../etc/passwd&axis=0&index=0', `/api/slice?layer=${encodeURIComponent(image)}&axis=0&index=0`]) {
    const r = await request(viewer.port, target);
    t.true(r.status === 403 || r.status === 400, `${target}: status ${r.status}`);
    const body = JSON.parse(r.body.toString()) as { code: string; message: string };
    t.true(['ERR_ACCESS', 'ERR_ARGUMENT'].includes(body.code), `${target}: ${body.code}`);
    t.false(r.body.toString().includes(secret), `${target} returned file text`);
  }
  const foreign = await request(viewer.port, '/api/info', { host: 'evil.example' });
  t.is(foreign.status, 403, 'a page on another origin that resolves to 127.0.0.1 (DNS rebinding) is refused');
  t.like(JSON.parse(foreign.body.toString()), { code: 'ERR_ACCESS' });
  t.regex(foreign.body.toString(), /Host \\"evil.example\\" is not this viewer/);
  const post = await new Promise<number>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: viewer.port, path: '/api/info', method: 'POST', headers: { host: `127.0.0.1:${viewer.port}` } }, (res) => resolve(res.statusCode!));
    req.end('x');
  });
  t.is(post, 403);
  const page = await request(viewer.port, '/');
  t.is(page.status, 200);
  t.regex(String(page.headers['content-security-policy']), /default-src 'self'/);
  t.is(page.headers['access-control-allow-origin'], undefined, 'no CORS: other origins cannot read the API');
});

test('bad slice queries are refused with what was expected, and the server goes on', async (t) => {
  const image = path.join(dir, 'query.npy');
  writeVolume(image, { data: Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i), shape: [2, 3, 4], dtype: 'float32' });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: image }] });
  t.teardown(() => viewer.close());
  for (const [query, message] of [['axis=3&index=0', /axis must be an integer in 0..2/], ['axis=0&index=2', /index must be an integer in 0..1/],
    ['axis=0&index=0&r0=1&r1=1', /r1 must be an integer in 2..3/], ['axis=0&index=0&level=1', /level must be an integer in 0..0/], ['axis=0&index=x', /index/]] as const) {
    const r = await request(viewer.port, `/api/slice?layer=image&${query}`);
    t.is(r.status, 400, query);
    t.regex(r.body.toString(), message);
  }
  const good = await slice(viewer, 'layer=image&axis=0&index=1&r0=1&r1=3&c0=2&c1=4');
  t.deepEqual([...good.data], [18, 19, 22, 23]);
});

test('a 512^3 Zarr: opening reads no chunk, a plane reads exactly the chunks it crosses, a region fewer', async (t) => {
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: bigStore }] });
  t.teardown(() => viewer.close());
  const stats = async () => (JSON.parse((await request(viewer.port, '/api/stats?keys=1')).body.toString()) as { layers: { image: { chunkReads: number; keys: string[] } } }).layers.image;
  const info = JSON.parse((await request(viewer.port, '/api/info')).body.toString()) as { shape: number[]; layers: Array<{ chunks: number[] }> };
  t.deepEqual(info.shape, [512, 512, 512]);
  t.deepEqual(info.layers[0]!.chunks, [64, 64, 64]);
  t.is((await stats()).chunkReads, 0, 'metadata only');

  const plane = await slice(viewer, 'layer=image&axis=0&index=200');
  t.is(plane.data.length, 512 * 512);
  t.is(plane.data[0], blockValue(3, 0, 0));
  t.is(plane.data[511 * 512 + 511], blockValue(3, 7, 7));
  const planeKeys = (await stats()).keys;
  t.is(planeKeys.length, 64);
  t.true(planeKeys.every((k) => /^3\.[0-7]\.[0-7]$/.test(k)), planeKeys.slice(0, 4).join(' '));

  const region = await slice(viewer, 'layer=image&axis=1&index=130&r0=60&r1=70&c0=0&c1=64');
  t.deepEqual([region.rows, region.cols], [10, 64]);
  t.is(region.data[0], blockValue(0, 2, 0));
  t.is(region.data[9 * 64], blockValue(1, 2, 0));
  const after = await stats();
  t.deepEqual(after.keys.filter((k) => !planeKeys.includes(k)), ['0.2.0', '1.2.0'], 'the coronal region at y=130 crosses chunks z 0-1, y 2, x 0');

  // The same plane again: its chunks come from the viewer's memory, not the store.
  const readsBefore = after.chunkReads;
  const again = await slice(viewer, 'layer=image&axis=0&index=201');
  t.is(again.data[0], blockValue(3, 0, 0));
  const cached = JSON.parse((await request(viewer.port, '/api/stats')).body.toString()) as { layers: { image: { chunkReads: number } }; cache: { hits: number; bytes: number } };
  t.is(cached.layers.image.chunkReads, readsBefore, 'no store read');
  t.true(cached.cache.hits >= 64 && cached.cache.bytes > 0, JSON.stringify(cached.cache));
  // Without the cache every read goes to the store.
  const uncached = await startViewer({ layers: [{ id: 'image', role: 'image', location: bigStore }], cacheMiB: 0 });
  t.teardown(() => uncached.close());
  await slice(uncached, 'layer=image&axis=0&index=200');
  await slice(uncached, 'layer=image&axis=0&index=201');
  t.is((JSON.parse((await request(uncached.port, '/api/stats')).body.toString()) as { layers: { image: { chunkReads: number } } }).layers.image.chunkReads, 128);
});

test('every format is served plane by plane, on all three axes, with label ids exact', async (t) => {
  const shape = [5, 6, 7];
  const data = Float32Array.from({ length: 5 * 6 * 7 }, (_, i) => (i * 37) % 251);
  const files = ['v.npy', 'v.nii.gz', 'v.mha', 'v.tif'].map((f) => path.join(dir, f));
  for (const f of files) writeVolume(f, { data, shape, dtype: 'float32' });
  await writeZarr(path.join(dir, 'v2.zarr'), data, shape, { chunks: [2, 4, 3], dtype: 'uint8', compressor: 'zlib' });
  await writeZarr(path.join(dir, 'v3.zarr'), data, shape, { chunks: [3, 3, 3], dtype: 'float32', compressor: 'blosc', zarrVersion: 3 });
  const ids = Float32Array.from({ length: 5 * 6 * 7 }, (_, i) => (i % 3 === 0 ? 16_777_215 - i : i));
  writeVolume(path.join(dir, 'ids.npy'), { data: ids, shape, dtype: 'float32' });
  const locations = [...files, path.join(dir, 'v2.zarr'), path.join(dir, 'v3.zarr')];
  const viewer = await startViewer({
    layers: [...locations.map((location, i) => ({ id: `image${i}`, role: 'image' as const, location })), { id: 'labels', role: 'labels', location: path.join(dir, 'ids.npy') }],
  });
  t.teardown(() => viewer.close());
  const at = (a: Float32Array, z: number, y: number, x: number) => a[(z * 6 + y) * 7 + x]!;
  const planes: Array<[number, number, (a: Float32Array, r: number, c: number) => number]> = [
    [0, 3, (a, r, c) => at(a, 3, r, c)], [1, 2, (a, r, c) => at(a, r, 2, c)], [2, 4, (a, r, c) => at(a, r, c, 4)],
  ];
  for (const [i, location] of locations.entries()) {
    for (const [axis, index, expected] of planes) {
      const s = await slice(viewer, `layer=image${i}&axis=${axis}&index=${index}`);
      const want = Float32Array.from({ length: s.rows * s.cols }, (_, k) => expected(data, Math.floor(k / s.cols), k % s.cols));
      t.deepEqual([...s.data], [...want], `${path.basename(location)} axis ${axis}`);
    }
  }
  const labels = await slice(viewer, 'layer=labels&axis=0&index=4');
  t.deepEqual([...labels.data], Array.from({ length: 42 }, (_, k) => at(ids, 4, Math.floor(k / 7), k % 7)));
  t.true(labels.data.includes(16_777_215 - 168), 'ids up to 2^24 come back exact');
});

test('an OME-Zarr pyramid serves each level, and a coarse level reads only its own chunks', async (t) => {
  const ome = path.join(dir, 'pyr.ome.zarr');
  const levels = [{ path: '0', shape: [16, 32, 32] }, { path: '1', shape: [8, 16, 16] }, { path: '2', shape: [4, 8, 8] }] as const;
  writeOmeGroup(ome, {
    version: '0.4', name: 'pyr', spacing: [1, 1, 1], channels: false, downsampling: 'mean', label: false,
    levels: levels.map((l, k) => ({ path: l.path, shape: [...l.shape], factor: [2 ** k, 2 ** k, 2 ** k] })),
  });
  // Each level holds its own value, so a slice tells which level served it.
  for (const [k, l] of levels.entries()) await writeZarr(path.join(ome, l.path), new Float32Array(l.shape[0] * l.shape[1] * l.shape[2]).fill(10 * (k + 1)), l.shape, { chunks: [8, 8, 8] });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: ome }] });
  t.teardown(() => viewer.close());
  const info = JSON.parse((await request(viewer.port, '/api/info')).body.toString()) as { layers: Array<{ levels: Array<{ shape: number[]; factor: number[] }> }> };
  const got = info.layers[0]!.levels;
  t.deepEqual(got.map((l) => l.shape), levels.map((l) => [...l.shape]));
  t.deepEqual(got[2]!.factor, [4, 4, 4]);
  const coarse = await slice(viewer, 'layer=image&axis=0&index=9&level=2');
  t.deepEqual([coarse.rows, coarse.cols], [8, 8]);
  t.true(coarse.data.every((v) => v === 30));
  const keys = (JSON.parse((await request(viewer.port, '/api/stats?keys=1')).body.toString()) as { layers: { image: { keys: string[] } } }).layers.image.keys;
  t.deepEqual(keys, ['2/0.0.0'], 'plane 9 of level 0 is plane 2 of level 2: one chunk');
});

test('LogTail: complete lines only, a truncated or replaced log starts over, a missing one is empty', (t) => {
  const file = path.join(dir, 'tail.log.jsonl');
  const tail = new LogTail(file);
  t.deepEqual(tail.poll(), { entries: [], reset: false, errors: [] });
  fs.writeFileSync(file, '{"step":1,"loss":2}\n{"step":2,"lo');
  t.deepEqual(tail.poll().entries, [{ step: 1, loss: 2 }]);
  fs.appendFileSync(file, 'ss":1.5}\n');
  t.deepEqual(tail.poll().entries, [{ step: 2, loss: 1.5 }]);
  t.deepEqual(tail.poll(), { entries: [], reset: false, errors: [] });
  fs.writeFileSync(file, '{"step":1,"loss":9}\n');
  t.deepEqual(tail.poll(), { entries: [{ step: 1, loss: 9 }], reset: true, errors: [] });
  fs.appendFileSync(file, 'not json\n');
  t.like(tail.poll(), { entries: [], errors: [`${file} line 2 is not JSON; expected a training log written by segvol train`] });
  fs.rmSync(file);
  t.deepEqual(tail.poll(), { entries: [], reset: true, errors: [] });
});

test('segvol view refuses nothing to show, and warns when it listens beyond this machine', async (t) => {
  const cli = (args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const child = spawn(process.execPath, segvolArgs('view', ...args), { cwd: root });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/http:\/\//.test(out)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
  const none = await cli([]);
  t.not(none.code, 0);
  t.regex(none.err, /give a volume to show/);
  const image = path.join(dir, 'host.npy');
  writeVolume(image, { data: new Float32Array(8), shape: [2, 2, 2], dtype: 'float32' });
  const open = await cli([image, '--host', '0.0.0.0']);
  t.regex(open.err, /warning: listening on 0\.0\.0\.0: anyone who can reach this address can read the volumes given/);
  t.regex(open.out, /segvol view: http:\/\/0\.0\.0\.0:\d+\//);
});

test('segvol train --view serves the run\'s log while it trains, and stays until Ctrl-C', async (t) => {
  const run = path.join(dir, 'train-view');
  fs.mkdirSync(run);
  const em = syntheticEm({ depth: 6, height: 20, width: 20, seed: 3 });
  writeVolume(path.join(run, 'volume.npy'), { data: em.image, shape: em.shape, dtype: 'float32' });
  writeVolume(path.join(run, 'labels.npy'), { data: em.labels, shape: em.shape, dtype: 'float32' });
  fs.writeFileSync(path.join(run, 'train.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' }, stages: [{ size: [4, 8, 8], epochs: 4 }],
    optimizer: { kind: 'adam' }, schedule: { kind: 'constant', lr: 0.01 }, checkpoint: { path: 'model.safetensors' },
    validation: { volume: 'volume.npy', labels: 'labels.npy', every: 2, windows: 2 },
  }));
  const child = spawn(process.execPath, segvolArgs('train', '--config', path.join(run, 'train.json'), '--view'), { cwd: root });
  t.teardown(() => { child.kill('SIGKILL'); });
  let out = '', err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const done = new Promise<string>((resolve) => child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (/the viewer stays at/.test(out)) resolve(out);
  }));
  await Promise.race([done, exited.then((code) => { throw new Error(`segvol train exited with ${code} before training finished: ${err}`); })]);
  const port = Number(/segvol view: http:\/\/127\.0\.0\.1:(\d+)\//.exec(out)![1]);
  const summary = JSON.parse((await request(port, '/api/log')).body.toString()) as { steps: number; validations: number; sliceStep: number | null };
  t.is(summary.steps, 4);
  t.is(summary.validations, 2);
  t.is(summary.sliceStep, 4, 'the latest validation slice');
  const picture = await request(port, '/api/log/validation.png');
  t.is(picture.status, 200);
  t.is(picture.body.subarray(1, 4).toString(), 'PNG');
  child.kill('SIGINT');
  t.is(await exited, 0, err);
});

test('the page ships in the npm package, loads nothing from the network, and is documented with its picture', (t) => {
  const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  t.is(pack.status, 0, pack.stderr);
  const files = (JSON.parse(pack.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  const assets = path.join(root, 'lib', 'cli', 'viewer', 'assets');
  const pageFiles = fs.readdirSync(assets).filter((f) => /\.(html|css|js)$/.test(f));
  t.true(pageFiles.includes('index.html') && pageFiles.includes('main.js'));
  for (const f of pageFiles) {
    t.true(files.includes(`lib/cli/viewer/assets/${f}`), `${f} is in the package`);
    // No CDN, no fonts or scripts from elsewhere: the page works offline.
    const text = fs.readFileSync(path.join(assets, f), 'utf8').replace(/^\s*\/\/.*$/gm, '');
    t.notRegex(text, /https?:\/\//, `${f} names no remote URL`);
  }
  const doc = fs.readFileSync(path.join(root, 'docs', 'viewer.md'), 'utf8');
  t.regex(doc, /!\[[^\]]*\]\(images\/viewer\.png\)/);
  const png = fs.readFileSync(path.join(root, 'docs', 'images', 'viewer.png'));
  t.is(png.subarray(1, 4).toString(), 'PNG');
  t.true(png.length < 150_000, `${png.length} bytes`);
  t.true(png.readUInt32BE(16) >= 800, 'readable width');
  t.regex(fs.readFileSync(path.join(root, 'README.md'), 'utf8'), /segvol -- view segvol-demo\/input\.npy/);
});

/** A one-chunk Zarr v2 array of integer ids written by hand (segvol writes no 64-bit arrays). */
function rawIdZarr(dir: string, dtype: '<u4' | '<u8', shape: number[], ids: bigint[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, '.zarray'), JSON.stringify({ zarr_format: 2, shape, chunks: shape, dtype, compressor: null, fill_value: 0, order: 'C', filters: null }));
  const bytes = Buffer.alloc(ids.length * (dtype === '<u8' ? 8 : 4));
  ids.forEach((v, i) => (dtype === '<u8' ? bytes.writeBigUInt64LE(v, i * 8) : bytes.writeUInt32LE(Number(v), i * 4)));
  fs.writeFileSync(path.join(dir, '0.0.0'), bytes);
}

test('object ids beyond float32 (uint32 above 2^24, uint64) come back exact in slices and the readout', async (t) => {
  const shape = [2, 3, 4];
  const big32 = Array.from({ length: 24 }, (_, i) => BigInt(16_777_217 + 2 * i));  // odd numbers above 2^24: float32 rounds each
  const big64 = Array.from({ length: 24 }, (_, i) => (1n << 40n) + BigInt(i));
  rawIdZarr(path.join(dir, 'ids32.zarr'), '<u4', shape, big32);
  rawIdZarr(path.join(dir, 'ids64.zarr'), '<u8', shape, big64);
  const image = path.join(dir, 'ids-image.npy');
  writeVolume(image, { data: new Float32Array(24), shape, dtype: 'float32' });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: image }, { id: 'labels', role: 'labels', location: path.join(dir, 'ids32.zarr') },
    { id: 'pred', role: 'pred', location: path.join(dir, 'ids64.zarr') }] });
  t.teardown(() => viewer.close());
  for (const [layer, ids] of [['labels', big32], ['pred', big64]] as const) {
    const r = await request(viewer.port, `/api/slice?layer=${layer}&axis=0&index=1`);
    t.is(r.status, 200, r.body.toString());
    t.is(JSON.parse(String(r.headers['x-segvol-slice'])).dtype, 'float64');
    const got = new Float64Array(r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.length));
    t.deepEqual([...got], ids.slice(12).map(Number), layer);
  }
  const voxel = JSON.parse((await request(viewer.port, '/api/voxel?z=1&y=2&x=3')).body.toString()) as { values: Record<string, number[]> };
  t.deepEqual(voxel.values.labels, [Number(big32[23])]);
  t.deepEqual(voxel.values.pred, [Number(big64[23])]);
  // The image layer of a uint64 store reads through float32 without failing.
  const asImage = await startViewer({ layers: [{ id: 'image', role: 'image', location: path.join(dir, 'ids64.zarr') }] });
  t.teardown(() => asImage.close());
  t.is((await request(asImage.port, '/api/slice?layer=image&axis=0&index=0')).status, 200);
});

test('Host names, methods, other sites, sizes and coordinates: what is served and what is refused', async (t) => {
  const image = path.join(dir, 'hosts.npy');
  writeVolume(image, { data: Float32Array.from({ length: 4 * 64 * 64 }, (_, i) => i), shape: [4, 64, 64], dtype: 'float32' });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: image }] });
  t.teardown(() => viewer.close());
  const p = viewer.port;
  for (const [host, status] of [[`127.0.0.1:${p}`, 200], [`LOCALHOST:${p}`, 200], [`localhost:${p}`, 200], [`[::1]:${p}`, 200], ['127.0.0.1', 403], ['127.0.0.1:1', 403],
    [`localhost.evil.example:${p}`, 403], [`127.0.0.1.nip.io:${p}`, 403]] as const) {
    t.is((await request(p, '/api/info', { host })).status, status, `Host ${JSON.stringify(host)}`);
  }
  // No Host header at all (HTTP/1.0 allows it): refused.
  const bare = await new Promise<string>((resolve) => {
    const socket = net.connect(p, '127.0.0.1', () => socket.end('GET /api/info HTTP/1.0\r\n\r\n'));
    let text = '';
    socket.on('data', (d: Buffer) => { text += d.toString(); });
    socket.on('close', () => resolve(text));
  });
  t.regex(bare, /^HTTP\/1\.[01] 403/);
  t.is((await request(p, '/api/info', { 'sec-fetch-site': 'cross-site' })).status, 403, 'a request sent by another site');
  t.is((await request(p, '/api/info', { 'sec-fetch-site': 'same-origin' })).status, 200);
  const head = await new Promise<{ status: number; length: number }>((resolve) => {
    http.request({ host: '127.0.0.1', port: p, path: '/api/info', method: 'HEAD', headers: { host: `127.0.0.1:${p}` } }, (res) => {
      let length = 0;
      res.on('data', (d: Buffer) => { length += d.length; });
      res.on('end', () => resolve({ status: res.statusCode!, length }));
    }).end();
  });
  t.deepEqual(head, { status: 200, length: 0 });
  const page = await request(p, '/');
  t.regex(String(page.headers['content-security-policy']), /frame-ancestors 'none'/);
  t.is(page.headers['cross-origin-resource-policy'], 'same-origin');
  t.is((await request(p, '/favicon.ico')).status, 204);
  // Every 4th row and column of the plane: a zoomed-out view of a volume without a pyramid.
  const stepped = await slice(viewer, 'layer=image&axis=0&index=2&step=4');
  t.deepEqual([stepped.rows, stepped.cols], [16, 16]);
  t.is(stepped.data[1 * 16 + 2], 2 * 4096 + 4 * 64 + 8);
  for (const [query, message] of [['x=1&y=1', /z must be an integer in 0\.\.3, received null/], ['z=&y=1&x=1', /z must be an integer/], ['z=0&y=64&x=0', /y must be an integer in 0\.\.63/]] as const) {
    const r = await request(p, `/api/voxel?${query}`);
    t.is(r.status, 400, query);
    t.regex(r.body.toString(), message);
  }
  const logOnly = await startViewer({ layers: [], log: path.join(dir, 'none.log.jsonl') });
  t.teardown(() => logOnly.close());
  t.is((await request(logOnly.port, '/api/voxel?z=0&y=0&x=0')).status, 404, 'a log-only viewer has no voxels: ERR_UNAVAILABLE');
});

test('a slice is refused above 4096 x 4096 values, naming the ways to ask for less', async (t) => {
  const store = path.join(dir, 'wide.zarr');
  ZarrWriter.create(store, { shape: [1, 5000, 5000], chunks: [1, 1000, 1000], dtype: 'uint8', compressor: 'zlib' });
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: store }] });
  t.teardown(() => viewer.close());
  const r = await request(viewer.port, '/api/slice?layer=image&axis=0&index=0');
  t.is(r.status, 400);
  t.regex(r.body.toString(), /a slice of 5000 x 5000 values.*ask a smaller region, a coarser level or a larger step/);
  t.is((await slice(viewer, 'layer=image&axis=0&index=0&step=2')).rows, 2500);
});

test('LogTail: a replaced file, a character split between reads, and torn or foreign lines that lose nothing around them', (t) => {
  const file = path.join(dir, 'tail2.log.jsonl');
  fs.writeFileSync(file, '{"step":1,"loss":1}\n');
  const tail = new LogTail(file);
  t.is(tail.poll().entries.length, 1);
  // Replaced by rename (a new inode) with a file as long: only the identity tells.
  fs.writeFileSync(`${file}.new`, '{"step":7,"loss":1}\n');
  fs.renameSync(`${file}.new`, file);
  t.like(tail.poll(), { reset: true, entries: [{ step: 7, loss: 1 }] });
  // "é" is two bytes: the first arrives in one read, the second in the next.
  const line = Buffer.from('{"step":8,"loss":2,"phaseName":"é"}\n');
  const cut = line.indexOf(0xc3) + 1;
  fs.appendFileSync(file, line.subarray(0, cut));
  t.deepEqual(tail.poll().entries, []);
  fs.appendFileSync(file, line.subarray(cut));
  t.deepEqual(tail.poll().entries, [{ step: 8, loss: 2, phaseName: 'é' }]);
  fs.appendFileSync(file, '{"step":9,"loss":3}\n{"step":10,"lo\nnull\n[1]\n{"step":11,"loss":4}\n');
  const r = tail.poll();
  t.deepEqual(r.entries.map((e) => e.step), [9, 11]);
  t.is(r.errors.length, 3);
  t.regex(r.errors[0]!, /line 4 is not JSON/);
  t.regex(r.errors[1]!, /line 5 is not an object/);
  fs.appendFileSync(file, 'x\n');
  t.regex(tail.poll().errors[0]!, /line 8 is not JSON/, 'line numbers go on after skipped lines');
});

test('segvol train --view ends with the run when training fails, instead of serving on', async (t) => {
  const run = path.join(dir, 'train-view-fails');
  fs.mkdirSync(run);
  // An earlier run's model file: training refuses to replace it without --overwrite, after the viewer started.
  fs.writeFileSync(path.join(run, 'model.safetensors'), 'an earlier run');
  const em = syntheticEm({ depth: 4, height: 12, width: 12, seed: 3 });
  writeVolume(path.join(run, 'volume.npy'), { data: em.image, shape: em.shape, dtype: 'float32' });
  writeVolume(path.join(run, 'labels.npy'), { data: em.labels, shape: em.shape, dtype: 'float32' });
  fs.writeFileSync(path.join(run, 'train.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [3], fc: [], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' }, stages: [{ size: [4, 8, 8], epochs: 1 }], checkpoint: { path: 'model.safetensors' },
  }));
  const r = await new Promise<{ code: number | null; err: string; out: string }>((resolve) => {
    const child = spawn(process.execPath, segvolArgs('train', '--config', path.join(run, 'train.json'), '--view'), { cwd: root });
    let err = '', out = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => { clearTimeout(guard); resolve({ code, err, out }); });
  });
  t.regex(r.out, /segvol view: http:\/\//, 'the viewer had started');
  t.is(r.code, 1, `exits by itself with the error: ${r.err}`);
  t.regex(r.err, /model\.safetensors exists/);
});

test('segvol convert --ome-levels writes a pyramid (means of 2 x 2 x 2 voxels, or the most frequent id) that the viewer serves level by level', async (t) => {
  const source = path.join(dir, 'pyramid-source.npy');
  const data = Float32Array.from({ length: 16 * 32 * 32 }, (_, i) => i % 7);
  writeVolume(source, { data, shape: [16, 32, 32], dtype: 'float32' });
  const convert = (out: string, ...extra: string[]) => spawnSync(process.execPath, segvolArgs('convert', source, out,
    '--chunks', '8,8,8', ...extra), { cwd: root, encoding: 'utf8' });
  const ome = path.join(dir, 'converted.ome.zarr');
  const r = convert(ome, '--ome-levels', '3');
  t.is(r.status, 0, r.stderr);
  const viewer = await startViewer({ layers: [{ id: 'image', role: 'image', location: ome }] });
  t.teardown(() => viewer.close());
  const info = JSON.parse((await request(viewer.port, '/api/info')).body.toString()) as { layers: Array<{ levels: Array<{ shape: number[]; factor: number[] }> }> };
  t.deepEqual(info.layers[0]!.levels.map((l) => l.shape), [[16, 32, 32], [8, 16, 16], [4, 8, 8]]);
  t.deepEqual(info.layers[0]!.levels.map((l) => l.factor), [[1, 1, 1], [2, 2, 2], [4, 4, 4]]);
  const coarse = await slice(viewer, 'layer=image&axis=0&index=0&level=1&r0=0&r1=1&c0=0&c1=1');
  let sum = 0;
  for (let z = 0; z < 2; ++z) for (let y = 0; y < 2; ++y) for (let x = 0; x < 2; ++x) sum += data[(z * 32 + y) * 32 + x]!;
  t.is(coarse.data[0], sum / 8);
  const modes = convert(path.join(dir, 'modes.ome.zarr'), '--ome-levels', '2', '--downsample', 'mode', '--dtype', 'uint8');
  t.is(modes.status, 0, modes.stderr);
  const refused = convert(path.join(dir, 'plain.zarr'), '--ome-levels', '2');
  t.not(refused.status, 0);
  t.regex(refused.stderr, /--ome-levels and --downsample are for OME-Zarr output/);
});

test('--spacing draws files without a voxel size (.npy) with one; a malformed one is refused', async (t) => {
  const image = path.join(dir, 'spacing.npy');
  writeVolume(image, { data: new Float32Array(2 * 3 * 4), shape: [2, 3, 4], dtype: 'float32' });
  const base = { host: '127.0.0.1', port: 0 };
  const viewer = await startViewer(viewerOptions([image], { ...base, spacing: [4, 1, 1] }));
  t.teardown(() => viewer.close());
  const info = JSON.parse((await request(viewer.port, '/api/info')).body.toString()) as { layers: Array<{ spacing: number[] | null }> };
  t.deepEqual(info.layers[0]!.spacing, [4, 1, 1]);
  t.throws(() => viewerOptions([image], { ...base, spacing: [4, 1] }), { message: /--spacing: expected three positive numbers z,y,x, received 4,1/ });
  t.throws(() => viewerOptions([image], { ...base, spacing: [4, 0, 1] }), { message: /--spacing/ });
});

test('a port in use is refused with ERR_ARGUMENT naming the way out', async (t) => {
  const log = path.join(dir, 'busy.log.jsonl');
  const first = await startViewer({ layers: [], log });
  t.teardown(() => first.close());
  const error = await t.throwsAsync(startViewer({ layers: [], log, port: first.port }));
  t.is((error as { code?: string }).code, 'ERR_ARGUMENT');
  t.regex(error!.message, /cannot listen on 127\.0\.0\.1:\d+: .*give another --port \(0 picks a free one\)/);
});
