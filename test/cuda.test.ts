// CUDA parity: every op case of test/cases.ts on cuda tensors against the CPU
// backend (tolerance: ten times the case's own, for cuDNN's other summation
// order). Without a usable CUDA backend these tests are reported as skipped, the
// reason in their titles; `npm run test:gpu` (SEGVOL_REQUIRE_CUDA=1) fails them instead.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import {
  backends, computeLoss, convMath, layers, ops, Optimizer, predictVolume, presets, sequential, setConvMath, Tensor, Trainer, VolumeSampler,
} from '../lib';
import { optimized } from '../lib/testing';
import { assertClose, cudaTest } from './helpers';
import { opCases } from './cases';
import { compareDevices, compareDevicesOnTape } from './harness';

const cuda = backends().find((b) => b.name === 'cuda')!;
const required = process.env.SEGVOL_REQUIRE_CUDA === '1';

test('the cuda backend reports its state', (t) => {
  if (cuda.available) {
    t.regex(cuda.detail, /MiB, (cuDNN \d+|emulated: )/);
  } else {
    t.log(`cuda unavailable: ${cuda.reason}`);
    t.false(required, `SEGVOL_REQUIRE_CUDA=1 but cuda is unavailable: ${cuda.reason}`);
    t.regex(cuda.reason, /^(not compiled|no CUDA device|libcudnn|cuDNN lacks)/);
  }
});

const emulated = cuda.available && cuda.detail.includes('emulated');
(emulated ? test : test.skip)(`the CUDA emulator passes its self-test${emulated ? '' : ' (skipped: not the emulated build; npm run test:emulated runs it)'}`, (t) => {
  // The self-test is built next to the emulated addon (build-emulated/).
  const exe = path.resolve(path.dirname(process.env.SEGVOL_ADDON ?? ''), '..', 'emulation_selftest');
  const r = spawnSync(exe, { encoding: 'utf8' });
  t.is(r.status, 0, `${exe}: ${r.stdout}${r.stderr}`);
  t.regex(r.stdout, /emulation self-test passed/);
  t.notRegex(r.stdout, /^FAIL/m);
});

for (const c of opCases) {
  cudaTest(`cuda vs cpu: ${c.name}`, (t) => {
    compareDevices(t, c, optimized);
  });
  cudaTest(`cuda vs cpu through the tape: ${c.name}`, async (t) => {
    await compareDevicesOnTape(t, c, optimized);
  });
}

// The batch semantics on the device: a batch's gradient is the mean of its windows'.
cudaTest('cuda: a batch of 4 trains like the mean of its 4 windows, and like the cpu', async (t) => {
  const windows = Array.from({ length: 4 }, (_, b) => ({
    inputs: { input: Float32Array.from({ length: 2 * 36 }, (_, i) => Math.sin(i * 0.7 + b)) },
    labels: Float32Array.from({ length: 2 * 36 }, (_, i) => ((i + b) % 3 === 0 ? 1 : 0)),
  }));
  const step = async (ws: typeof windows, device: 'cpu' | 'cuda') => {
    const model = sequential([layers.conv({ out: 3, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.tanh(),
      layers.pixelwise({ units: 2 }), layers.softmax()], { inChannels: 1, seed: 5 }).to(device);
    const before = [...model.parameters().values()].map((p) => p.toArray());
    let next = 0;
    const data = { inputs: { input: 1 }, sample: () => ws[next++ % ws.length]! };
    await new Trainer(model, { optimizer: { kind: 'sgd', momentum: 0, lr: 1 }, loss: 'crossEntropy' })
      .fit({ data, size: [2, 6, 6], batchSize: ws.length, steps: 1 });
    return [...model.parameters().values()].map((p, k) => Float32Array.from(p.toArray(), (v, i) => before[k]![i]! - v));
  };
  const batched = await step(windows, 'cuda');
  const onCpu = await step(windows, 'cpu');
  const singles = await Promise.all(windows.map((w) => step([w], 'cuda')));
  batched.forEach((g, k) => {
    assertClose(t, g, Float32Array.from(g, (_, i) => singles.reduce((s, m) => s + m[k]![i]!, 0) / 4), { abs: 1e-6, rel: 1e-4 }, `parameter ${k} vs the mean`);
    assertClose(t, g, onCpu[k]!, { abs: 1e-6, rel: 1e-4 }, `parameter ${k} cuda vs cpu`);
  });
});

cudaTest('cuda vs cpu: losses and optimizer updates', (t) => {
  const probs = Float32Array.from({ length: 2 * 3 * 20 }, (_, i) => 0.05 + ((i * 7919) % 90) / 100);
  const labels = Float32Array.from({ length: 2 * 20 }, (_, i) => i % 3);
  for (const kind of ['squaredError', 'crossEntropy', 'softDice', 'softIoU'] as const) {
    const a = computeLoss('optimized', Tensor.fromArray(probs, [2, 3, 20]), Tensor.fromArray(labels, [2, 20]), { kind });
    const b = computeLoss('optimized', Tensor.fromArray(probs, [2, 3, 20], { device: 'cuda' }), Tensor.fromArray(labels, [2, 20], { device: 'cuda' }), { kind });
    t.true(Math.abs(a.loss - b.loss) < 1e-5 * Math.max(1, Math.abs(a.loss)), `${kind}: ${b.loss} vs ${a.loss}`);
    assertClose(t, b.grad.toArray(), a.grad.toArray(), { abs: 1e-5, rel: 1e-4 }, `${kind} gradient`);
  }
  for (const kind of ['rmspropMomentum', 'sgd', 'adam'] as const) {
    const init = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const grad = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i));
    const cpu = new Map([['w', Tensor.fromArray(init, [64])]]);
    const gpu = new Map([['w', Tensor.fromArray(init, [64], { device: 'cuda' })]]);
    const oc = new Optimizer({ kind });
    const og = new Optimizer({ kind });
    for (let s = 0; s < 3; ++s) {
      oc.step(cpu, new Map([['w', Tensor.fromArray(grad, [64])]]), 0.01);
      og.step(gpu, new Map([['w', Tensor.fromArray(grad, [64], { device: 'cuda' })]]), 0.01);
    }
    assertClose(t, gpu.get('w')!.toArray(), cpu.get('w')!.toArray(), { abs: 1e-6, rel: 1e-5 }, kind);
  }
});

