// Half precision on the CUDA backend: setConvMath('bf16') and ('fp16') make a cuda
// convolution of 16+ channels in and out run on 16-bit copies of its operands, made
// by the conversion kernels (native/cuda/precision.cu), accumulate in float32 and
// write a 16-bit result, as cuDNN's PSEUDO_BFLOAT16 and PSEUDO_HALF configurations do.
// On the emulated build the conversions run as CUDA kernels and the products on the
// CPU, so these tests pin the arithmetic; on a GPU (npm run test:gpu) they check
// cuDNN against it. Then the Trainer's fp16 precision with dynamic loss scaling.
// Serial: the convolution math is process-wide. Tests that need no GPU are in
// test/precision.test.ts.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backends, convMath, layers, ops, sequential, setConvMath, Tensor, Trainer, type Progress } from '../lib';
import type { Random } from '../lib/core/random';
import { optimized, reference } from '../lib/testing';
import { cudaTest, roundingFixture } from './helpers';

const cuda = backends().find((b) => b.name === 'cuda')!;
const serialCuda = (title: string, fn: (t: ExecutionContext) => void | Promise<void>) => {
  // cudaTest registers a concurrent test; these change the process-wide mode, so run one at a time.
  cudaTest(title, async (t) => {
    // Take the queue's place before waiting, so each test waits for the one before it.
    const before = lock;
    let release!: () => void;
    lock = new Promise((resolve) => { release = resolve; });
    await before;
    try {
      await fn(t);
    } finally {
      setConvMath('fp32');
      release();
    }
  });
};
let lock: Promise<void> = Promise.resolve();

const waves = (n: number, phase: number, amplitude = 1.1) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + phase) * amplitude + 0.05 * Math.cos(i * 0.31));
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const formats = [{ mode: 'bf16', mantissa: 7 }, { mode: 'fp16', mantissa: 10 }] as const;

serialCuda('roundToPrecision on cuda (the conversion kernels) matches PyTorch bfloat16 and NumPy float16 bit for bit', (t) => {
  const f = roundingFixture();
  const x = Tensor.fromArray(f.values, [f.values.length], { device: 'cuda' });
  for (const format of ['bf16', 'fp16'] as const) {
    const got = new Uint32Array(ops.roundToPrecision(x, format).toArray().buffer);
    const want = new Uint32Array(f[format].buffer);
    const wrong = [...got.keys()].filter((i) => got[i] !== want[i]);
    t.deepEqual(wrong.map((i) => [f.values[i], f[format][i]]), [], `${format}: values rounded differently (value, expected)`);
  }
  const nan = ops.roundToPrecision(Tensor.fromArray([NaN, -NaN], [2], { device: 'cuda' }), 'fp16').toArray();
  t.true(Number.isNaN(nan[0]) && Number.isNaN(nan[1]), 'NaN stays NaN');
});

interface ConvCase { name: string; x: number[]; w: number[]; padding: number | 'same'; dilation?: number[] }
const convCases: ConvCase[] = [
  { name: '2D 3x3, 16 -> 24 channels', x: [2, 16, 10, 10], w: [24, 16, 3, 3], padding: 1 },
  { name: '3D 3x3x3 dilated, 16 -> 16', x: [1, 16, 5, 8, 8], w: [16, 16, 3, 3, 3], padding: 'same', dilation: [1, 2, 2] },
  { name: '1x1, 32 -> 16 (the recurrent products)', x: [3, 32, 4, 4], w: [16, 32, 1, 1], padding: 0 },
];

