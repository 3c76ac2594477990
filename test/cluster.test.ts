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

// Faults: Redis unreachable, signals in every state. A process stopped by a signal must exit
// within 5 s of it; exit codes are those of docs/cluster.md (worker: 0 on a signal, 69 when
// Redis stays unreachable; coordinator: 143 on SIGTERM, 130 on SIGINT, 69 likewise).

interface Run { child: ChildProcess; out: () => string; err: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

function run(args: string[], env: Record<string, string> = {}): Run {
  const child = segvol(args, env);
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (err += String(d)));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, out: () => out, err: () => err, exit };
}

/** Waits until cond holds (checked every 100 ms), at most ms. */
async function until(cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Sends the signal and returns the exit with the seconds it took (a SIGKILL after 20 s so that no test hangs). */
async function stop(r: Run, signal: NodeJS.Signals): Promise<{ code: number | null; seconds: number }> {
  const sent = Date.now();
  r.child.kill(signal);
  const guard = setTimeout(() => r.child.kill('SIGKILL'), 20_000);
  const { code } = await r.exit;
  clearTimeout(guard);
  return { code, seconds: (Date.now() - sent) / 1000 };
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

test.serial('a worker whose Redis is gone says so once (then once a minute) instead of flooding its log, and SIGTERM stops it within 5 s with code 0', async (t) => {
  const port = await freePort();  // nothing listens there
  const url = `redis://127.0.0.1:${port}`;
  const w = run(['worker', '--queue', url, '--queue-name', 'gone']);
  t.true(await until(() => /cannot reach Redis/.test(w.err())), w.err());
  await new Promise((r) => setTimeout(r, 4000));  // ioredis retries every 0.25 to 2 s meanwhile
  const { code, seconds } = await stop(w, 'SIGTERM');
  t.log(`SIGTERM while connecting: code ${code} after ${seconds} s`);
  t.is(code, 0, w.err());
  t.true(seconds < 5, `stopped in ${seconds} s`);
  t.deepEqual(lines(w.err()).map((l) => l.replace(/^worker \d+: /, '')), [`cannot reach Redis at ${url} (connection refused); retrying for 30 s`], 'one line, no stack dump');
  t.regex(w.out(), /worker \d+ stopped \(SIGTERM\); peak RSS \d+ MiB/);
});

test.serial('a worker whose Redis never answers gives up after --connect-timeout with one readable message and exit code 69', async (t) => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const started = Date.now();
  const w = run(['worker', '--queue', url, '--connect-timeout', '2']);
  const guard = setTimeout(() => w.child.kill('SIGKILL'), 60_000);
  const { code } = await w.exit;
  clearTimeout(guard);
  t.is(code, 69, w.err());
  t.true(Date.now() - started >= 2000, 'not before the timeout');
  t.deepEqual(lines(w.err()).map((l) => l.replace(/^worker \d+: /, '')), [
    `cannot reach Redis at ${url} (connection refused); retrying for 2 s`,
    `cannot reach Redis at ${url} (connection refused): gave up after 2 s`,
  ], 'the message and the verdict, no stack dump');
});

test.serial('the coordinator against no Redis: one message and exit code 69 after --connect-timeout; SIGTERM stops it within 5 s with 143', async (t) => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const { dir, model, input } = await setup();
  const predict = ['predict', '--model', model, '--in', input, '--out', path.join(dir, 'none.zarr'), '--window', '4,16,16', '--chunks', '4,16,20', '--queue', url];
  try {
    const started = Date.now();
    const bounded = run([...predict, '--connect-timeout', '2']);
    const guard = setTimeout(() => bounded.child.kill('SIGKILL'), 60_000);
    const { code } = await bounded.exit;
    clearTimeout(guard);
    t.is(code, 69, bounded.err());
    t.true(Date.now() - started >= 2000, 'not before the timeout');
    t.deepEqual(lines(bounded.err()), [
      `segvol: cannot reach Redis at ${url} (connection refused); retrying for 2 s`,
      `segvol: cannot reach Redis at ${url} (connection refused): gave up after 2 s`,
    ], 'the message and the verdict, no stack dump');
    const waiting = run(predict);
    t.true(await until(() => /cannot reach Redis/.test(waiting.err())), waiting.err());
    const stopped = await stop(waiting, 'SIGTERM');
    t.log(`SIGTERM while connecting: code ${stopped.code} after ${stopped.seconds} s`);
    t.is(stopped.code, 143, waiting.err());
    t.true(stopped.seconds < 5, `stopped in ${stopped.seconds} s`);
    t.deepEqual(lines(waiting.err()), [
      `segvol: cannot reach Redis at ${url} (connection refused); retrying for 30 s`,
      'segvol: stopped by SIGTERM while connecting; nothing was queued',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

maybe('a worker connected to Redis and idle stops on SIGTERM and on SIGINT within 5 s, with code 0', async (t) => {
  const redis = await startRedis();
  const { Queue } = await import('bullmq');
  const { redisConnection } = await import('../lib/cluster/blocks');
  const queue = new Queue('idle-worker', { connection: redisConnection(redis.url) });
  try {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const w = run(['worker', '--queue', redis.url, '--queue-name', 'idle-worker']);
      t.true(await until(async () => (await queue.getWorkersCount()) > 0), `the worker connected: ${w.err()}`);
      const { code, seconds } = await stop(w, signal);
      t.log(`${signal} while idle: code ${code} after ${seconds} s`);
      t.is(code, 0, w.err());
      t.true(seconds < 5, `${signal}: stopped in ${seconds} s`);
      t.regex(w.out(), new RegExp(`worker \\d+ stopped \\(${signal}\\)`));
      t.is(w.err(), '', 'nothing to complain about');
    }
  } finally {
    await queue.close();
    redis.stop();
  }
});

maybe('the coordinator with no worker says so (--idle-warning), stops on SIGTERM within 5 s leaving its jobs queued, and a later run resumes', async (t) => {
  const redis = await startRedis();
  const { dir, model, input, reference } = await setup();
  const out = path.join(dir, 'idle.zarr');
  const predict = ['predict', '--model', model, '--in', input, '--out', out, '--window', '4,16,16', '--chunks', '4,16,20', '--queue', redis.url, '--queue-name', 'idle'];
  let worker: Run | undefined;
  try {
    const c = run([...predict, '--idle-warning', '1']);
    t.true(await until(() => /no worker has taken a block/.test(c.err())), c.err());
    const stopped = await stop(c, 'SIGTERM');
    t.log(`SIGTERM while waiting: code ${stopped.code} after ${stopped.seconds} s`);
    t.is(stopped.code, 143, c.err());
    t.true(stopped.seconds < 5, `stopped in ${stopped.seconds} s`);
    t.regex(c.out(), /12 blocks of 4x16x20; 0 already written, 12 queued/);
    t.regex(c.err(), new RegExp(`segvol: no worker has taken a block of idle for 1 s \\(none is connected to it\\): start one with segvol worker --queue ${redis.url} --queue-name idle`));
    t.true((c.err().match(/no worker has taken/g) ?? []).length <= 3, 'said once, then after 2 and 4 s: no flood');
    t.regex(c.err(), /segvol: stopped by SIGTERM: 0\/12 blocks written to .*idle\.zarr; the 12 left stay queued on idle for the workers/);
    t.true(fs.existsSync(path.join(out, '.segvol', 'plan.json')), 'the plan stays');
    // A worker takes the queued jobs; the coordinator run again follows them to the end.
    worker = run(['worker', '--queue', redis.url, '--queue-name', 'idle']);
    const again = run(predict);
    const guard = setTimeout(() => again.child.kill('SIGKILL'), 120_000);
    const { code } = await again.exit;
    clearTimeout(guard);
    t.is(code, 0, again.err());
    t.regex(again.out(), /wrote .*idle\.zarr/);
    t.deepEqual(chunks(out), reference, 'byte for byte');
  } finally {
    if (worker) await stop(worker, 'SIGTERM');
    redis.stop();
    fs.rmSync(dir, { recursive: true });
  }
});

maybe('a worker stopped mid-block finishes the block (SIGTERM); a second SIGTERM gives it back to the queue at once', async (t) => {
  const redis = await startRedis();
  const { dir, model, input } = await setup();
  const out = path.join(dir, 'mid.zarr');
  const { Queue } = await import('bullmq');
  const { enqueueBlocks, redisConnection } = await import('../lib/cluster/blocks');
  const { planChunkedPrediction } = await import('../lib/inference/chunked');
  const { loadModel } = await import('../lib/models/load');
  const queue = new Queue('mid', { connection: redisConnection(redis.url) });
  try {
    const m = loadModel(model);
    const plan = await planChunkedPrediction(m, input, out, { window: [4, 16, 16], chunks: [4, 16, 20] });
    m.dispose();
    await enqueueBlocks({ url: redis.url, name: 'mid' }, model, out, plan);
    const active = async () => (await queue.getJobCounts('active')).active ?? 0;
    // Finishing: the worker waits 2 s before its block, is told to stop meanwhile, and writes it.
    const finishing = run(['worker', '--queue', redis.url, '--queue-name', 'mid'], { SEGVOL_WORKER_TEST_DELAY_MS: '2000' });
    t.true(await until(async () => (await active()) > 0), finishing.err());
    finishing.child.kill('SIGTERM');
    t.is((await finishing.exit).code, 0, finishing.err());
    t.regex(finishing.err(), /SIGTERM: finishing block \d+, then stopping/);
    t.regex(finishing.out(), /^block \d+ of .*mid\.zarr in/m);
    t.is(fs.readdirSync(path.join(out, '.segvol', 'done')).length, 1, 'the block was written and marked done');
    t.is(await active(), 0);
    // Giving back: the block would take a minute; the second signal returns it to the queue.
    const slow = run(['worker', '--queue', redis.url, '--queue-name', 'mid', '--lock-seconds', '60'], { SEGVOL_WORKER_TEST_DELAY_MS: '60000' });
    t.true(await until(async () => (await active()) > 0), slow.err());
    slow.child.kill('SIGTERM');
    t.true(await until(() => /finishing block/.test(slow.err())), slow.err());
    const { code, seconds } = await stop(slow, 'SIGTERM');
    t.log(`second SIGTERM mid-block: code ${code} after ${seconds} s`);
    t.is(code, 0, slow.err());
    t.true(seconds < 5, `stopped in ${seconds} s`);
    t.regex(slow.err(), /block \d+ of .*mid\.zarr given back to the queue/);
    const counts = await queue.getJobCounts('active', 'waiting');
    t.deepEqual([counts.active, counts.waiting], [0, 11], 'the block is waiting again, not held by a lock');
    t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')), [], 'no half-written chunk');
  } finally {
    await queue.close();
    redis.stop();
    fs.rmSync(dir, { recursive: true });
  }
});
