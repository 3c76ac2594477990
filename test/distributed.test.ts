// Data-parallel training over MPI. Without mpirun or segvol's MPI plugin the MPI tests
// are reported as skipped, the reason in their titles (SEGVOL_REQUIRE_MPI=1, which CI
// sets, fails them instead). The rest needs no MPI: the refusal without the plugin,
// the addon's independence from libmpi, and the indexed window seeds that let N ranks
// draw what one process draws.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { distributedStatus, loadModel, presets, Tensor, Trainer, VolumeSampler } from '../lib';
import { Random } from '../lib/core/random';
import { syntheticEm } from '../lib/data/synthetic';
import { WindowDrawer } from '../lib/training/windows';
import type { Plan } from '../lib/training/plan';

const root = path.join(__dirname, '..');
const script = path.join(__dirname, 'distributed', 'train_rank.ts');
const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const openMpi = mpirun.status === 0 && /Open MPI/.test(mpirun.stdout);
const status = distributedStatus();
const missing = mpirun.status !== 0 ? 'no mpirun on the PATH (Debian: sudo apt-get install openmpi-bin libopenmpi-dev)'
  : !status.available ? status.reason : !openMpi ? 'the launcher options here are Open MPI\'s, and this mpirun is another' : undefined;
const required = process.env.SEGVOL_REQUIRE_MPI === '1';

function mpiTest(title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  if (!missing) test.serial(title, fn);
  else if (required) test.serial(title, (t) => t.fail(`SEGVOL_REQUIRE_MPI=1 but: ${missing}`));
  else test.skip(`${title} (skipped: ${missing})`, fn);
}