for (const format of formats) {
  for (const c of convCases) {
    serialCuda(`${format.mode} cuda convolution, ${c.name}: forward and both gradients are the float32 ones of rounded operands, rounded`, (t) => {
      const options = { padding: c.padding, ...(c.dilation ? { dilation: c.dilation } : {}) };
      const xs = waves(count(c.x), 0), ws = waves(count(c.w), 1, 0.3);
      const onCpu = (a: Float32Array, shape: readonly number[]) => Tensor.fromArray(a, shape);
      const round = (a: Float32Array, shape: readonly number[]) => ops.roundToPrecision(onCpu(a, shape), format.mode).toArray();
      const outShape = optimized.conv(onCpu(xs, c.x), onCpu(ws, c.w), options).shape;
      const dys = waves(count(outShape), 2);
      setConvMath(format.mode);
      const x = Tensor.fromArray(xs, c.x, { device: 'cuda' }), w = Tensor.fromArray(ws, c.w, { device: 'cuda' });
      const y = optimized.conv(x, w, options).toArray();
      const grads = optimized.convBackward(x, w, Tensor.fromArray(dys, outShape, { device: 'cuda' }), options);
      setConvMath('fp32');
      // The expectation: float64 reference convolutions of the rounded operands.
      const xr = onCpu(round(xs, c.x), c.x), wr = onCpu(round(ws, c.w), c.w), dyr = onCpu(round(dys, outShape), outShape);
      const abs = (a: Tensor) => Tensor.fromArray(a.toArray().map(Math.abs), a.shape);
      const expected = reference.conv(xr, wr, options);
      const magnitude = reference.conv(abs(xr), abs(wr), options).toArray();
      const expectedGrads = reference.convBackward(xr, wr, dyr, options);
      const magnitudeGrads = reference.convBackward(abs(xr), abs(wr), abs(dyr), options);
      // Within one unit of the format's rounding of the result, plus float32 summation order.
      const check = (name: string, got: Float32Array, want: Float32Array, mag: Float32Array) => {
        let worst = 0;
        for (let i = 0; i < got.length; ++i) {
          worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (2 ** -format.mantissa * Math.abs(want[i]!) + 1e-5 * mag[i]! + 1e-6));
        }
        t.true(worst <= 1, `${name}: ${worst.toFixed(2)}x the bound`);
        const representable = round(got, [got.length]);
        t.true(got.every((v, i) => v === representable[i]), `${name}: the result is in ${format.mode} (cuDNN writes it so)`);
      };
      check('output', y, expected.toArray(), magnitude);
      check('input gradient', grads.dx!.toArray(), expectedGrads.dx!.toArray(), magnitudeGrads.dx!.toArray());
      check('weight gradient', grads.dw!.toArray(), expectedGrads.dw!.toArray(), magnitudeGrads.dw!.toArray());
      const fp32 = optimized.conv(x, w, options).toArray();
      t.true(y.some((v, i) => Math.abs(v - fp32[i]!) > 1e-4 * (1 + Math.abs(fp32[i]!))), `${format.mode} changed the output`);
    });
  }
}

serialCuda('half modes leave thin cuda convolutions (under 16 channels in or out) in float32, bit for bit', (t) => {
  for (const [xs, ws] of [[[2, 5, 8, 8], [16, 5, 3, 3]], [[2, 16, 8, 8], [8, 16, 3, 3]]] as const) {
    const x = Tensor.fromArray(waves(count(xs), 0), [...xs], { device: 'cuda' }), w = Tensor.fromArray(waves(count(ws), 1), [...ws], { device: 'cuda' });
    const fp32 = ops.conv(x, w, { padding: 'same' }).toArray();
    for (const { mode } of formats) {
      setConvMath(mode);
      t.deepEqual(ops.conv(x, w, { padding: 'same' }).toArray(), fp32, `${mode}, ${xs.join('x')} -> ${ws[0]}`);
      setConvMath('fp32');
    }
  }
});

serialCuda('fp16: a convolution result past 65504 is infinite, as half precision holds it; bf16 keeps it finite', (t) => {
  const x = Tensor.full([1, 16, 4, 4], 100, { device: 'cuda' }), w = Tensor.full([16, 16, 3, 3], 10, { device: 'cuda' });
  setConvMath('fp16');
  const half = ops.conv(x, w, { padding: 1 }).toArray();
  setConvMath('bf16');
  const bf16 = ops.conv(x, w, { padding: 1 }).toArray();
  setConvMath('fp32');
  // Interior outputs: 16 * 9 * 1000 = 144000 > 65504.
  t.true(half.includes(Infinity), 'fp16 overflowed to infinity');
  t.true(bf16.every(Number.isFinite), 'bf16 has float32 range');
  t.true(bf16.includes(144384), `144000 in bf16 (8 significant bits) is 144384: ${bf16.slice(5, 7)}`);
});

