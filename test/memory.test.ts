// Training memory: recomputing the C-LSTM gates in backward changes no value (bit
// for bit), keeps a third of the planes, the predicted peak of a step matches the
// measured one, and a budget picks the cheapest schedule that fits or refuses a
// window naming one that fits.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { memoryStats, ops, presets, releaseCachedMemory, Tensor, Trainer, VolumeSampler, type ClstmWeights } from '../lib';
import { optimized } from '../lib/testing';
import { estimateStepMemory, parseBudget, planMemory } from '../lib/training/memory';
import { randomArray, rng } from './helpers';

function layerInputs(c: number, o: number, shape: number[], seed: number) {
  const random = rng(seed);
  const t = (s: number[]) => Tensor.fromArray(randomArray(s.reduce((a, b) => a * b, 1), random).map((v) => v * 0.4), s);
  const weights: ClstmWeights[] = [0, 1, 2, 3, 4, 5].map(() => ({ wx: t([4 * o, c, 3, 3]), bx: t([4 * o]), wh: t([4 * o, o, 3, 3]), bh: t([4 * o]) }));
  return { x: t([1, c, ...shape]), weights, dy: t([1, o, ...shape]) };
}

const bits = (a: Tensor, b: Tensor) => a.toArray().every((v, i) => Object.is(v, b.toArray()[i]));

for (const scanGroups of [1, 2, 6]) {
  test(`recomputed gates give the kept-gates layer bit for bit, keeping a third of the planes (groups of up to ${scanGroups})`, (t) => {
    const { x, weights, dy } = layerInputs(3, 4, [5, 6, 6], 1);
    const kept = ops.pyramidLstm(x, weights, { scanGroups });
    const lean = ops.pyramidLstm(x, weights, { scanGroups, recompute: true });
    t.is(kept.saved.bytes, 6 * 6 * 4 * 4 * 180);   // 6 directions x (4O + O + O) floats x 4 bytes x 180 voxels
    t.is(lean.saved.bytes, kept.saved.bytes / 3);
    t.true(bits(kept.y, lean.y));
    const a = optimized.pyramidLstmBackward(kept.saved, dy);
    const b = optimized.pyramidLstmBackward(lean.saved, dy);
    t.true(bits(a.dx, b.dx), 'dx');
    a.grads.forEach((g, d) => {
      for (const k of ['dwx', 'dbx', 'dwh', 'dbh'] as const) t.true(bits(g[k], b.grads[d]![k]), `direction ${d} ${k}`);
    });
  });
}

test('a C-LSTM scan with an initial state recomputes its gates bit for bit too', (t) => {
  const { x, weights } = layerInputs(2, 3, [4, 5, 6], 2);
  const h0 = Tensor.fromArray(randomArray(3 * 20, rng(3)), [1, 3, 4, 5]);
  const c0 = Tensor.fromArray(randomArray(3 * 20, rng(4)), [1, 3, 4, 5]);
  const dh = Tensor.fromArray(randomArray(3 * 120, rng(5)), [1, 3, 4, 5, 6]);
  const run = (recompute: boolean) => {
    const r = ops.clstmScan(x, weights[4]!, { direction: 5, h0, c0, recompute });
    return { r, g: optimized.clstmScanBackward(r.saved, { dh, dhLast: r.hLast, dcLast: r.cLast }) };
  };
  const a = run(false), b = run(true);
  t.true(b.r.saved.bytes < a.r.saved.bytes);
  t.true(bits(a.r.h, b.r.h) && bits(a.g.dx, b.g.dx) && bits(a.g.dh0!, b.g.dh0!) && bits(a.g.dc0!, b.g.dc0!));
  for (const k of ['dwx', 'dbx', 'dwh', 'dbh'] as const) t.true(bits(a.g.grads[k], b.g.grads[k]), k);
});

// Each case in its own process: the peak of live tensor bytes over a steady-state step.
for (const mode of ['gates', 'recompute']) {
  test(`the predicted peak of a paper-network step matches the measured one (8x32x32, ${mode})`, (t) => {
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register', path.join(__dirname, '..', 'benchmarks', 'run.ts'), 'memory', '--case', `8,32,32:${mode}`],
      { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 300_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    t.is(r.status, 0, r.stderr);
    const line = JSON.parse(r.stdout.trim().split('\n').pop()!) as { predicted_gib: number; tensor_peak_gib: number; peak_rss_gib: number };
    const ratio = line.predicted_gib / line.tensor_peak_gib;
    t.log(`predicted ${line.predicted_gib} GiB, measured ${line.tensor_peak_gib} GiB (ratio ${ratio.toFixed(3)}), peak RSS ${line.peak_rss_gib} GiB`);
    t.true(ratio > 0.97 && ratio < 1.05, `ratio ${ratio}`);
  });
}

test('the paper network on 20x256x256: about 23.2 GiB with the gates kept, under 12 GiB recomputed (CPU and CUDA)', (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2 });
  const shape = [1, 1, 20, 256, 256];
  const gib = (schedule: object, device: 'cpu' | 'cuda') => estimateStepMemory(model, shape, { schedule, device })!.peakBytes / 2 ** 30;
  t.true(Math.abs(gib({}, 'cpu') - 23.2) < 0.1, `${gib({}, 'cpu')}`);
  t.true(gib({ recompute: true }, 'cpu') < 11);
  t.true(gib({}, 'cuda') > 30, 'CUDA groups four H/W directions in backward by default');
  const plan = planMemory(model, shape, parseBudget('12G', 'test'), 'cuda')!;
  t.deepEqual(plan.schedule, { recompute: true, scanGroups: 1 });
  t.true(plan.peakBytes < 12e9, `the CUDA step within 12 GB: ${plan.peakBytes}`);
  t.regex(model.summary(shape), /training step on \(1, 1, 20, 256, 256\), cpu: about 23\.\d+ GiB at peak .*\n  with recomputed gates, one direction at a time: about 10\.\d+ GiB/);
});

