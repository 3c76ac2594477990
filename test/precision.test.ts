// bf16 mixed precision on the CPU: setConvMath('bf16') makes every convolution pass
// (forward, backward data, backward weights; transposed ones too) take its operands
// in bfloat16 and accumulate in float32. The check is exact in kind: a bf16
// convolution equals the float32 convolution of bf16-rounded operands (products of
// bf16 numbers are exact in float32), up to float32 summation order. Then the
// Trainer's precision option (set for a fit, restored after it, refused where the
// machine cannot compute it) and the demo trained both ways.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { convMath, createLayer, GradientTape, layers, loadLayerState, ops, presets, sequential, setConvMath, Tensor, Trainer, VolumeSampler, type ConvOptions, type ConvTransposeOptions, type Progress } from '../lib';
import { runDemo } from '../lib/models/pyramid';
import { syntheticEm } from '../lib/data/synthetic';
import { optimized, reference } from '../lib/testing';
import { roundingFixture } from './helpers';

// Serial: the convolution math is process-wide.
const serial = test.serial;

/** The CPU's answer to setConvMath('bf16'): undefined when it computes bf16, else its message. */
function bf16Refusal(): string | undefined {
  try {
    setConvMath('bf16');
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    setConvMath('fp32');
  }
}
const refusal = bf16Refusal();
const bf16Test = (title: string, fn: (t: ExecutionContext) => void | Promise<void>) =>
  (refusal === undefined ? serial : serial.skip)(refusal === undefined ? title : `${title} (skipped: ${refusal})`, fn);

