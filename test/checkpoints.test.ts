// Checkpoints survive kills: `segvol train` (a checkpoint every step) SIGKILLed at random
// instants always leaves a model file that loads and a pair that resumes to the weights of
// an uninterrupted run; SIGTERM stops after the current step with its checkpoint, as Ctrl-C
// does. Also the run-level refusals: an existing model file is not silently replaced, a
// finished run has nothing left to do, and a missing optimizer state has a way on.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, readSafetensors, syntheticEm, writeNpy } from '../lib';
import { rng } from './helpers';

const root = path.join(__dirname, '..');
// The compiled CLI (npm test builds dist/ first): it starts in a fraction of ts-node's time.
const compiled = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const cli = fs.existsSync(compiled) ? [compiled] : ['--require=ts-node/register', path.join(root, 'lib', 'cli', 'main.ts')];

function folder(steps: number): { dir: string; config: string; model: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-kill-'));
  const em = syntheticEm({ depth: 4, height: 16, width: 16, seed: 2 });
  writeNpy(path.join(dir, 'volume.npy'), { shape: em.shape, data: em.image });
  writeNpy(path.join(dir, 'labels.npy'), { shape: em.shape, data: em.labels });
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify({
    model: { preset: 'pyramidNet', inChannels: 1, classes: 2, hidden: [2], kernel: 3, seed: 1 },
    data: { volume: 'volume.npy', labels: 'labels.npy' }, steps, size: [3, 8, 8], seed: 4,
    optimizer: { kind: 'adam', lr: 0.01 }, checkpoint: { path: 'm.safetensors', every: 1 },
  }));
  return { dir, config: path.join(dir, 'train.json'), model: path.join(dir, 'm.safetensors') };
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [...cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, SEGVOL_PROGRESS_SECONDS: '0' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function weights(file: string): Float32Array[] {
  return [...readSafetensors(file).tensors.values()].map((a) => a.data);
}

test.serial('SIGKILL at 20 random instants: the model file always loads, and resuming ends at the uninterrupted run\'s weights', async (t) => {
  const steps = 300;  // about 45 ms a step here: kills land all through the run
  const straight = folder(steps);
  const done = run(['train', '--config', straight.config]);
  t.is(done.status, 0, done.err);
  const expected = weights(straight.model);

  const killed = folder(steps);
  const random = rng(11);
  let kills = 0, guard = 0, reached = 0;
  while (kills < 20 && guard++ < 100) {
    const resuming = fs.existsSync(killed.model);
    const args = ['train', '--config', killed.config, ...(resuming ? ['--resume', killed.model] : [])];
    const child = spawn(process.execPath, [...cli, ...args], { cwd: root, env: { ...process.env, SEGVOL_PROGRESS_SECONDS: '0' } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    // A kill at a random instant a few steps further on: 0-60 ms after a step's progress line,
    // so it lands in that step's checkpoint writes or in the next step.
    const target = reached + 1 + Math.floor(random() * 12);
    let timer: NodeJS.Timeout | undefined;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      const steps = [...stderr.matchAll(/step (\d+)\/\d+/g)].map((m) => Number(m[1]));
      if (timer === undefined && steps.length && steps[steps.length - 1]! >= target) timer = setTimeout(() => child.kill('SIGKILL'), random() * 60);
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    if (timer) clearTimeout(timer);
    if (code === 0) break;  // it outran the kill and finished
    t.is(code, null, `killed, not failed: ${stderr.slice(-300)}`);
    kills += 1;
    if (fs.existsSync(killed.model)) {
      const model = loadModel(killed.model);  // throws if a half-written file were left
      t.true(model.paramCount() > 0);
      model.dispose();
      reached = (JSON.parse(readSafetensors(killed.model).metadata.segvol!) as { position: { step: number } }).position.step;
    }
  }
  t.is(kills, 20, `${kills} kills before the run finished (at step ${reached})`);
  const last = run(['train', '--config', killed.config, '--resume', killed.model]);
  t.is(last.status, 0, last.err);
  t.regex(last.out, /finished at step 300|nothing left to do/);
  const got = weights(killed.model);
  t.is(got.length, expected.length);
  got.forEach((w, i) => t.deepEqual(w, expected[i], `tensor ${i}: bit-exact after ${kills} kills`));
  t.deepEqual(fs.readdirSync(killed.dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left after the last run');
});

test.serial('SIGTERM stops training after the current step, with a checkpoint of that step, and exit 0; a second signal stops at once', async (t) => {
  const { config, model } = folder(100000);
  const child = spawn(process.execPath, [...cli, 'train', '--config', config], { cwd: root, env: { ...process.env, SEGVOL_PROGRESS_SECONDS: '0' } });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  let sentAt = 0;
  const status = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (/step 3\//.test(stderr) && !sentAt) {
        sentAt = Date.now();
        child.kill('SIGTERM');
      }
    });
    child.on('close', (code) => resolve(code));
  });
  t.is(status, 0, stderr);
  t.true(Date.now() - sentAt < 5000, 'stopped within 5 s');
  t.regex(stderr, /SIGTERM: stopping after the current step and writing the checkpoint/);
  const stopped = /stopped at step (\d+)/.exec(stdout);
  t.truthy(stopped, stdout);
  const meta = JSON.parse(readSafetensors(model).metadata.segvol!) as { position: { step: number } };
  t.is(meta.position.step, Number(stopped![1]), 'the checkpoint holds the last completed step');
});

test.serial('an existing model file is not replaced without --overwrite; a finished run has nothing left to do; a missing optimizer state has a way on', (t) => {
  const { dir, config, model } = folder(3);
  t.is(run(['train', '--config', config]).status, 0);
  const before = fs.readFileSync(model);
  const again = run(['train', '--config', config]);
  t.is(again.status, 1);
  t.regex(again.err, /m\.safetensors exists \(an earlier run's model file\); continue it with --resume .*or start again with --overwrite/);
  t.deepEqual(fs.readFileSync(model), before, 'nothing written');
  const finished = run(['train', '--config', config, '--resume', model]);
  t.is(finished.status, 0, finished.err);
  t.regex(finished.out, /nothing left to do: .* at step 3/);
  t.notRegex(finished.out, /NaN/);
  const replaced = run(['train', '--config', config, '--overwrite']);
  t.is(replaced.status, 0, replaced.err);
  const log = fs.readFileSync(path.join(dir, 'm.log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });
  t.deepEqual(log.map((l) => l.step), [1, 2, 3], 'the overwritten run starts a new log');
  // The optimizer state of another step (what a kill between the two files left before this release).
  fs.renameSync(`${model}.optimizer`, path.join(dir, 'elsewhere'));
  const lost = run(['train', '--config', config, '--resume', model]);
  t.is(lost.status, 1);
  t.regex(lost.err, /no optimizer state of that step is beside them .*--fresh-optimizer/);
  const fresh = run(['train', '--config', config.replace(/train\.json$/, 'train.json'), '--resume', model, '--fresh-optimizer']);
  t.is(fresh.status, 0, fresh.err);
  t.regex(fresh.out, /resumed from step 3 .* with fresh optimizer state|nothing left to do/);
});

test.serial('predict and convert refuse an output path they cannot write before any computing, writing nothing', (t) => {
  const { dir, config, model } = folder(1);
  t.is(run(['train', '--config', config]).status, 0);
  const input = path.join(dir, 'volume.npy');
  for (const [out, message] of [
    [path.join(dir, 'nodir', 'p.nii.gz'), /--out .*nodir.*: the folder .*nodir does not exist; create it first/],
    [path.join(dir, 'p.xyz'), /--out .*p\.xyz: no format writes '\.xyz'; give a path ending in \.nii, \.nii\.gz/],
  ] as const) {
    const started = Date.now();
    const r = run(['predict', '--model', model, '--in', input, '--out', out]);
    t.is(r.status, 1);
    t.regex(r.err, message);
    t.false(fs.existsSync(out));
    t.notRegex(r.err, /window \d+\/\d+/, 'no window was computed');
    t.true(Date.now() - started < 20000);
  }
  const c = run(['convert', input, path.join(dir, 'x.bmp')]);
  t.is(c.status, 1);
  t.regex(c.err, /no format writes '\.bmp'/);
});

test.serial('synth --brats validates on its own phantom, not on the test case evaluate scores later', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-synth-brats-'));
  const r = run(['synth', '--brats', '--out', dir, '--cases', '2', '--size', '8,32,32']);
  t.is(r.status, 0, r.err);
  t.deepEqual(fs.readdirSync(dir).sort(), ['test', 'train', 'train.json', 'val']);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'train.json'), 'utf8')) as { validation: { brats: string }; data: { brats: string } };
  t.is(config.validation.brats, 'val');
  t.deepEqual(fs.readdirSync(path.join(dir, 'val')), ['phantom_val']);
  t.deepEqual(fs.readdirSync(path.join(dir, 'test')), ['phantom_test']);
});