// The whole training path on cuda: model.to, the trainer moving samples and class
// weights, the losses, the optimizer, dropout-free layers; a few steps must track
// the cpu run step for step (tolerance: float32 drift over 4 updates).
cudaTest('cuda vs cpu: training a small PyraMiD-LSTM network, then predictVolume', async (t) => {
  const [D, H, W] = [6, 10, 10];
  const volume = Float32Array.from({ length: D * H * W }, (_, i) => Math.sin(i * 0.37) + ((i * 7) % 5) / 5);
  const labels = Float32Array.from(volume, (v) => (v > 0.4 ? 1 : 0));
  const run = async (device: 'cpu' | 'cuda') => {
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [3, 4], fc: [5], kernel: 3, seed: 11 }).to(device);
    t.is(model.device, device);
    const trainer = new Trainer(model, { seed: 5, loss: { kind: 'crossEntropy', classWeights: 'medianFrequency' }, schedule: { kind: 'constant', lr: 0.01 } });
    const losses: number[] = [];
    await trainer.fit({ data: new VolumeSampler({ volume, shape: [1, D, H, W], labels }), steps: 4, size: [4, 8, 8], onProgress: (p) => losses.push(p.loss) });
    const probs = await predictVolume(model, Tensor.fromArray(volume, [1, 1, D, H, W]), { window: [4, 8, 8], overlap: 0.5 });
    const weights = model.parameters().get('layers.0.dir0.wx')!.toArray();
    model.dispose();
    return { losses, probs: probs.toArray(), weights };
  };
  const cpu = await run('cpu');
  const gpu = await run('cuda');
  t.is(gpu.losses.length, 4);
  assertClose(t, Float32Array.from(gpu.losses), Float32Array.from(cpu.losses), { abs: 1e-5, rel: 1e-4 }, 'losses');
  assertClose(t, gpu.weights, cpu.weights, { abs: 1e-5, rel: 1e-4 }, 'trained weights');
  assertClose(t, gpu.probs, cpu.probs, { abs: 1e-5, rel: 1e-4 }, 'stitched probabilities');
});

test('segvol profile --device cuda: a per-op table on cuda, or a clear refusal where cuda is unavailable', (t) => {
  const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
  const r = spawnSync(process.execPath, ['--require=ts-node/register', cli, 'profile', '--device', 'cuda', '--size', '3,8,8', '--hidden', '2,3', '--fc', '4', '--kernel', '3'],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 240_000 });
  if (!cuda.available) {
    t.not(r.status, 0);
    t.regex(r.stderr, /cuda is unavailable in this build \(.+\); use --device cpu/);
    return;
  }
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /forward \+ backward on cuda/);
  t.regex(r.stdout, /convForward\s+cuda/);
  t.regex(r.stdout, /lstmStepForward\s+cuda/);
});

// TF32 rounds convolution operands to a 10-bit mantissa: relative error per
// product up to 2^-11 each, so a K-term sum of such products differs from FP32 by
// at most about 2 * 2^-11 * sum|x||w|. The check uses that bound, per output.
test('setConvMath: fp32 is the default and bad modes are refused', (t) => {
  t.is(convMath(), 'fp32');
  const err = t.throws(() => setConvMath('fp8' as 'fp32')) as Error & { code?: string };
  t.is(err.code, 'ERR_ARGUMENT');
  t.regex(err.message, /expected 'fp32', 'tf32', 'bf16' or 'fp16', received 'fp8'/);
  t.is(convMath(), 'fp32');
});