/** Round to the nearest bfloat16, ties to even (what oneDNN's float32 -> bf16 conversion does). */
function toBf16(values: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < bits.length; ++i) bits[i] = ((bits[i]! + 0x7fff + ((bits[i]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return new Float32Array(bits.buffer);
}

const waves = (n: number, phase: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + phase) * 1.1 + 0.05 * Math.cos(i * 0.31));
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  transposed?: boolean;
  options: ConvOptions & ConvTransposeOptions;
}

const cases: ConvCase[] = [
  { name: '2D, 24 input channels (channels-last path)', x: [2, 24, 12, 12], w: [16, 24, 3, 3], options: { padding: 1 } },
  { name: '2D, 16 channels (blocked path)', x: [1, 16, 10, 10], w: [16, 16, 3, 3], options: {} },
  { name: '3D 3x3x3, dilated', x: [1, 16, 6, 9, 9], w: [16, 16, 3, 3, 3], options: { dilation: [1, 2, 2] } },
  // oneDNN 2.6.3's channels-last bf16 weight gradient was wrong here; segvol uses its blocked layout instead.
  { name: '3D (1, 3, 3) on 40 channels dilated (1, 4, 4) (VD2D3D)', x: [1, 40, 1, 50, 50], w: [60, 40, 1, 3, 3], options: { dilation: [1, 4, 4] } },
  { name: '1x1 (the float32 matrix-product path otherwise)', x: [2, 16, 6, 6], w: [16, 16, 1, 1], options: {} },
  { name: 'transposed, stride 2', x: [1, 16, 5, 5], w: [16, 16, 2, 2], transposed: true, options: { stride: 2 } },
];

const run = (c: ConvCase, x: Tensor, w: Tensor, impl: typeof optimized) => (c.transposed ? impl.convTranspose(x, w, c.options) : impl.conv(x, w, c.options));
const backward = (c: ConvCase, x: Tensor, w: Tensor, dy: Tensor, impl: typeof optimized) =>
  (c.transposed ? impl.convTransposeBackward(x, w, dy, c.options) : impl.convBackward(x, w, dy, c.options));

for (const c of cases) {
  bf16Test(`bf16 convolution, ${c.name}: forward and both gradients equal float32 ones of bf16-rounded operands`, (t) => {
    const xs = waves(count(c.x), 0), ws = waves(count(c.w), 1);
    const x = Tensor.fromArray(xs, c.x), w = Tensor.fromArray(ws, c.w);
    const fp32 = run(c, x, w, optimized).toArray();
    const dyData = waves(fp32.length, 2);
    setConvMath('bf16');
    let y: Float32Array, grads: { dx?: Tensor; dw?: Tensor };
    try {
      t.is(convMath(), 'bf16');
      const out = run(c, x, w, optimized);
      y = out.toArray();
      grads = backward(c, x, w, Tensor.fromArray(dyData, out.shape), optimized);
    } finally {
      setConvMath('fp32');
    }
    const xr = Tensor.fromArray(toBf16(xs), c.x), wr = Tensor.fromArray(toBf16(ws), c.w);
    const expected = run(c, xr, wr, reference);
    const expectedGrads = backward(c, xr, wr, Tensor.fromArray(toBf16(dyData), expected.shape), reference);
    // Float32 summation order only: relative to the sum of magnitudes, which the same
    // operation on absolute values gives.
    const within = (name: string, actual: Float32Array, wanted: Float32Array, magnitude: Float32Array) => {
      let worst = 0;
      for (let i = 0; i < actual.length; ++i) worst = Math.max(worst, Math.abs(actual[i]! - wanted[i]!) / (1e-5 * magnitude[i]! + 1e-6));
      t.true(worst <= 1, `${name}: ${worst.toFixed(2)}x the float32 summation tolerance`);
    };
    const abs = (a: Float32Array, shape: readonly number[]) => Tensor.fromArray(a.map(Math.abs), shape);
    within('output', y, expected.toArray(), run(c, abs(toBf16(xs), c.x), abs(toBf16(ws), c.w), reference).toArray());
    const absGrads = backward(c, abs(toBf16(xs), c.x), abs(toBf16(ws), c.w), abs(toBf16(dyData), expected.shape), reference);
    within('input gradient', grads.dx!.toArray(), expectedGrads.dx!.toArray(), absGrads.dx!.toArray());
    within('weight gradient', grads.dw!.toArray(), expectedGrads.dw!.toArray(), absGrads.dw!.toArray());
    // The rounding happened: bf16 and float32 outputs differ by far more than summation order.
    const moved = y.reduce((m, v, i) => Math.max(m, Math.abs(v - fp32[i]!)), 0);
    t.true(moved > 1e-3, `bf16 moved the output by only ${moved}`);
    t.deepEqual(run(c, x, w, optimized).toArray(), fp32, 'float32 after switching back is bit-identical');
  });
}

bf16Test('bf16 mode leaves thin convolutions (under 16 input or output channels) in float32, bit for bit', (t) => {
  for (const [xs, ws] of [[[2, 5, 12, 12], [16, 5, 3, 3]], [[2, 16, 12, 12], [8, 16, 3, 3]], [[1, 1, 4, 20, 20], [32, 1, 1, 3, 3]]] as const) {
    const x = Tensor.fromArray(waves(count(xs), 0), [...xs]), w = Tensor.fromArray(waves(count(ws), 1), [...ws]);
    const fp32 = ops.conv(x, w, { padding: 'same' }).toArray();
    setConvMath('bf16');
    try {
      t.deepEqual(ops.conv(x, w, { padding: 'same' }).toArray(), fp32, `${xs.join('x')} -> ${ws[0]}`);
    } finally {
      setConvMath('fp32');
    }
  }
});

serial('setConvMath refuses an unknown mode and keeps the one it had', (t) => {
  const error = t.throws(() => setConvMath('fp8' as 'fp32')) as Error & { code?: string };
  t.is(error.code, 'ERR_ARGUMENT');
  t.regex(error.message, /expected 'fp32', 'tf32', 'bf16' or 'fp16', received 'fp8'/);
  t.is(convMath(), 'fp32');
});

serial('fp16 is a cuda mode: a cpu convolution and a cpu Trainer refuse it with ERR_DEVICE', (t) => {
  const x = Tensor.fromArray(waves(2 * 16 * 6 * 6, 0), [2, 16, 6, 6]), w = Tensor.fromArray(waves(16 * 16 * 9, 1), [16, 16, 3, 3]);
  setConvMath('fp16');
  try {
    t.is(convMath(), 'fp16');
    const error = t.throws(() => ops.conv(x, w)) as Error & { code?: string };
    t.is(error.code, 'ERR_DEVICE');
    t.regex(error.message, /conv forward: the convolution math is 'fp16', which only the cuda backend computes; on the cpu use 'bf16'/);
  } finally {
    setConvMath('fp32');
  }
  t.is(ops.conv(x, w).shape.join(), '2,16,4,4', 'fp32 computes again');
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  const error = t.throws(() => new Trainer(model, { precision: 'fp16' })) as Error & { code?: string };
  t.is(error.code, 'ERR_DEVICE');
  t.regex(error.message, /precision 'fp16' is computed by the cuda backend only.*use precision 'bf16'/);
  model.dispose();
});

test('roundToPrecision matches PyTorch bfloat16 and NumPy float16 bit for bit, on the optimized and reference backends', (t) => {
  const f = roundingFixture();
  const x = Tensor.fromArray(f.values, [f.values.length]);
  for (const impl of [optimized, reference]) {
    for (const format of ['bf16', 'fp16'] as const) {
      const got = new Uint32Array(impl.roundToPrecision(x, format).toArray().buffer);
      const want = new Uint32Array(f[format].buffer);
      const wrong = [...got.keys()].filter((i) => got[i] !== want[i]);
      t.deepEqual(wrong.map((i) => [f.values[i], f[format][i]]), [], `${impl === optimized ? 'optimized' : 'reference'} ${format}: (value, expected)`);
    }
    const nan = impl.roundToPrecision(Tensor.fromArray([NaN], [1]), 'bf16').toArray();
    t.true(Number.isNaN(nan[0]), 'NaN stays NaN');
  }
  const error = t.throws(() => ops.roundToPrecision(x, 'fp8' as 'fp16')) as Error & { code?: string };
  t.is(error.code, 'ERR_ARGUMENT');
  t.regex(error.message, /roundToPrecision: expected format 'bf16' or 'fp16', received 'fp8'/);
});

test('roundToPrecision: the gradient passes straight through', async (t) => {
  const x = Tensor.fromArray([0.1, 1.00390625, 70000], [3]);
  const tape = new GradientTape();
  tape.watch(x);
  const y = await tape.record(() => ops.roundToPrecision(x, 'fp16'));
  t.deepEqual([...y.toArray()], [0.0999755859375, 1.00390625, Infinity]);
  const grads = await tape.backward(y, Tensor.fromArray([1, 2, 3], [3]));
  t.deepEqual([...grads.get(x)!.toArray()], [1, 2, 3]);
  tape.dispose();
});

// Loss scaling needs no GPU: with float32 arithmetic a power-of-two scale is exact, and a
// scale past float32's range overflows every gradient.
function scalingModel() {
  return sequential([layers.conv({ out: 4, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.tanh(),
    layers.pixelwise({ units: 2 }), layers.softmax()], { inChannels: 1, seed: 5 });
}

serial('loss scaling: a power-of-two scale trains bit for bit like none; an overflowing one skips the step, keeps the weights and halves', async (t) => {
  const train = async (lossScaling: { initialScale: number } | undefined, steps: number) => {
    const model = scalingModel();
    const progress: Progress[] = [];
    await new Trainer(model, { seed: 3, loss: 'crossEntropy', ...(lossScaling ? { lossScaling } : {}) })
      .fit({ data: tinyData(), size: [1, 8, 8], steps, onProgress: (p) => progress.push(p) });
    return { weights: [...model.parameters().values()].map((p) => p.toArray()), progress };
  };
  const plain = await train(undefined, 3);
  const scaled = await train({ initialScale: 1024 }, 3);
  t.deepEqual(scaled.weights, plain.weights, 'scaled by 1024 and unscaled: the same weights');
  t.deepEqual(scaled.progress.map((p) => p.loss), plain.progress.map((p) => p.loss));
  t.deepEqual(scaled.progress.map((p) => [p.lossScale, p.skipped]), [[1024, false], [1024, false], [1024, false]]);
  t.is(plain.progress[0]!.lossScale, undefined, 'no scaling unless asked (or fp16)');
  const initial = [...scalingModel().parameters().values()].map((p) => p.toArray());
  const overflow = await train({ initialScale: 1e39 }, 2);  // Infinity in float32, then 5e38: Infinity too
  t.deepEqual(overflow.progress.map((p) => [p.lossScale, p.skipped]), [[1e39, true], [5e38, true]]);
  t.deepEqual(overflow.weights, initial, 'skipped steps leave the weights');
  const error = t.throws(() => new Trainer(scalingModel(), { lossScaling: { initialScale: 0 } })) as Error & { code?: string };
  t.is(error.code, 'ERR_ARGUMENT');
  t.regex(error.message, /lossScaling.initialScale: expected a positive finite number, received the number 0/);
});

// oneDNN takes its instruction sets from DNNL_MAX_CPU_ISA: capped below AVX512-BF16,
// this machine stands for one without it.
test('without AVX512-BF16, setConvMath and Trainer precision bf16 are refused with ERR_DEVICE and the mode stays', (t) => {
  const script = `
    const s = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const out = {};
    try { s.setConvMath('bf16'); out.set = 'accepted'; } catch (e) { out.set = [e.code, e.message]; }
    out.mode = s.convMath();
    // Where a GPU could compute bf16 the mode is accepted, and cpu convolutions refuse it.
    const x = s.Tensor.full([1, 16, 4, 4], 1), w = s.Tensor.full([16, 16, 3, 3], 1);
    try { s.ops.conv(x, w); out.conv = 'computed'; } catch (e) { out.conv = [e.code, e.message]; }
    s.setConvMath('fp32');
    out.cuda = s.backends().find((b) => b.name === 'cuda').available;
    const model = s.presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
    try { new s.Trainer(model, { precision: 'bf16' }); out.trainer = 'accepted'; } catch (e) { out.trainer = [e.code, e.message]; }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--require=ts-node/register', '-e', script], {
    encoding: 'utf8', env: { ...process.env, DNNL_MAX_CPU_ISA: 'AVX512_CORE' }, cwd: path.join(__dirname, '..'), timeout: 120_000,
  });
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { set: [string, string] | string; mode: string; conv: [string, string] | string; trainer: [string, string]; cuda: boolean };
  if (out.cuda) {
    t.is(out.set, 'accepted');
    t.is(out.conv[0], 'ERR_DEVICE');
    t.regex(out.conv[1], /conv forward: the convolution math is 'bf16', but this CPU .*AVX512-BF16/);
  } else {
    t.is(out.set[0], 'ERR_DEVICE');
    t.regex(out.set[1], /AVX512-BF16/);
    t.regex(out.set[1], /the mode stays 'fp32'/);
    t.is(out.mode, 'fp32');
    t.is(out.conv, 'computed', 'the mode stayed fp32');
  }
  t.is(out.trainer[0], 'ERR_DEVICE');
  t.regex(out.trainer[1], /Trainer: precision 'bf16' needs AVX512-BF16: this CPU/);
});

function tinyData(): VolumeSampler {
  const em = syntheticEm({ depth: 8, height: 24, width: 24, seed: 3 });
  return new VolumeSampler({ volume: em.image, shape: [1, 8, 24, 24], labels: em.labels });
}

bf16Test('bf16 mode rounds the matrix products of an LSTM (16+ features in and out) to bf16 operands; its gates stay float32', async (t) => {
  // One step from a zero state: the output is the cell applied to x W_ih^T + biases, so in bf16 mode
  // it equals the float32 layer fed bf16-rounded x and W_ih (the recurrent product is of zeros).
  const build = () => createLayer(layers.lstm({ inputSize: 32, hiddenSize: 16 }), { seed: 3 });
  const layer = build();
  const x = Tensor.fromArray(waves(3 * 32, 0.4), [1, 3, 32]);
  const state = new Map([...layer.parameters].map(([name, p]) => [name, { shape: [...p.shape], data: p.toArray() }]));
  const rounded = build();
  loadLayerState(rounded, new Map([...state].map(([name, v]) => [name, name.startsWith('weight_ih') ? { shape: v.shape, data: toBf16(v.data) } : v])));
  const exact = (await layer.run(x)).output.toArray();
  const ofRounded = (await rounded.run(Tensor.fromArray(toBf16(x.toArray()), x.shape))).output.toArray();
  setConvMath('bf16');
  let bf16: Float32Array;
  try {
    bf16 = (await layer.run(x)).output.toArray();
  } finally {
    setConvMath('fp32');
  }
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  t.true(maxDiff(bf16, ofRounded) < 2e-6, `bf16 against float32 of rounded operands: ${maxDiff(bf16, ofRounded)}`);
  t.true(maxDiff(bf16, exact) > 1e-5, `the products were rounded: ${maxDiff(bf16, exact)} from float32`);
});

bf16Test('Trainer precision bf16 computes the fit in bf16 and restores the mode after it, also after a failed fit', async (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [4], fc: [], kernel: 3, seed: 1 });
  const trainer = new Trainer(model, { precision: 'bf16', seed: 1 });
  const seen: string[] = [];
  await trainer.fit({ data: tinyData(), size: [4, 12, 12], steps: 2, onProgress: () => seen.push(convMath()) });
  t.deepEqual(seen, ['bf16', 'bf16']);
  t.is(convMath(), 'fp32');
  await t.throwsAsync(trainer.fit({ data: tinyData(), size: [4, 12, 12], steps: 3, onProgress: () => { throw new Error('stop here'); } }), { message: 'stop here' });
  t.is(convMath(), 'fp32', 'a fit that threw restores the mode too');
  model.dispose();
});

serial('Trainer precision: an unknown value is refused, naming the choices', (t) => {
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [2], fc: [], kernel: 3, seed: 1 });
  const error = t.throws(() => new Trainer(model, { precision: 'fp8' as 'fp32' })) as Error & { code?: string };
  t.is(error.code, 'ERR_ARGUMENT');
  t.regex(error.message, /Trainer: precision: expected 'fp32', 'bf16', 'tf32' or 'fp16', received the string 'fp8'/);
  model.dispose();
});

// The check is 300 steps (npm run bench -- precision); here fewer, with a looser tolerance.
bf16Test('the demo trained in bf16 ends near the float32 run: loss and held-out pixel error', async (t) => {
  const steps = 60;
  const fp32 = await runDemo({ steps, out: path.join(os.tmpdir(), `segvol-precision-fp32-${process.pid}`) });
  const bf16 = await runDemo({ steps, precision: 'bf16', out: path.join(os.tmpdir(), `segvol-precision-bf16-${process.pid}`) });
  t.is(convMath(), 'fp32');
  t.log(`after ${steps} steps: mean loss of the last 20 ${fp32.meanLossLast20.toFixed(4)} (fp32) vs ${bf16.meanLossLast20.toFixed(4)} (bf16); ` +
    `pixel error ${(100 * fp32.pixelError).toFixed(2)}% vs ${(100 * bf16.pixelError).toFixed(2)}%`);
  t.true(Math.abs(bf16.meanLossLast20 - fp32.meanLossLast20) <= 0.1 * fp32.meanLossLast20, 'loss within 10% of float32');
  t.true(Math.abs(bf16.pixelError - fp32.pixelError) <= 0.02, 'pixel error within 2 points');
  t.true(bf16.meanLossLast20 !== fp32.meanLossLast20, 'the two runs computed differently');
});