/** Runs `ranks` copies of the training script under mpirun (one thread each); resolves with the output. */
function launch(ranks: number, env: Record<string, string>, options: { recovery?: boolean; onOutput?: (text: string) => void } = {}):
  Promise<{ status: number | null; output: string }> {
  const vars = { OMP_NUM_THREADS: '1', DISTRIBUTED: '1', ...env };
  const args = ['-np', String(ranks), '--oversubscribe', '--bind-to', 'none', ...(options.recovery ? ['--enable-recovery'] : []),
    ...Object.keys(vars).flatMap((k) => ['-x', k]), process.execPath, '-r', 'ts-node/register/transpile-only', script];
  const child = spawn('mpirun', args, {
    cwd: root, env: { ...process.env, ...vars, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const take = (d: Buffer) => { output += d.toString(); options.onOutput?.(output); };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  return new Promise((resolve) => child.on('close', (code) => { clearTimeout(timer); resolve({ status: code, output }); }));
}

function alone(env: Record<string, string>): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', script], {
    cwd: root, env: { ...process.env, OMP_NUM_THREADS: '1', ...env }, encoding: 'utf8', timeout: 180_000,
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

const temp = (name: string) => path.join(os.tmpdir(), `segvol-distributed-${process.pid}-${name}`);

const lddMissing = spawnSync('ldd', ['--version'], { encoding: 'utf8' }).status === 0 ? undefined : 'ldd is not installed here';
(lddMissing === undefined ? test : test.skip)(`the addon does not link libmpi: without MPI it loads and trains as before${lddMissing ? ` (skipped: ${lddMissing})` : ''}`, (t) => {
  const addon = process.env.SEGVOL_ADDON ?? path.join(root, 'build', 'Release', 'segvol.node');
  const ldd = spawnSync('ldd', [addon], { encoding: 'utf8' });
  t.is(ldd.status, 0, ldd.stderr);
  t.notRegex(ldd.stdout, /libmpi/);
});

test('without the MPI plugin, distributed training is refused with ERR_NOT_BUILT naming what to install', (t) => {
  const code = `
    const s = require(${JSON.stringify(path.join(root, 'lib'))});
    const em = require(${JSON.stringify(path.join(root, 'lib', 'data', 'synthetic'))}).syntheticEm({ depth: 4, height: 16, width: 16, seed: 1 });
    const data = new s.VolumeSampler({ volume: em.image, shape: [1, 4, 16, 16], labels: em.labels });
    const model = s.presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
    new s.Trainer(model, { distributed: 'mpi' }).fit({ data, size: [4, 8, 8], steps: 1 })
      .then(() => console.log(JSON.stringify('trained')), (e) => console.log(JSON.stringify([e.code, e.message])));`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', code], {
    cwd: root, env: { ...process.env, SEGVOL_MPI_PLUGIN: '/nonexistent/segvol_mpi.so' }, encoding: 'utf8', timeout: 120_000,
  });
  t.is(r.status, 0, r.stderr);
  const [errorCode, message] = JSON.parse(r.stdout.trim().split('\n').pop()!) as [string, string];
  t.is(errorCode, 'ERR_NOT_BUILT');
  t.regex(message, /segvol was built without MPI .*\/nonexistent\/segvol_mpi\.so does not exist.*apt-get install libopenmpi-dev/);
});

test('distributed and windowSeeds options are checked before any MPI call', (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  const bad = t.throws(() => new Trainer(model, { distributed: 'nccl' as 'mpi' })) as Error & { code?: string };
  t.is(bad.code, 'ERR_ARGUMENT');
  t.regex(bad.message, /distributed: expected 'mpi' or \{ kind: 'mpi'/);
  const seeds = t.throws(() => new Trainer(model, { windowSeeds: 'random' as 'indexed' })) as Error & { code?: string };
  t.regex(seeds.message, /windowSeeds: expected 'stream' or 'indexed'/);
  model.dispose();
});

test('indexed window seeds: rank 0 and rank 1 of 2, at batch 1 each, draw the windows one process draws at batch 2', (t) => {
  const em = syntheticEm({ depth: 8, height: 32, width: 32, seed: 2 });
  const data = new VolumeSampler({ volume: em.image, shape: [1, 8, 32, 32], labels: em.labels });
  const plan = { index: 0, name: 'phase 1', size: [4, 8, 8], outputSize: [4, 8, 8], batchSize: 2, data, filterTries: 10 } as unknown as Plan;
  const whole = new WindowDrawer(new Random(1), { seed: 9, rank: 0, ranks: 1 });
  const ranks = [0, 1].map((rank) => new WindowDrawer(new Random(1), { seed: 9, rank, ranks: 2 }));
  for (const step of [0, 1, 5]) {
    const all = whole.take(plan, step);
    t.is(all.length, 2);
    ranks.forEach((drawer, r) => {
      const mine = drawer.take(plan, step);
      t.is(mine.length, 1);
      t.deepEqual([...mine[0]!.labels], [...all[r]!.labels], `step ${step}, rank ${r}: labels`);
      t.deepEqual([...Object.values(mine[0]!.inputs)[0]!], [...Object.values(all[r]!.inputs)[0]!], `step ${step}, rank ${r}: input`);
    });
  }
  t.notDeepEqual([...whole.take(plan, 0)[0]!.labels], [...whole.take(plan, 1)[0]!.labels], 'steps draw different windows');
  t.is(Random.derived(9, 3, 1).next(), Random.derived(9, 3, 1).next());
  t.not(Random.derived(9, 3, 1).next(), Random.derived(9, 1, 3).next());
});

mpiTest('mpirun -np 2 at batch 1 per rank gives the weights of one process at batch 2 drawing the same windows (5 steps)', async (t) => {
  const single = temp('single.json'), multi = temp('multi.json');
  const one = alone({ STEPS: '5', BATCH: '2', OUT: single });
  t.is(one.status, 0, one.output);
  const two = await launch(2, { STEPS: '5', BATCH: '2', OUT: multi });
  t.is(two.status, 0, two.output);
  const a = JSON.parse(fs.readFileSync(single, 'utf8')) as { losses: number[]; weights: Record<string, number[]> };
  const b = JSON.parse(fs.readFileSync(multi, 'utf8')) as typeof a;
  let largest = 0, worst = 0;
  for (const [name, values] of Object.entries(a.weights)) {
    values.forEach((v, i) => { largest = Math.max(largest, Math.abs(v)); worst = Math.max(worst, Math.abs(v - b.weights[name]![i]!)); });
  }
  t.log(`largest weight difference ${worst.toExponential(2)} (${(worst / largest).toExponential(2)} of the largest weight)`);
  t.true(worst <= 1e-6 * largest, `weights differ by ${worst} (largest weight ${largest})`);
  a.losses.forEach((l, i) => t.true(Math.abs(l - b.losses[i]!) <= 1e-6 * Math.abs(l), `loss of step ${i + 1}: ${l} vs ${b.losses[i]}`));
  for (const f of [single, multi]) fs.rmSync(f, { force: true });
});

mpiTest('gradients averaged in small buckets during backward (bucketMiB 0.01) give the same weights as one average after it', async (t) => {
  const whole = temp('whole.json'), buckets = temp('buckets.json');
  const a = await launch(2, { STEPS: '4', BATCH: '2', OUT: whole });
  t.is(a.status, 0, a.output);
  const b = await launch(2, { STEPS: '4', BATCH: '2', OUT: buckets, BUCKET_MIB: '0.01' });
  t.is(b.status, 0, b.output);
  const x = JSON.parse(fs.readFileSync(whole, 'utf8')) as { weights: Record<string, number[]>; status: { reductions: number } };
  const y = JSON.parse(fs.readFileSync(buckets, 'utf8')) as typeof x;
  t.is(x.status.reductions, 4, 'one bucket a step at the default 25 MiB');
  t.true(y.status.reductions > 8, `${y.status.reductions} buckets in 4 steps`);
  t.log(`${y.status.reductions} allreduces in 4 steps with 0.01 MiB buckets`);
  // The same sums, in other groupings: bit for bit.
  t.deepEqual(y.weights, x.weights);
  for (const f of [whole, buckets]) fs.rmSync(f, { force: true });
});

test('the tape reports each parameter\'s gradient once, when it is final, and it is the gradient backward returns', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2, 3], fc: [3], kernel: 3, seed: 1 });
  const { GradientTape, ops } = await import('../lib');
  const x = Tensor.fromArray(Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i)), [1, 1, 4, 8, 8]);
  const tape = new GradientTape();
  const out = await tape.record(async () => ops.scale(ops.sum([await model.forward({ input: x })]), 1));
  const seen = new Map<Tensor, Float32Array>();
  const grads = await tape.backward(out, Tensor.full(out.shape, 1), {
    onLeafGradient: (leaf, g) => { t.false(seen.has(leaf), 'reported once'); seen.set(leaf, g.toArray()); },
  });
  t.is(seen.size, [...model.parameters().values()].length, 'every parameter reported');
  for (const [leaf, g] of grads) {
    if (!seen.has(leaf)) continue;
    t.deepEqual(seen.get(leaf), g.toArray(), 'the reported gradient was already final');
  }
  tape.dispose();
  model.dispose();
});