test('a memory budget picks the fastest schedule that fits, refuses a window that cannot fit naming one that does, and changes no result', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4, 6], fc: [5], kernel: 3, seed: 3 });
  const shape = [2, 1, 6, 24, 24];
  const kept = estimateStepMemory(model, shape)!.peakBytes;
  const lean = estimateStepMemory(model, shape, { schedule: { recompute: true } })!.peakBytes;
  t.true(lean < 0.7 * kept);
  t.deepEqual(planMemory(model, shape, kept + 1)!.schedule, {});
  t.deepEqual(planMemory(model, shape, (kept + lean) / 2)!.schedule, { recompute: true });
  const err = t.throws(() => planMemory(model, shape, lean * 0.6)) as Error & { code?: string };
  t.is(err.code, 'ERR_MEMORY');
  t.regex(err.message, /a training step on 6x24x24 \(batch 2\) needs about [\d.]+ MiB even with recomputed gates .* a 6x\d+x\d+ window fits \(about [\d.]+ MiB\)/);
  t.is(parseBudget('800MiB', 'x'), 800 * 2 ** 20);
  t.throws(() => parseBudget('lots', 'memoryBudget'), { message: /memoryBudget: expected a memory budget in bytes or as text like "12G"/ });

  // The same steps with and without the budget: recomputation changes nothing.
  const volume = Float32Array.from({ length: 8 * 32 * 32 }, (_, i) => Math.sin(i * 0.3));
  const data = () => new VolumeSampler({ volume, shape: [1, 8, 32, 32], labels: volume.map((v) => (v > 0 ? 1 : 0)) });
  const train = async (memoryBudget?: number) => {
    const m = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4, 6], fc: [5], kernel: 3, seed: 3 });
    const trainer = new Trainer(m, { seed: 2, ...(memoryBudget ? { memoryBudget } : {}) });
    const fit = { data: data(), size: [6, 24, 24] as const, batchSize: 2, steps: 3 };
    const plan = trainer.memoryPlan(fit);
    await trainer.fit(fit);
    return { plan, weights: [...m.parameters().values()].map((p) => p.toArray()) };
  };
  const free = await train();
  const budgeted = await train((kept + lean) / 2);
  t.deepEqual(budgeted.plan[0]!.estimate!.schedule, { recompute: true });
  t.deepEqual(budgeted.weights, free.weights);
  await t.throwsAsync(new Trainer(presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4, 6], fc: [5], kernel: 3 }), { memoryBudget: lean * 0.6 })
    .fit({ data: data(), size: [6, 24, 24], batchSize: 2, steps: 1 }), { code: 'ERR_MEMORY' } as never);
});

test.serial('a freed block waits in the cpu cache, memoryStats counts it, and releaseCachedMemory gives it back', (t) => {
  const bytes = 64 * 2 ** 20;
  const before = memoryStats().cpu;
  const x = Tensor.full([bytes / 4], 1);
  t.is(memoryStats().cpu.bytes, before.bytes + bytes);
  x.dispose();
  const after = memoryStats().cpu;
  t.is(after.bytes, before.bytes, 'no tensor holds it');
  t.true(after.cachedBytes >= bytes, `cached ${after.cachedBytes} bytes, expected at least the freed ${bytes}`);
  const released = releaseCachedMemory('cpu');
  t.true(released >= bytes, `released ${released} bytes`);
  t.is(memoryStats().cpu.cachedBytes, 0);
  t.is(releaseCachedMemory(), 0, 'nothing left to give back');
  const y = Tensor.full([bytes / 4], 2);  // the next allocation maps fresh memory and works
  t.is(y.toArray()[bytes / 4 - 1], 2);
  y.dispose();
  const error = t.throws(() => releaseCachedMemory('gpu' as 'cpu')) as Error & { code?: string };
  t.is(error.code, 'ERR_ARGUMENT');
  t.regex(error.message, /expected device 'cpu' or 'cuda', received/);
});
