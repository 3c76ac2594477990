// Block-wise inference over worker processes through BullMQ on a Redis started here:
// three workers give the same bytes as one process; a worker killed mid-block (SIGKILL)
// loses its block to another after the lock expires, and the output is still identical;
// array jobs (--block i/n) and --resume from the command line.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { layers, predictChunked, sequential, writeZarr } from '../lib';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'lib', 'cli', 'main.ts');
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-redis-'));
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; ++i) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); }).on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => { redis.kill('SIGTERM'); } };
}

function segvol(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--require=ts-node/register', cli, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(child: ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (err += String(d)));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
}

/** The chunk files of a Zarr output (v2: names of digits and dots) and their bytes. */
function chunks(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).filter((f) => /^\d+(\.\d+)*$/.test(f)).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

async function setup(): Promise<{ dir: string; model: string; input: string; reference: Map<string, Buffer> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-cluster-'));
  const model = sequential([layers.conv({ out: 4, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.relu(),
    layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 4 });
  model.info = { normalize: 'slice' };
  model.save(path.join(dir, 'model.safetensors'));
  const dims = [8, 48, 40];
  await writeZarr(path.join(dir, 'in.zarr'), Float32Array.from({ length: 8 * 48 * 40 }, (_, i) => Math.sin(i * 0.013) + ((i * 7) % 5)), dims, { chunks: [4, 16, 16] });
  await predictChunked(model, path.join(dir, 'in.zarr'), path.join(dir, 'one.zarr'), { window: [4, 16, 16], chunks: [4, 16, 20] });
  return { dir, model: path.join(dir, 'model.safetensors'), input: path.join(dir, 'in.zarr'), reference: chunks(path.join(dir, 'one.zarr')) };
}

const maybe = hasRedis ? test.serial : test.serial.skip;
if (!hasRedis) console.log('cluster tests skipped: redis-server is not installed (apt-get install redis-server)');

maybe('three workers on a BullMQ queue write the same bytes as one process, and the coordinator reports progress', async (t) => {
  const redis = await startRedis();
  const { dir, model, input, reference } = await setup();
  const workers = [0, 1, 2].map(() => segvol(['worker', '--queue', redis.url, '--queue-name', 'three', '--lock-seconds', '5']));
  const logs = workers.map(finished);
  try {
    const coordinator = await finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'three.zarr'), '--window', '4,16,16',
      '--chunks', '4,16,20', '--queue', redis.url, '--queue-name', 'three']));
    t.is(coordinator.code, 0, coordinator.err);
    t.regex(coordinator.out, /12 blocks of 4x16x20; 0 already written, 12 queued/);
    t.deepEqual(chunks(path.join(dir, 'three.zarr')), reference, 'byte for byte');
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    const outs = await Promise.all(logs);
    const perWorker = outs.map((o) => (o.out.match(/^block \d+/gm) ?? []).length);
    t.is(perWorker.reduce((a, b) => a + b, 0), 12, `blocks per worker: ${perWorker.join(', ')}`);
    t.true(perWorker.filter((n) => n > 0).length >= 2, 'the work was shared');
    redis.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

/** Every file of an OME-Zarr output but the bookkeeping (nested chunk folders), and its bytes. */
function files(dir: string, prefix = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = path.join(prefix, e.name);
    if (e.name === '.segvol') continue;
    if (e.isDirectory()) for (const [k, v] of files(dir, rel)) out.set(k, v);
    else out.set(rel, fs.readFileSync(path.join(dir, rel)));
  }
  return out;
}

maybe('an OME-Zarr output through the queue: workers write level 0, the coordinator the levels below; the same bytes as one process', async (t) => {
  const redis = await startRedis();
  const { dir, model, input } = await setup();
  const { loadModel } = await import('../lib');
  await predictChunked(loadModel(model), input, path.join(dir, 'one.ome.zarr'), { window: [4, 16, 16], chunks: [4, 16, 20], ome: true });
  const workers = [0, 1].map(() => segvol(['worker', '--queue', redis.url, '--queue-name', 'ome', '--lock-seconds', '5']));
  const logs = workers.map(finished);
  try {
    const coordinator = await finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'queued.ome.zarr'), '--window', '4,16,16',
      '--chunks', '4,16,20', '--queue', redis.url, '--queue-name', 'ome']));
    t.is(coordinator.code, 0, coordinator.err);
    t.regex(coordinator.out, /OME-Zarr 0\.4, 3 levels/);
    const one = files(path.join(dir, 'one.ome.zarr')), queued = files(path.join(dir, 'queued.ome.zarr'));
    t.true([...one.keys()].some((f) => f.startsWith(`2${path.sep}`)), 'levels 1 and 2 written');
    const attrs = (m: Map<string, Buffer>) => ({ ...JSON.parse(m.get('.zattrs')!.toString()).multiscales[0], name: undefined });
    t.deepEqual(attrs(queued), attrs(one), 'the same multiscales (the name is the output\'s)');
    one.delete('.zattrs');
    queued.delete('.zattrs');
    t.deepEqual(queued, one, 'byte for byte, every level');
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(logs);
    redis.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