// A small all-16-channel network, so every convolution computes in half precision.
function halfNetwork() {
  return sequential([layers.conv({ out: 16, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.tanh(),
    layers.conv({ out: 16, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.tanh(),
    layers.pixelwise({ units: 2 }), layers.softmax()], { inChannels: 16, seed: 5 }).to('cuda');
}
const halfData = {
  inputs: { input: 16 },
  sample: (random: Random) => ({
    inputs: { input: Float32Array.from({ length: 16 * 36 }, (_, i) => Math.sin(i * 0.7) + 0.3 * random.next()) },
    labels: Float32Array.from({ length: 36 }, (_, i) => (i % 6 < 3 ? 1 : 0)),
  }),
};

serialCuda('Trainer precision fp16: loss scaling skips overflowing steps without touching the weights, halves and grows the scale', async (t) => {
  const model = halfNetwork();
  const before = [...model.parameters().values()].map((p) => p.toArray());
  const seen: Array<Progress & { mode: string; changed: boolean }> = [];
  let last = before;
  const trainer = new Trainer(model, { precision: 'fp16', optimizer: { kind: 'adam', lr: 1e-3 }, loss: 'crossEntropy', seed: 2,
    lossScaling: { initialScale: 2 ** 40, growthInterval: 3 } });
  const checkpoint = path.join(os.tmpdir(), `segvol-fp16-${process.pid}.safetensors`);
  await trainer.fit({
    data: halfData, size: [1, 6, 6], steps: 40, checkpoint: { path: checkpoint },
    onProgress: (p) => {
      const now = [...model.parameters().values()].map((q) => q.toArray());
      seen.push({ ...p, mode: convMath(), changed: now.some((a, k) => a.some((v, i) => v !== last[k]![i])) });
      last = now;
    },
  });
  t.is(convMath(), 'fp32', 'the mode is restored after the fit');
  t.true(seen.every((p) => p.mode === 'fp16'));
  t.true(seen[0]!.skipped === true && seen[0]!.lossScale === 2 ** 40, 'a scale of 2^40 overflows half precision');
  t.true(seen.every((p) => p.changed === !p.skipped), 'skipped steps leave the weights, the others change them');
  // The scale follows the rule: halve on overflow, double after 3 clean steps in a row.
  let scale = 2 ** 40, clean = 0;
  for (const p of seen) {
    t.is(p.lossScale, scale, `step ${p.step}`);
    if (p.skipped) {
      scale /= 2;
      clean = 0;
    } else if (++clean === 3) {
      scale *= 2;
      clean = 0;
    }
  }
  const updates = seen.filter((p) => !p.skipped);
  t.true(updates.length >= 10, `${updates.length} of 40 steps updated`);
  t.true(updates.every((p) => Number.isFinite(p.loss) && Number.isFinite(p.gradNorm)));
  t.log(`skipped ${seen.length - updates.length} of ${seen.length}; scale at the end ${scale}; loss ${seen[0]!.loss.toFixed(4)} -> ${seen.at(-1)!.loss.toFixed(4)}`);
  // The checkpoint keeps the scaler: a resumed trainer goes on with the saved scale.
  const resumed = new Trainer(halfNetwork(), { precision: 'fp16', optimizer: { kind: 'adam', lr: 1e-3 }, loss: 'crossEntropy', seed: 2,
    lossScaling: { initialScale: 2 ** 40, growthInterval: 3 } });
  resumed.resume(checkpoint);
  const next: Progress[] = [];
  await resumed.fit({ data: halfData, size: [1, 6, 6], steps: 41, onProgress: (p) => next.push(p) });
  t.is(next.length, 1);
  t.is(next[0]!.lossScale, scale, 'the resumed run starts from the saved scale');
  for (const f of [checkpoint, `${checkpoint}.optimizer`]) fs.rmSync(f, { force: true });
});

serialCuda('Trainer precision bf16 on cuda: the fit computes in bf16, with no loss scaling', async (t) => {
  const model = halfNetwork();
  const seen: Progress[] = [];
  const modes: string[] = [];
  await new Trainer(model, { precision: 'bf16', loss: 'crossEntropy' }).fit({
    data: halfData, size: [1, 6, 6], steps: 2, onProgress: (p) => { seen.push(p); modes.push(convMath()); },
  });
  t.deepEqual(modes, ['bf16', 'bf16']);
  t.true(seen.every((p) => p.lossScale === undefined && Number.isFinite(p.loss)));
});

// The emulator stands for an older GPU when told to (SEGVOL_EMULATED_COMPUTE_CAPABILITY).
(cuda.available && cuda.detail.includes('emulated') ? test : test.skip)(
  `a GPU older than Ampere refuses bf16 convolutions (ERR_DEVICE, naming fp16) and computes fp16${cuda.detail.includes('emulated') ? '' : ' (skipped: needs the emulated build)'}`, (t) => {
    const script = `
    const s = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const x = s.Tensor.full([1, 16, 4, 4], 1, { device: 'cuda' }), w = s.Tensor.full([16, 16, 3, 3], 0.5, { device: 'cuda' });
    const out = {};
    s.setConvMath('bf16');
    try { s.ops.conv(x, w); out.bf16 = 'computed'; } catch (e) { out.bf16 = [e.code, e.message]; }
    s.setConvMath('fp16');
    out.fp16 = s.ops.conv(x, w).toArray()[0];
    console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['--require=ts-node/register', '-e', script], {
      encoding: 'utf8', env: { ...process.env, SEGVOL_EMULATED_COMPUTE_CAPABILITY: '7.5' }, cwd: path.join(__dirname, '..'), timeout: 120_000,
    });
    t.is(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bf16: [string, string]; fp16: number };
    t.is(out.bf16[0], 'ERR_DEVICE');
    t.regex(out.bf16[1], /conv forward: the convolution math is 'bf16', which needs a GPU of compute capability 8\.0 or newer; this one is 7\.5; use 'fp16'/);
    t.is(out.fp16, 16 * 9 * 0.5);
  });