cudaTest('setConvMath: tf32 stays within the TF32 rounding bound of fp32, and fp32 after it is bit-identical', (t) => {
  const xs = Float32Array.from({ length: 2 * 8 * 12 * 12 }, (_, i) => Math.sin(i * 1.7) * 1.3);
  const ws = Float32Array.from({ length: 16 * 8 * 5 * 5 }, (_, i) => Math.cos(i * 0.9) * 0.2);
  const x = Tensor.fromArray(xs, [2, 8, 12, 12], { device: 'cuda' });
  const w = Tensor.fromArray(ws, [16, 8, 5, 5], { device: 'cuda' });
  const fp32 = ops.conv(x, w, { padding: 2 }).toArray();
  setConvMath('tf32');
  let tf32: Float32Array;
  try {
    t.is(convMath(), 'tf32');
    tf32 = ops.conv(x, w, { padding: 2 }).toArray();
  } finally {
    setConvMath('fp32');
  }
  // sum |x||w| per output, on the cpu: the same convolution of absolute values.
  const magnitude = ops.conv(Tensor.fromArray(xs.map(Math.abs), [2, 8, 12, 12]), Tensor.fromArray(ws.map(Math.abs), [16, 8, 5, 5]), { padding: 2 }).toArray();
  let worst = 0;
  for (let i = 0; i < fp32.length; ++i) worst = Math.max(worst, Math.abs(tf32[i]! - fp32[i]!) / (2 * 2 ** -11 * magnitude[i]! + 1e-6));
  t.true(worst <= 1, `tf32 differs from fp32 by ${worst.toFixed(2)}x the rounding bound`);
  if (cuda.detail.includes('emulated')) {
    // The emulator always rounds, so the modes must differ there.
    t.true(tf32.some((v, i) => v !== fp32[i]), 'emulated tf32 changed nothing');
  }
  const back = ops.conv(x, w, { padding: 2 }).toArray();
  t.deepEqual(back, fp32, 'fp32 after switching back is bit-identical to before');
});

// The GPU benchmark's code path (model on cuda, synchronize, the three cases) on
// tiny shapes, so it cannot rot between GPU sessions; timings are not asserted.
cudaTest('npm run bench -- pyramid --gpu --smoke runs its three cases and the two device-memory rows on cuda', (t) => {
  const r = spawnSync(process.execPath, ['--require=ts-node/register', path.join(__dirname, '..', 'benchmarks', 'run.ts'), 'pyramid', '--gpu', '--smoke', '--repeats', '1'],
    { cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 240_000 });
  t.is(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as {
    case: string; segvol_ms: number; math: string; predicted_bytes: number; tensor_peak_bytes: number; step_ms: number;
  });
  const memory = rows.filter((r) => r.case.includes('device memory')), lines = rows.filter((r) => !r.case.includes('device memory'));
  t.deepEqual(lines.map((l) => l.case.split(':')[0]), ['smoke', 'smoke', 'smoke']);
  for (const l of lines) t.true(Number.isFinite(l.segvol_ms) && l.segvol_ms > 0, `${l.case}: ${l.segvol_ms}`);
  t.true(lines.every((l) => l.math === 'fp32'));
  t.is(memory.length, 2);
  for (const m of memory) {
    t.true(m.tensor_peak_bytes > 0 && m.step_ms > 0, m.case);
    t.true(Math.abs(m.tensor_peak_bytes - m.predicted_bytes) <= 0.1 * m.predicted_bytes, `${m.case}: predicted ${m.predicted_bytes} bytes, measured ${m.tensor_peak_bytes}`);
  }
  t.true(memory[1]!.tensor_peak_bytes <= memory[0]!.tensor_peak_bytes, 'the recomputing schedule needs no more than the default');
});

// The finite-weights check reads all 24 PyraMiD weights back in one go on a GPU;
// it must still name the tensor that holds the NaN.
cudaTest('cuda: a NaN in one of the 24 PyraMiD weights is named, and the volume is untouched', (t) => {
  const o = 2;
  const on = (data: number[] | Float32Array, shape: number[]) => Tensor.fromArray(data, shape, { device: 'cuda' });
  const x = on(Float32Array.from({ length: 2 * 4 * 5 * 6 }, (_, i) => Math.sin(i)), [1, 2, 4, 5, 6]);
  const weights = [0, 1, 2, 3, 4, 5].map((d) => ({
    wx: on(new Float32Array(4 * o * 2 * 9).fill(0.1), [4 * o, 2, 3, 3]), bx: on(new Float32Array(4 * o), [4 * o]),
    wh: on(new Float32Array(4 * o * o * 9).fill(d === 4 ? Number.NaN : 0.1), [4 * o, o, 3, 3]), bh: on(new Float32Array(4 * o), [4 * o]),
  }));
  const err = t.throws(() => ops.pyramidLstm(x, weights)) as Error & { code?: string };
  t.is(err.code, 'ERR_NON_FINITE');
  t.regex(err.message, /wh of direction 4 \(\+W\)/);
  t.deepEqual(Array.from(x.toArray().slice(0, 3)), [0, Math.fround(Math.sin(1)), Math.fround(Math.sin(2))]);
});