maybe('a worker killed mid-block (SIGKILL) loses its block to another after the lock expires; the output is still identical', async (t) => {
  const redis = await startRedis();
  const { dir, model, input, reference } = await setup();
  // The first worker pauses 30 s before each block: it takes one and dies holding it.
  const slow = segvol(['worker', '--queue', redis.url, '--queue-name', 'kill', '--lock-seconds', '2'], { SEGVOL_WORKER_TEST_DELAY_MS: '30000' });
  const slowLog = finished(slow);
  const coordinator = finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'kill.zarr'), '--window', '4,16,16',
    '--chunks', '4,16,20', '--queue', redis.url, '--queue-name', 'kill']));
  // Wait until the slow worker holds a job, then kill it.
  const { Queue } = await import('bullmq');
  const { redisConnection } = await import('../lib/cluster/blocks');
  const queue = new Queue('kill', { connection: redisConnection(redis.url) });
  let active = 0;
  for (let i = 0; i < 200 && active === 0; ++i) {
    active = (await queue.getJobCounts('active')).active ?? 0;
    if (active === 0) await new Promise((r) => setTimeout(r, 100));
  }
  t.is(active, 1, 'the slow worker took a block');
  process.kill(slow.pid!, 'SIGKILL');
  await slowLog;
  const healthy = segvol(['worker', '--queue', redis.url, '--queue-name', 'kill', '--lock-seconds', '2']);
  const healthyLog = finished(healthy);
  try {
    const c = await coordinator;
    t.is(c.code, 0, c.err);
    t.deepEqual(chunks(path.join(dir, 'kill.zarr')), reference, 'byte for byte, the killed block redone');
    t.deepEqual(fs.readdirSync(path.join(dir, 'kill.zarr')).filter((f) => f.endsWith('.tmp')), [], 'no half-written chunk');
  } finally {
    healthy.kill('SIGTERM');
    await healthyLog;
    await queue.close();
    redis.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

test('array jobs: --block i/n from the command line, then --resume skips what is written', async (t) => {
  const { dir, model, input, reference } = await setup();
  for (const part of ['0/2', '1/2']) {
    const r = await finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'parts.zarr'), '--window', '4,16,16', '--chunks', '4,16,20', '--block', part]));
    t.is(r.code, 0, r.err);
    t.regex(r.out, new RegExp(`6 blocks computed, 0 already written \\(part ${part.split('/')[0]}/2 of 12 blocks\\)`));
  }
  t.deepEqual(chunks(path.join(dir, 'parts.zarr')), reference);
  const resumed = await finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'parts.zarr'), '--window', '4,16,16', '--chunks', '4,16,20', '--resume']));
  t.regex(resumed.out, /0 blocks computed, 12 already written/);
  const bad = await finished(segvol(['predict', '--model', model, '--in', input, '--out', path.join(dir, 'x.zarr'), '--window', '4,16,16', '--block', '2/2']));
  t.is(bad.code, 1);
  t.regex(bad.err, /expected a part i\/n with 0 <= i < n, received 2\/2/);
  fs.rmSync(dir, { recursive: true });
});

test('a worker whose Redis is gone says so once (then once a minute), instead of flooding its log', async (t) => {
  const port = await freePort();  // nothing listens there
  const worker = segvol(['worker', '--queue', `redis://127.0.0.1:${port}`, '--queue-name', 'gone']);
  const log = finished(worker);
  await new Promise((r) => setTimeout(r, 6000));
  worker.kill('SIGKILL');
  const { err } = await log;
  const lines = err.trim().split('\n').filter(Boolean);
  t.true(lines.length >= 1 && lines.length <= 2, `stderr lines: ${lines.length}`);
  t.regex(err, /ECONNREFUSED/);
});