mpiTest('40 allreduces launched at once are issued in the order they were made, on every rank', async (t) => {
  const args = ['-np', '2', '--oversubscribe', '--bind-to', 'none', process.execPath, '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'distributed', 'many_collectives.ts')];
  const r = spawnSync('mpirun', args, { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.is((r.stdout.match(/^OK$/gm) ?? []).length, 2, r.stdout + r.stderr);
});

mpiTest('a batch that does not split over the ranks is refused on every rank (ERR_ARGUMENT), before any step', async (t) => {
  const r = await launch(2, { STEPS: '2', BATCH: '3' });
  t.regex(r.output, /the batch size 3 does not split over 2 ranks.*use 2 or 4/);
  t.is((r.output.match(/\[ERR_ARGUMENT\]/g) ?? []).length, 2, r.output);
});

mpiTest('a rank killed mid-run: the other ends with ERR_PEER_LOST (exit 69) within the timeout, and the last checkpoint loads', async (t) => {
  const checkpoint = temp('killed.safetensors'), exitFile = temp('exit');
  let killed: { pid: number; at: number } | undefined;
  let seen = '';
  const run = launch(2, { STEPS: '400', BATCH: '2', TIMEOUT: '10', STEP_PAUSE_MS: '200', CHECKPOINT: checkpoint, EXIT_FILE: exitFile },
    { recovery: true, onOutput: (text) => { seen = text; } });
  // Once rank 0 has written a checkpoint (after step 1), kill rank 1 by its pid.
  const watch = setInterval(() => {
    const pid = /rank 1 pid (\d+)/.exec(seen)?.[1];
    if (!killed && pid && fs.existsSync(checkpoint)) {
      killed = { pid: Number(pid), at: Date.now() };
      process.kill(killed.pid, 'SIGKILL');
    }
  }, 100);
  const r = await run;
  clearInterval(watch);
  t.truthy(killed, `rank 1 was never killed: ${r.output}`);
  const seconds = (Date.now() - killed!.at) / 1000;
  t.log(`rank 0 stopped ${seconds.toFixed(1)} s after the kill`);
  t.true(seconds < 20, `took ${seconds} s`);
  t.regex(r.output, new RegExp(`\\[ERR_PEER_LOST\\] segvol: rank 0/2, the gradient allreduce of step \\d+: allreduce: rank 1 \\(pid ${killed!.pid} on this host\\) has exited`));
  t.is(fs.readFileSync(`${exitFile}.0`, 'utf8'), '69');
  const model = loadModel(checkpoint);
  const trainer = new Trainer(model, { distributed: 'mpi' });
  t.notThrows(() => trainer.resume(checkpoint));
  t.true(trainer.step >= 1);
  model.dispose();
  for (const f of [checkpoint, `${checkpoint}.optimizer`, `${exitFile}.0`]) fs.rmSync(f, { force: true });
});

mpiTest('segvol train under mpirun -np 2: one report and one set of files (rank 0), each rank named once, MPI finalised', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-distributed-cli-'));
  const cli = (args: string[]) => ['-r', 'ts-node/register/transpile-only', path.join(root, 'lib', 'cli', 'main.ts'), ...args];
  const synth = spawnSync(process.execPath, cli(['synth', '--out', dir]), { cwd: root, encoding: 'utf8', timeout: 120_000 });
  t.is(synth.status, 0, synth.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')) as Record<string, unknown>;
  delete config.stages;
  Object.assign(config, {
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [4, 6], fc: [5], kernel: 3, seed: 1 },
    phases: [{ size: [4, 16, 16], steps: 4, batchSize: 2 }], checkpoint: { path: 'model.safetensors', every: 2 },
  });
  fs.writeFileSync(path.join(dir, 'dist.json'), JSON.stringify(config));
  const args = ['-np', '2', '--oversubscribe', '--bind-to', 'none', '-x', 'OMP_NUM_THREADS', process.execPath, ...cli(['train', '--config', path.join(dir, 'dist.json')])];
  const r = spawnSync('mpirun', args, {
    cwd: root, encoding: 'utf8', timeout: 180_000, env: { ...process.env, OMP_NUM_THREADS: '1', OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
  });
  const output = r.stdout + r.stderr;
  t.is(r.status, 0, output);
  t.regex(output, /rank 0\/2 \(pid \d+/);
  t.regex(output, /rank 1\/2 \(pid \d+/);
  t.is((output.match(/finished at step 4/g) ?? []).length, 1, output);
  const log = fs.readFileSync(path.join(dir, 'model.log.jsonl'), 'utf8').trim().split('\n');
  t.is(log.length, 4, 'one log line per step, from rank 0 alone');
  t.true(fs.existsSync(path.join(dir, 'model.safetensors')));
  fs.rmSync(dir, { recursive: true, force: true });
});

mpiTest('a rank started with another seed is refused at start-up on every rank (ERR_ARGUMENT naming it)', async (t) => {
  const r = await launch(2, { STEPS: '2', BATCH: '2', SEED_OF_RANK_1: '8' });
  t.is((r.output.match(/\[ERR_ARGUMENT\] segvol: distributed: rank 1 of 2 differs from rank 0/g) ?? []).length, 2, r.output);
});

mpiTest('resume with another number of ranks: 2 ranks for 3 steps, then 1 process to step 5, ends where 1 process alone does', async (t) => {
  const checkpoint = temp('ranks.safetensors'), resumed = temp('resumed.json'), straight = temp('straight.json');
  const first = await launch(2, { STEPS: '3', BATCH: '2', CHECKPOINT: checkpoint });
  t.is(first.status, 0, first.output);
  const second = alone({ STEPS: '5', BATCH: '2', RESUME: checkpoint, OUT: resumed });
  t.is(second.status, 0, second.output);
  const reference = alone({ STEPS: '5', BATCH: '2', OUT: straight });
  t.is(reference.status, 0, reference.output);
  const a = JSON.parse(fs.readFileSync(resumed, 'utf8')) as { weights: Record<string, number[]> };
  const b = JSON.parse(fs.readFileSync(straight, 'utf8')) as typeof a;
  let largest = 0, worst = 0;
  for (const [name, values] of Object.entries(b.weights)) {
    values.forEach((v, i) => { largest = Math.max(largest, Math.abs(v)); worst = Math.max(worst, Math.abs(v - a.weights[name]![i]!)); });
  }
  t.log(`after the resume: largest difference ${(worst / largest).toExponential(2)} of the largest weight`);
  t.true(worst <= 1e-6 * largest);
  for (const f of [checkpoint, `${checkpoint}.optimizer`, resumed, straight]) fs.rmSync(f, { force: true });
});

// The cuda data path: NCCL on a GPU; on the emulated build its stand-in, which reduces through MPI.
const emulatedAddon = path.join(root, 'build-emulated', 'Release', 'segvol.node');
const emulatedMissing = missing ?? (fs.existsSync(emulatedAddon) ? undefined : `no emulated CUDA build at ${emulatedAddon} (npm test builds it; node scripts/build-native.js --emulated)`);
(emulatedMissing === undefined ? test.serial : required && missing ? test.serial : test.skip)(
  `2 cuda ranks (emulated build) reduce through the NCCL path and end with the weights of 1 cpu process at batch 2${emulatedMissing ? ` (skipped: ${emulatedMissing})` : ''}`,
  async (t) => {
    if (emulatedMissing) return t.fail(`SEGVOL_REQUIRE_MPI=1 but: ${emulatedMissing}`);
    const single = temp('cpu.json'), multi = temp('cuda.json');
    const one = alone({ STEPS: '4', BATCH: '2', OUT: single });
    t.is(one.status, 0, one.output);
    const two = await launch(2, { STEPS: '4', BATCH: '2', OUT: multi, DEVICE: 'cuda', SEGVOL_ADDON: emulatedAddon });
    t.is(two.status, 0, two.output);
    const a = JSON.parse(fs.readFileSync(single, 'utf8')) as { weights: Record<string, number[]> };
    const b = JSON.parse(fs.readFileSync(multi, 'utf8')) as { weights: Record<string, number[]>; status: { cudaCollective: string; ncclReductions: number } };
    t.is(b.status.cudaCollective, 'nccl');
    t.is(b.status.ncclReductions, 4, 'one NCCL average a step');
    let largest = 0, worst = 0;
    for (const [name, values] of Object.entries(a.weights)) {
      values.forEach((v, i) => { largest = Math.max(largest, Math.abs(v)); worst = Math.max(worst, Math.abs(v - b.weights[name]![i]!)); });
    }
    t.log(`cuda ranks vs one cpu process: ${(worst / largest).toExponential(2)} of the largest weight`);
    t.true(worst <= 1e-5 * largest);
    for (const f of [single, multi]) fs.rmSync(f, { force: true });
  });