// The recurrent layers as a user runs them on a GPU: the same seed on each device,
// a ragged bidirectional LSTM with initial states and a ConvLSTM with peepholes.
cudaTest('cuda: layers.lstm (ragged, bidirectional, projected) and layers.convLstm (peepholes) match the cpu, gradients too', async (t) => {
  const { createLayer, GradientTape } = await import('../lib');
  const cases = [
    { builder: layers.lstm({ inputSize: 3, hiddenSize: 5, projSize: 2, numLayers: 2, bidirectional: true, batchFirst: true }), x: [3, 6, 3],
      run: { lengths: [6, 2, 4] } },
    { builder: layers.convLstm({ hidden: 2, kernel: 3, bidirectional: true, peepholes: true, planeSize: [5, 6] }), x: [2, 2, 4, 5, 6], run: {} },
  ] as const;
  for (const c of cases) {
    const results = [];
    for (const device of ['cpu', 'cuda'] as const) {
      const layer = createLayer(c.builder as never, { seed: 5, device, inChannels: c.x[c.x.length === 3 ? 2 : 1]! }) as unknown as {
        run(x: Tensor, o: object): Promise<{ output: Tensor; hN: Tensor }>; parameters: Map<string, Tensor>;
      };
      const x = Tensor.fromArray(Float32Array.from({ length: c.x.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37)), [...c.x], { device });
      const tape = new GradientTape();
      tape.watch(x);
      const r = await tape.record(() => layer.run(x, c.run));
      const grads = await tape.backward([r.output, r.hN], [Tensor.full(r.output.shape, 0.5, { device }), Tensor.full(r.hN.shape, -0.25, { device })]);
      results.push({ y: r.output.toArray(), dx: grads.get(x)!.toArray(), dw: [...layer.parameters.values()].map((p) => grads.get(p)!.toArray()) });
    }
    const [cpu, gpu] = results as [typeof results[0], typeof results[0]];
    assertClose(t, gpu.y, cpu.y, { abs: 1e-5, rel: 1e-4 }, 'output');
    assertClose(t, gpu.dx, cpu.dx, { abs: 1e-5, rel: 1e-4 }, 'dx');
    gpu.dw.forEach((g, i) => assertClose(t, g, cpu.dw[i]!, { abs: 1e-5, rel: 1e-4 }, `parameter ${i}`));
  }
});

cudaTest('cuda: the affinity U-Net (both up-samplings) trains on affinity targets as on the cpu', async (t) => {
  const D = 16, H = 24, W = 24;
  // Two objects split by a membrane plane across x, and an image that shows it.
  const labels = Float32Array.from({ length: D * H * W }, (_, i) => (i % W === 11 ? 0 : i % W < 11 ? 1 : 2));
  const volume = Float32Array.from(labels, (v, i) => (v === 0 ? -1 : 0.5 + 0.1 * Math.sin(i)));
  for (const upsample of ['transposedConv', 'nearest'] as const) {
    const run = async (device: 'cpu' | 'cuda') => {
      const model = presets.affinityUNet({ fmaps: 2, upsample, seed: 4 }).to(device);
      const losses: number[] = [];
      await new Trainer(model, { loss: { kind: 'binaryCrossEntropy', targets: 'affinities', classWeights: 'inverseFrequency' }, optimizer: { kind: 'adam', lr: 0.01 }, seed: 5 })
        .fit({ data: new VolumeSampler({ volume, shape: [1, D, H, W], labels }), size: [16, 20, 20], steps: 3, onProgress: (p) => losses.push(p.loss) });
      return { losses, weights: [...model.namedParameters().values()].map((p) => p.toArray()) };
    };
    const cpu = await run('cpu'), gpu = await run('cuda');
    assertClose(t, Float32Array.from(gpu.losses), Float32Array.from(cpu.losses), { abs: 1e-5, rel: 1e-4 }, `${upsample}: losses`);
    gpu.weights.forEach((w, i) => assertClose(t, w, cpu.weights[i]!, { abs: 1e-5, rel: 1e-4 }, `${upsample}: parameter ${i}`));
  }
});
