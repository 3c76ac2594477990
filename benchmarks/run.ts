// npm run bench -- <suite> [--repeats N]
// npm run bench -- pyramid --gpu [--tf32] [--smoke]: the GPU cases (segvol on cuda
// vs PyTorch eager with cuDNN, same convolution math); --smoke runs the same code
// on tiny shapes without the peer (checks the suite on the emulated build).
// Runs segvol and its PyTorch peer (benchmarks/peer_torch.py) in the same run,
// same shapes, same thread count, and prints one JSON line per case:
//   {"case", "segvol_ms", "torch_ms", "ratio", "gflops"}   ratio = torch_ms / segvol_ms
// Timings are medians after two warm-up runs. Without PyTorch, torch_ms and ratio
// are null and the reason is printed once.
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import {
  backends, computeLoss, GradientTape, metrics, normalizeSlices, ops, Optimizer, presets, Random, readVolume, setConvMath, synchronize, Tensor,
  Trainer, VolumeSampler, writeVolume, readSafetensors, type LossOptions, type ModelBase, type ModelInput, type ClstmWeights, type Device, type MemorySchedule, type SavedState, type Sequential,
} from '../lib';
import { optimized } from '../lib/testing';
import { writeNpy } from '../lib/io/npy';

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  padding: number;
}

const threads = Number(process.env.OMP_NUM_THREADS ?? 2);
process.env.OMP_NUM_THREADS = String(threads);

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const flags = new Set(process.argv.slice(2).filter((a) => a.startsWith('--')));

function randomTensor(shape: number[], device: Device = 'cpu', scale = 1): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; ++i) data[i] = (Math.random() * 2 - 1) * scale;
  return Tensor.fromArray(data, shape, { device });
}

/** Forward + backward-data + backward-weights multiply-adds, as FLOPs. */
function convFlops(c: ConvCase): number {
  const spatialOut = c.x.slice(2).reduce((a, b) => a * b, 1);  // 'same' padding
  const kernel = c.w.slice(2).reduce((a, b) => a * b, 1);
  return 3 * 2 * c.x[0]! * c.w[0]! * c.w[1]! * kernel * spatialOut;
}

function timeConv(c: ConvCase, repeats: number): number {
  const x = randomTensor(c.x);
  const w = randomTensor(c.w);
  const dy = Tensor.full([c.x[0]!, c.w[0]!, ...c.x.slice(2)], 1);  // 'same' padding: output size = input size
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; ++i) {
    const start = process.hrtime.bigint();
    const y = ops.conv(x, w, { padding: c.padding });
    const g = optimized.convBackward(x, w, dy, { padding: c.padding }, { bias: false });
    const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    for (const t of [y, g.dx!, g.dw!]) t.dispose();
    if (i >= 2) times.push(elapsed);
  }
  for (const t of [x, w, dy]) t.dispose();
  return median(times);
}

function runPeer(job: object): Map<string, number> | string {
  const python = process.env.PYTHON ?? 'python3';
  const r = spawnSync(python, [path.join(__dirname, 'peer_torch.py')], {
    input: JSON.stringify(job), encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) return (r.stderr || String(r.error)).trim().split('\n').slice(-1)[0] ?? 'peer failed';
  const out = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) {
    const parsed = JSON.parse(line) as { case: string; torch_ms: number };
    out.set(parsed.case, parsed.torch_ms);
  }
  return out;
}

interface PyramidCase {
  name: string;
  x: number[];
  hidden: number;
  kernel: number;
}

/** Forward + backward-data + backward-weights FLOPs of all six directions' convolutions. */
function pyramidFlops(c: PyramidCase): number {
  const [n, channels, ...spatial] = c.x as [number, number, number, number, number];
  const o4 = 4 * c.hidden;
  const k2 = c.kernel * c.kernel;
  const voxels = spatial.reduce((a, b) => a * b, 1);
  let total = 0;
  for (const steps of spatial) {
    const plane = voxels / steps;
    total += 2 * (2 * o4 * channels * k2 * voxels + 2 * o4 * c.hidden * k2 * (steps - 1) * plane);
  }
  return 3 * n * total;
}

async function timePyramid(c: PyramidCase, repeats: number, device: Device = 'cpu'): Promise<number> {
  const x = randomTensor(c.x, device);
  const weights: ClstmWeights[] = [0, 1, 2, 3, 4, 5].map(() => ({
    wx: randomTensor([4 * c.hidden, c.x[1]!, c.kernel, c.kernel], device),
    bx: randomTensor([4 * c.hidden], device),
    wh: randomTensor([4 * c.hidden, c.hidden, c.kernel, c.kernel], device),
    bh: randomTensor([4 * c.hidden], device),
  }));
  const dy = Tensor.full([c.x[0]!, c.hidden, ...c.x.slice(2)], 1, { device });
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; ++i) {
    const start = process.hrtime.bigint();
    const r = await ops.pyramidLstmAsync(x, weights);
    const g = await optimized.pyramidLstmBackwardAsync(r.saved, dy);
    synchronize(device);  // GPU work is queued asynchronously: wait before reading the clock
    const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    r.y.dispose();
    r.saved.dispose();
    g.dx.dispose();
    for (const d of g.grads) for (const t of Object.values(d)) t.dispose();
    if (i >= 2) times.push(elapsed);
  }
  return median(times);
}

/** One training step as the trainer runs it: forward and loss on a GradientTape, backward, RMSprop update. */
async function tapeStep(model: Sequential, optimizer: Optimizer, x: Tensor, labels: Tensor, schedule: MemorySchedule = {}): Promise<void> {
  const tape = new GradientTape();
  const loss = await tape.record(async () => {
    const y = await model.forward(x, { training: true, schedule });
    const l = ops.loss(y, labels, { kind: 'squaredError' });
    y.dispose();
    return l;
  });
  const grads = model.gradientsByName(await tape.backward(loss));
  tape.dispose();
  loss.dispose();
  optimizer.step(model.parameters(), grads, 1e-4);
  for (const g of grads.values()) g.dispose();
}

/**
 * The same step as segvol ran it before the tape: each layer's op and its
 * hand-written backward called directly (the paper network's layer types only).
 * The benchmark's baseline for the tape's overhead.
 */
async function handWrittenStep(model: Sequential, optimizer: Optimizer, x: Tensor, labels: Tensor): Promise<void> {
  const params = model.parameters();
  const p = (i: number, name: string) => params.get(`layers.${i}.${name}`)!;
  const kept: Array<{ x: Tensor; y: Tensor; saved?: SavedState }> = [];
  let current = x;
  for (let i = 0; i < model.layers.length; ++i) {
    const type = model.layers[i]!.type;
    let y: Tensor;
    let saved: SavedState | undefined;
    if (type === 'pyramidLstm') {
      const weights = [0, 1, 2, 3, 4, 5].map((d) => ({ wx: p(i, `dir${d}.wx`), bx: p(i, `dir${d}.bx`), wh: p(i, `dir${d}.wh`), bh: p(i, `dir${d}.bh`) }));
      const r = await ops.pyramidLstmAsync(current, weights);
      y = r.y;
      saved = r.saved;
    } else if (type === 'pixelwise') {
      y = ops.pixelwise(current, p(i, 'weight'), p(i, 'bias'));
    } else if (type === 'tanh') {
      y = ops.tanh(current);
    } else {
      y = ops.softmax(current);
    }
    kept.push({ x: current, y, ...(saved ? { saved } : {}) });
    current = y;
  }
  const loss = computeLoss('optimized', current, labels, { kind: 'squaredError' });
  const grads = new Map<string, Tensor>();
  let dy = loss.grad;
  for (let i = model.layers.length - 1; i >= 0; --i) {
    const type = model.layers[i]!.type;
    const k = kept[i]!;
    let dx: Tensor;
    if (type === 'pyramidLstm') {
      const g = await optimized.pyramidLstmBackwardAsync(k.saved!, dy);
      g.grads.forEach((d, j) => {
        grads.set(`layers.${i}.dir${j}.wx`, d.dwx).set(`layers.${i}.dir${j}.bx`, d.dbx).set(`layers.${i}.dir${j}.wh`, d.dwh).set(`layers.${i}.dir${j}.bh`, d.dbh);
      });
      k.saved!.dispose();
      dx = g.dx;
    } else if (type === 'pixelwise') {
      const g = optimized.pixelwiseBackward(k.x, p(i, 'weight'), dy);
      grads.set(`layers.${i}.weight`, g.dw!).set(`layers.${i}.bias`, g.db!);
      dx = g.dx!;
    } else if (type === 'tanh') {
      dx = optimized.activationBackward('tanh', k.y, k.y, dy);
    } else {
      dx = optimized.softmaxBackward(k.y, dy);
    }
    dy.dispose();
    dy = dx;
  }
  dy.dispose();
  for (const k of kept) k.y.dispose();
  optimizer.step(params, grads, 1e-4);
  for (const g of grads.values()) g.dispose();
}

function report(name: string, segvolMs: number, torchMs: number | null, flops: number): void {
  console.log(JSON.stringify({
    case: name,
    segvol_ms: Number(segvolMs.toFixed(2)),
    torch_ms: torchMs === null ? null : Number(torchMs.toFixed(2)),
    ratio: torchMs === null ? null : Number((torchMs / segvolMs).toFixed(2)),
    gflops: Number((flops / segvolMs / 1e6).toFixed(1)),
  }));
}

/** Median ms of fn after two warm-up runs, with the device drained before each clock read. */
async function timeOnDevice(fn: () => Promise<void>, repeats: number, device: Device): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; ++i) {
    synchronize(device);
    const start = process.hrtime.bigint();
    await fn();
    synchronize(device);
    if (i >= 2) times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

/**
 * Issue 4's GPU cases: one PyraMiD-LSTM layer (C=25, O=32, k=7) on 20x256x256,
 * forward + backward; a training step of the paper network on a 20x256x256
 * sub-volume (forward, loss, backward, RMSprop update); inference of a 48x240x240
 * volume in one window. PyTorch runs the same in eager mode on the same GPU.
 */
async function gpuPyramid(repeats: number, smoke: boolean, tf32: boolean): Promise<void> {
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (!cuda.available) {
    console.error(`--gpu needs the cuda backend, which is unavailable here: ${cuda.reason}`);
    process.exitCode = 1;
    return;
  }
  const device: Device = 'cuda';
  setConvMath(tf32 ? 'tf32' : 'fp32');
  console.error(`device: ${cuda.detail}; convolutions in ${tf32 ? 'TF32' : 'FP32'}${smoke ? '; smoke run (tiny shapes, no peer)' : ''}`);
  const layer: PyramidCase = smoke
    ? { name: 'smoke: pyramidLstm C=3 O=4 k=3 on 4x12x12', x: [1, 3, 4, 12, 12], hidden: 4, kernel: 3 }
    : { name: 'gpu: pyramidLstm C=25 O=32 k=7 on 20x256x256', x: [1, 25, 20, 256, 256], hidden: 32, kernel: 7 };
  const net = smoke
    ? { hidden: [4, 6], fc: [5], kernel: 3, size: [4, 12, 12], inference: [6, 12, 12] }
    : { hidden: [16, 32, 64], fc: [25, 45], kernel: 7, size: [20, 256, 256], inference: [48, 240, 240] };
  const trainName = `${smoke ? 'smoke' : 'gpu'}: paper network training step on ${net.size.join('x')}`;
  const inferName = `${smoke ? 'smoke' : 'gpu'}: paper network inference of ${net.inference.join('x')}`;
  const peerCases = [
    { kind: 'layer', ...layer },
    { kind: 'train', name: trainName, hidden: net.hidden, fc: net.fc, kernel: net.kernel, size: net.size },
    { kind: 'inference', name: inferName, hidden: net.hidden, fc: net.fc, kernel: net.kernel, size: net.inference },
  ];
  // The peer runs first and exits, so its GPU memory is free when segvol runs.
  const peer = smoke ? 'smoke run' : runPeer({ suite: 'gpu', device: 'cuda', tf32, threads, repeats, cases: peerCases });
  if (typeof peer === 'string' && !smoke) console.error(`torch peer unavailable (${peer})`);
  const peerMs = (name: string) => (typeof peer === 'string' ? null : peer.get(name) ?? null);
  const line = (name: string, ms: number, extra: Record<string, unknown>) => {
    const torchMs = peerMs(name);
    console.log(JSON.stringify({ case: name, device: cuda.detail, math: tf32 ? 'tf32' : 'fp32', segvol_ms: Number(ms.toFixed(2)),
      torch_ms: torchMs === null ? null : Number(torchMs.toFixed(2)), ratio: torchMs === null ? null : Number((torchMs / ms).toFixed(2)), ...extra }));
  };

  const layerMs = await timePyramid(layer, repeats, device);
  line(layer.name, layerMs, { gflops: Number((pyramidFlops(layer) / layerMs / 1e6).toFixed(1)), target_ratio: 2 });

  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: net.hidden, fc: net.fc, kernel: net.kernel, seed: 1 }).to(device);
  const optimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const x = randomTensor([1, 1, ...net.size], device);
  const labels = Tensor.fromArray(Float32Array.from({ length: net.size.reduce((a, b) => a * b, 1) }, () => (Math.random() < 0.3 ? 1 : 0)), [1, ...net.size], { device });
  const trainMs = await timeOnDevice(() => tapeStep(model, optimizer, x, labels), repeats, device);
  line(trainName, trainMs, { target_ms: 500 });
  // Device memory of the same step: all directions at a time with the gates kept (the
  // default), and the 12 GB schedule (gates recomputed, one direction at a time).
  const { estimateStepMemory } = await import('../lib/training/memory');
  const { memoryStats, resetPeakMemory } = await import('../lib');
  const gib = (b: number) => Number((b / 2 ** 30).toFixed(3));
  for (const schedule of [{}, { recompute: true, scanGroups: 1 }] as MemorySchedule[]) {
    await tapeStep(model, optimizer, x, labels, schedule);  // warm: algorithms chosen, workspace grown
    synchronize(device);
    resetPeakMemory(device);
    const stepMs = await timeOnDevice(() => tapeStep(model, optimizer, x, labels, schedule), 1, device);
    const predicted = estimateStepMemory(model, [1, 1, ...net.size], { schedule, device })!;
    console.log(JSON.stringify({
      case: `${trainName}: device memory, ${schedule.recompute ? 'recomputed gates, one direction at a time' : 'gates kept, default scan groups'}`,
      device: cuda.detail, predicted_gib: gib(predicted.peakBytes), tensor_peak_gib: gib(memoryStats().cuda.peakBytes), step_ms: Number(stepMs.toFixed(1)),
      predicted_bytes: predicted.peakBytes, tensor_peak_bytes: memoryStats().cuda.peakBytes,
    }));
  }

  const volume = randomTensor([1, 1, ...net.inference], device);
  const inferMs = await timeOnDevice(async () => {
    (await model.predict(volume)).dispose();
  }, repeats, device);
  line(inferName, inferMs, { target_ms: 2000 });
  for (const t of [x, labels, volume]) t.dispose();
  model.dispose();
  setConvMath('fp32');
}

/**
 * The accuracy cost of TF32 convolutions on the PyraMiD-LSTM goldens: the largest
 * error against PyTorch's float64 result (y, dx and every weight gradient),
 * relative to the largest reference value, in FP32 and in TF32. On the emulated
 * build the TF32 rounding is emulated (operands rounded to TF32, float32 sums).
 */
async function tf32Accuracy(): Promise<void> {
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (!cuda.available) {
    console.error(`the tf32 suite needs the cuda backend (real or emulated: npm run build:native -- --emulated, SEGVOL_ADDON=...): ${cuda.reason}`);
    process.exitCode = 1;
    return;
  }
  const dir = path.join(__dirname, '..', 'test', 'fixtures', 'pyramid');
  for (const name of ['layer_k3_N2', 'layer_k5']) {
    const f = readSafetensors(path.join(dir, `${name}.safetensors`));
    const get = (key: string) => { const a = f.tensors.get(key)!; return Tensor.fromArray(a.data, a.shape, { device: 'cuda' }); };
    const ref = (key: string) => f.tensors.get(key)!.data;
    const result: Record<string, unknown> = { case: `tf32 vs fp32 on the ${name} golden`, device: cuda.detail };
    for (const mode of ['fp32', 'tf32'] as const) {
      setConvMath(mode);
      try {
        const weights = [0, 1, 2, 3, 4, 5].map((d) => ({ wx: get(`dir${d}.wx`), bx: get(`dir${d}.bx`), wh: get(`dir${d}.wh`), bh: get(`dir${d}.bh`) }));
        const r = ops.pyramidLstm(get('x'), weights);
        const g = optimized.pyramidLstmBackward(r.saved, get('dy'));
        const worst = (a: Float32Array, b: Float32Array) => {
          let err = 0, scale = 0;
          for (let i = 0; i < a.length; ++i) { err = Math.max(err, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
          return err / scale;
        };
        let grads = 0;
        for (let d = 0; d < 6; ++d) {
          for (const k of ['wx', 'bx', 'wh', 'bh'] as const) grads = Math.max(grads, worst(g.grads[d]![`d${k}`].toArray(), ref(`dir${d}.d${k}`)));
        }
        result[`${mode}_y`] = Number(worst(r.y.toArray(), ref('y')).toExponential(2));
        result[`${mode}_dx`] = Number(worst(g.dx.toArray(), ref('dx')).toExponential(2));
        result[`${mode}_grads`] = Number(grads.toExponential(2));
      } finally {
        setConvMath('fp32');
      }
    }
    console.log(JSON.stringify(result));
  }
}

/**
 * The cost of the gradient tape on a whole PyraMiD training step: the paper
 * network (C-LSTMs of 16, 32, 64 units, 7x7) on one 8x64x64 sub-volume, stepped
 * through the hand-written path the tape replaced, through a bare tape, and by
 * the Trainer (drawing the window, the finite checks of every activation, loss
 * and gradient). Alternating in one process, so all see the same machine load.
 */
async function tapeOverhead(repeats: number): Promise<void> {
  const size = [8, 64, 64] as const;
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const xData = Float32Array.from({ length: 8 * 64 * 64 }, () => Math.random() * 2 - 1);
  const labelData = Float32Array.from({ length: 8 * 64 * 64 }, (_, i) => ((i * 7919) % 10 < 3 ? 1 : 0));
  const x = Tensor.fromArray(xData, [1, 1, ...size]);
  const labels = Tensor.fromArray(labelData, [1, ...size]);
  const tapeOptimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const handOptimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const trainer = new Trainer(model, { optimizer: { kind: 'rmspropMomentum', lr: 1e-4 }, loss: 'squaredError' });
  const data = new VolumeSampler({ volume: xData, shape: [1, ...size], labels: labelData, flip: {} });
  const times = { hand: [] as number[], tape: [] as number[], trainer: [] as number[] };
  const time = async (fn: () => Promise<unknown>) => {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  for (let i = 0; i < repeats + 1; ++i) {
    const hand = await time(() => handWrittenStep(model, handOptimizer, x, labels));
    const tape = await time(() => tapeStep(model, tapeOptimizer, x, labels));
    const full = await time(() => trainer.fit({ data, size, steps: 1 }));
    if (i >= 1) {
      times.hand.push(hand);
      times.tape.push(tape);
      times.trainer.push(full);
    }
  }
  const hand = median(times.hand), tape = median(times.tape), full = median(times.trainer);
  console.log(JSON.stringify({
    case: 'paper network training step on 8x64x64: hand-written backward vs gradient tape vs Trainer (tape + finite checks)',
    hand_written_ms: Number(hand.toFixed(1)), tape_ms: Number(tape.toFixed(1)), trainer_ms: Number(full.toFixed(1)),
    tape_overhead_ms: Number((tape - hand).toFixed(1)), trainer_overhead_ms: Number((full - hand).toFixed(1)),
  }));
  for (const t of [x, labels]) t.dispose();
  model.dispose();
}

/**
 * One training step of the paper network in this process (called by the memory
 * suite in a child process per case, since a process's peak RSS only grows):
 * predicted peak, measured peak of live tensor bytes, peak RSS, time per step.
 */
async function memoryCase(size: [number, number, number], recompute: boolean, steps: number): Promise<void> {
  const { estimateStepMemory } = await import('../lib/training/memory');
  const { memoryStats, resetPeakMemory } = await import('../lib');
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, seed: 1 });
  const [d, h, w] = size;
  const volume = Float32Array.from({ length: d * h * w }, (_, i) => Math.sin(i * 0.001));
  const data = new VolumeSampler({ volume, shape: [1, d, h, w], labels: volume.map((v) => (v > 0 ? 1 : 0)), flip: {} });
  const trainer = new Trainer(model, { memorySchedule: recompute ? { recompute: true } : {} });
  const predicted = estimateStepMemory(model, [1, 1, d, h, w], { schedule: { recompute } })!;
  const times: number[] = [];
  for (let i = 0; i < steps; ++i) {
    if (i === steps - 1) resetPeakMemory('cpu');
    const start = process.hrtime.bigint();
    await trainer.fit({ data, size, steps: 1 });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const gib = (b: number) => Number((b / 2 ** 30).toFixed(3));
  console.log(JSON.stringify({
    case: `paper network training step on ${size.join('x')}, ${recompute ? 'recomputed gates' : 'gates kept'}`,
    predicted_gib: gib(predicted.peakBytes), tensor_peak_gib: gib(memoryStats().cpu.peakBytes), peak_rss_gib: gib(process.resourceUsage().maxRSS * 1024),
    step_ms: Number(times[times.length - 1]!.toFixed(0)), steps,
  }));
}

/** One training step of a model: forward in training mode, a loss, backward, an optimizer update. */
async function trainingStep(model: ModelBase, input: ModelInput, labels: Tensor, loss: LossOptions, optimizer: Optimizer, lr: number): Promise<void> {
  const tape = new GradientTape();
  const value = await tape.record(async () => {
    const y = await model.forward(input, { training: true });
    const l = ops.loss(y, labels, loss);
    y.dispose();
    return l;
  });
  const grads = model.gradientsByName(await tape.backward(value));
  tape.dispose();
  value.dispose();
  optimizer.step(model.parameters(), grads, lr);
  for (const g of grads.values()) g.dispose();
}

/**
 * One 2D-3D ConvNet training step case in this process (the convnet suite runs each in
 * its own process, with its PyTorch peer in another, so each peak RSS is its own): the
 * paper's output patch, SGD 0.01 with momentum 0.9, cross-entropy normalised by voxels.
 */
async function convnetCase(name: 'n4' | 'vd2d3d', repeats: number, smoke: boolean): Promise<void> {
  const { resetPeakMemory, memoryStats, znnTrainingSettings } = await import('../lib');
  const { znnGraph } = await import('../lib/models/convnets/networks');
  const model = name === 'n4' ? presets.n4({ seed: 1 }) : presets.vd2d3d({ recursive: true, seed: 1 });
  const outSize = smoke ? [1, 4, 4] : znnTrainingSettings(name).outputSize;
  const fov = model.fieldOfView()!;
  const inSize = outSize.map((o, a) => o + fov[a]! - 1);
  const inputs = Object.fromEntries(Object.keys(model.inputs).map((k) => [k, randomTensor([1, 1, ...inSize])]));
  const labels = Tensor.fromArray(Float32Array.from({ length: outSize.reduce((a, b) => a * b, 1) }, (_, i) => (i * 7919) % 3 === 0 ? 1 : 0), [1, ...outSize]);
  const optimizer = new Optimizer({ kind: 'sgd', lr: 0.01, momentum: 0.9 });
  const input = Object.keys(inputs).length === 1 ? Object.values(inputs)[0]! : inputs;
  const step = () => trainingStep(model, input, labels, { kind: 'crossEntropy', normalize: 'voxels' }, optimizer, 0.01);
  await step();
  await step();
  resetPeakMemory('cpu');
  const times: number[] = [];
  for (let i = 0; i < repeats; ++i) {
    const start = process.hrtime.bigint();
    await step();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const graphNodes = znnGraph(name, name === 'vd2d3d' ? { recursive: true } : {});
  console.log(JSON.stringify({
    case: name, segvol_ms: median(times), tensor_peak_mib: memoryStats().cpu.peakBytes / 2 ** 20,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024, outSize, inSize, graph: graphNodes,
  }));
}

/**
 * One training step of Tseng et al.'s network in this process: forward in training mode,
 * weighted cross-entropy, backward, Adam (the paper's step); its peak memory is its own.
 */
async function bratsCase(repeats: number, smoke: boolean, channels: number): Promise<void> {
  const { resetPeakMemory, memoryStats } = await import('../lib');
  const plane = smoke ? 48 : 240;
  const model = presets.crossModalityConvLstm({ channels, seed: 1 });
  const x = randomTensor([3, 4, 3, plane, plane]);
  const labels = Tensor.fromArray(Float32Array.from({ length: 3 * 3 * plane * plane }, (_, i) => Math.floor((i * 7919) / 8) % 5), [3, 3, plane, plane]);
  const classWeights = Tensor.fromArray([0.1, 2, 1, 3, 1.5], [5]);
  const optimizer = new Optimizer({ kind: 'adam', lr: 1e-4 });
  const step = () => trainingStep(model, x, labels, { kind: 'crossEntropy', classWeights }, optimizer, 1e-4);
  await step();
  await step();
  resetPeakMemory('cpu');
  const times: number[] = [];
  for (let i = 0; i < repeats; ++i) {
    const start = process.hrtime.bigint();
    await step();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  console.log(JSON.stringify({ segvol_ms: median(times), tensor_peak_mib: memoryStats().cpu.peakBytes / 2 ** 20, peak_rss_mib: process.resourceUsage().maxRSS / 1024, plane }));
}

/** One out-of-core prediction of a Zarr volume in this process: time and peak RSS (the blocks suite runs each size in its own process). */
async function blocksCase(dir: string, size: number[]): Promise<void> {
  const { predictChunked } = await import('../lib');
  const { loadModel } = await import('../lib/models/load');
  const model = loadModel(path.join(dir, 'model.safetensors'));
  const input = path.join(dir, `in_${size.join('x')}.zarr`);
  const started = process.hrtime.bigint();
  // Windows that tile the volume (overlap 0): the memory question, not the blending's cost.
  const r = await predictChunked(model, input, path.join(dir, `out_${size.join('x')}_${process.pid}.zarr`), { window: [16, 128, 128], chunks: [16, 128, 128], overlap: 0 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ seconds, blocks: r.blocks, peak_rss_mib: process.resourceUsage().maxRSS / 1024 }));
}

const suites: Record<string, (repeats: number) => void | Promise<void>> = {
  /**
   * Training throughput of the 2D-3D ConvNets (issue 14): output voxels per second of a
   * training step of N4 (output 200x200x1) and of VD2D3D with its recursive stream
   * (100x100x1), against the same dense nets in PyTorch (dilated convolutions, stride-1
   * max-pooling, autograd, SGD), with peak memory. --smoke: tiny outputs, no peer.
   */
  /**
   * Tseng et al.'s cross-modality ConvLSTM (issue 15): one training step at the paper's
   * settings (batch 3, sequences of 3 slices, 240x240, 4 modalities, 64 channels, Adam)
   * against the same network in PyTorch (test/fixtures/cross_modality_reference.py),
   * each in its own process, with peak memory. --channels N narrows it; --smoke: 48x48, no peer.
   */
  async brats(repeats) {
    const at = process.argv.indexOf('--channels');
    const channels = at >= 0 ? Number(process.argv[at + 1]) : 64;
    if (flags.has('--case')) {
      await bratsCase(repeats, flags.has('--smoke'), channels);
      return;
    }
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register', __filename, 'brats', '--case', '--repeats', String(repeats), '--channels', String(channels),
      ...(flags.has('--smoke') ? ['--smoke'] : [])], { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 });
    if (r.status !== 0) {
      console.log(JSON.stringify({ case: 'brats', error: (r.stderr || '').trim().split('\n').slice(-3).join(' | ') }));
      return;
    }
    const seg = JSON.parse(r.stdout.trim().split('\n').pop()!) as { segvol_ms: number; tensor_peak_mib: number; peak_rss_mib: number; plane: number };
    let peer: { torch_ms: number; peak_rss_mib: number } | null = null;
    if (!flags.has('--smoke')) {
      const p = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, 'peer_torch.py')], {
        input: JSON.stringify({ suite: 'brats', threads, repeats, cases: [{ name: 'brats', plane: seg.plane, channels }] }),
        encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) },
      });
      if (p.status === 0) peer = JSON.parse(p.stdout.trim()) as { torch_ms: number; peak_rss_mib: number };
      else console.error(`torch peer unavailable: ${(p.stderr || '').trim().split('\n').slice(-1)[0]}`);
    }
    console.log(JSON.stringify({
      case: `cross-modality ConvLSTM training step, batch 3 x 3 slices x ${seg.plane}x${seg.plane}, 4 modalities, ${channels} channels, Adam`,
      segvol_ms: Number(seg.segvol_ms.toFixed(1)), torch_ms: peer ? Number(peer.torch_ms.toFixed(1)) : null,
      ratio: peer ? Number((peer.torch_ms / seg.segvol_ms).toFixed(2)) : null,
      segvol_tensor_peak_mib: Math.round(seg.tensor_peak_mib), segvol_peak_rss_mib: Math.round(seg.peak_rss_mib),
      torch_peak_rss_mib: peer ? Math.round(peer.peak_rss_mib) : null, target_ratio: 1,
    }));
  },
  /**
   * Out-of-core inference (issue 17): peak RSS while the Zarr volume grows 1x, 4x and 16x
   * (each size in its own process), then blocks per second with 1 and 2 workers on a local
   * Redis (when redis-server is installed), and each worker's peak RSS.
   */
  async blocks() {
    const one = process.argv.indexOf('--case');
    if (one >= 0) {
      await blocksCase(process.argv[one + 1]!, process.argv[one + 2]!.split(',').map(Number));
      return;
    }
    const { layers, sequential, writeZarr, readChunkedPlan } = await import('../lib');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segvol-bench-blocks-'));
    const model = sequential([layers.conv({ out: 8, kernel: [3, 3, 3], padding: 'same', init: 'xavier' }), layers.relu(),
      layers.conv({ out: 2, kernel: [1, 3, 3], padding: 'same', init: 'xavier' }), layers.softmax()], { inChannels: 1, seed: 1 });
    model.info = { normalize: 'slice' };
    model.save(path.join(dir, 'model.safetensors'));
    // 1x, 4x and 16x: 32, 128 and 512 MiB of float32.
    const sizes = flags.has('--smoke') ? [[16, 128, 128], [16, 256, 256]] : [[32, 512, 512], [128, 512, 512], [512, 512, 512]];
    for (const size of sizes) {
      const n = size.reduce((a, b) => a * b, 1);
      // The setup holds the input in this process; the measured prediction runs in its own.
      const data = new Float32Array(n);
      for (let i = 0; i < n; ++i) data[i] = Math.sin(i * 0.001) + ((i * 7919) % 13) / 13;
      await writeZarr(path.join(dir, `in_${size.join('x')}.zarr`), data, size, { chunks: [16, 128, 128] });
      const r = spawnSync(process.execPath, ['-r', 'ts-node/register', __filename, 'blocks', '--case', dir, size.join(',')],
        { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 });
      if (r.status !== 0) {
        console.log(JSON.stringify({ case: `out-of-core ${size.join('x')}`, error: (r.stderr || '').trim().split('\n').slice(-3).join(' | ') }));
        continue;
      }
      const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; blocks: number; peak_rss_mib: number };
      console.log(JSON.stringify({
        case: `out-of-core prediction, ${size.join('x')} (${(n * 4 / 2 ** 20).toFixed(0)} MiB float32), blocks and windows of 16x128x128`,
        seconds: Number(m.seconds.toFixed(1)), blocks: m.blocks, voxels_per_s: Math.round(n / m.seconds), peak_rss_mib: Math.round(m.peak_rss_mib),
      }));
    }
    if (spawnSync('redis-server', ['--version']).status !== 0) {
      console.log(JSON.stringify({ case: 'workers', skipped: 'redis-server is not installed (apt-get install redis-server)' }));
      return;
    }
    const port = 6300 + (process.pid % 600);
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    const url = `redis://127.0.0.1:${port}`;
    const size = sizes[0]!;
    const cli = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
    try {
      for (const count of [1, 2]) {
        const name = `bench${count}`;
        const out = path.join(dir, `queue_${count}.zarr`);
        const workers = Array.from({ length: count }, () => spawn(process.execPath, ['-r', 'ts-node/register', cli, 'worker', '--queue', url, '--queue-name', name],
          { cwd: path.join(__dirname, '..'), env: { ...process.env, OMP_NUM_THREADS: String(Math.max(1, Math.floor(threads / count))) }, stdio: ['ignore', 'pipe', 'pipe'] }));
        const logs = workers.map((w) => new Promise<string>((resolve) => {
          let text = '';
          w.stdout!.on('data', (d) => (text += String(d)));
          w.on('exit', () => resolve(text));
        }));
        await new Promise((r) => setTimeout(r, 4000));  // the workers load
        const started = Date.now();
        const c = spawnSync(process.execPath, ['-r', 'ts-node/register', cli, 'predict', '--model', path.join(dir, 'model.safetensors'), '--in', path.join(dir, `in_${size.join('x')}.zarr`),
          '--out', out, '--window', '16,64,64', '--chunks', '16,128,128', '--queue', url, '--queue-name', name], { cwd: path.join(__dirname, '..'), encoding: 'utf8' });
        const seconds = (Date.now() - started) / 1000;
        for (const w of workers) w.kill('SIGTERM');
        const rss = (await Promise.all(logs)).map((text) => Number(/peak RSS (\d+) MiB/.exec(text)?.[1] ?? NaN));
        const blocks = c.status === 0 ? readChunkedPlan(out).blocks : NaN;
        console.log(JSON.stringify({
          case: `${count} worker${count > 1 ? 's' : ''} (${Math.max(1, Math.floor(threads / count))} thread${threads / count > 1 ? 's' : ''} each), ${size.join('x')}`,
          ok: c.status === 0, seconds: Number(seconds.toFixed(1)), blocks_per_s: Number((blocks / seconds).toFixed(2)), peak_rss_mib_per_worker: rss,
        }));
      }
    } finally {
      redis.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  async convnet(repeats) {
    const one = process.argv.indexOf('--case');
    if (one >= 0) {
      await convnetCase(process.argv[one + 1] as 'n4' | 'vd2d3d', repeats, flags.has('--smoke'));
      return;
    }
    for (const name of ['n4', 'vd2d3d']) {
      const r = spawnSync(process.execPath, ['-r', 'ts-node/register', __filename, 'convnet', '--case', name, '--repeats', String(repeats),
        ...(flags.has('--smoke') ? ['--smoke'] : [])], { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: process.env, maxBuffer: 1 << 26 });
      if (r.status !== 0) {
        console.log(JSON.stringify({ case: name, error: (r.stderr || '').trim().split('\n').slice(-3).join(' | ') }));
        continue;
      }
      const seg = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        segvol_ms: number; tensor_peak_mib: number; peak_rss_mib: number; outSize: number[]; inSize: number[];
        graph: { inputs: Record<string, number>; nodes: unknown[]; output: string };
      };
      let peer: { torch_ms: number; peak_rss_mib: number } | null = null;
      if (!flags.has('--smoke')) {
        const p = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, 'peer_torch.py')], {
          input: JSON.stringify({ suite: 'convnet', threads, repeats, cases: [{ name, ...seg.graph, inSize: seg.inSize, outSize: seg.outSize }] }),
          encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads) },
        });
        if (p.status === 0) peer = JSON.parse(p.stdout.trim()) as { torch_ms: number; peak_rss_mib: number };
        else console.error(`torch peer unavailable: ${(p.stderr || '').trim().split('\n').slice(-1)[0]}`);
      }
      const voxels = seg.outSize.reduce((a, b) => a * b, 1);
      console.log(JSON.stringify({
        case: `${name} training step, output ${seg.outSize.join('x')} (input ${seg.inSize.join('x')})`,
        segvol_ms: Number(seg.segvol_ms.toFixed(1)), torch_ms: peer ? Number(peer.torch_ms.toFixed(1)) : null,
        ratio: peer ? Number((peer.torch_ms / seg.segvol_ms).toFixed(2)) : null,
        segvol_voxels_per_s: Math.round((voxels * 1000) / seg.segvol_ms), torch_voxels_per_s: peer ? Math.round((voxels * 1000) / peer.torch_ms) : null,
        segvol_tensor_peak_mib: Math.round(seg.tensor_peak_mib), segvol_peak_rss_mib: Math.round(seg.peak_rss_mib),
        torch_peak_rss_mib: peer ? Math.round(peer.peak_rss_mib) : null, target_ratio: 1,
      }));
    }
  },
  /**
   * The paper network's training step at the paper's three bootstrap sizes: predicted
   * and measured memory (tensor bytes and the process's peak RSS) and time, with the
   * gates kept and with them recomputed in backward, each case in its own process.
   * 20x256x256 runs recomputed only (kept gates need about 23 GiB: more than this machine
   * has beside the OS). --case d,h,w:recompute runs one case here.
   */
  async memory(repeats) {
    const one = process.argv.indexOf('--case');
    if (one >= 0) {
      const [shape, mode] = process.argv[one + 1]!.split(':');
      const size = shape!.split(',').map(Number) as [number, number, number];
      await memoryCase(size, mode === 'recompute', size[2] >= 256 ? 1 : Math.max(2, Math.min(repeats, 3)));
      return;
    }
    const sizes = flags.has('--smoke') ? ['8,16,16'] : ['8,64,64', '15,128,128', '20,256,256'];
    for (const size of sizes) {
      for (const mode of size.endsWith(',256') ? ['recompute'] : ['gates', 'recompute']) {
        const r = spawnSync(process.execPath, ['-r', 'ts-node/register', __filename, 'memory', '--case', `${size}:${mode}`, '--repeats', String(repeats)],
          { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: process.env, maxBuffer: 1 << 24 });
        if (r.status !== 0) {
          console.log(JSON.stringify({ case: `${size} ${mode}`, error: (r.stderr || '').trim().split('\n').slice(-3).join(' | ') }));
          continue;
        }
        process.stdout.write(r.stdout);
      }
    }
  },
  /**
   * The recurrent layers against PyTorch CPU in the same run (issue 13): LSTM and GRU
   * (sequence 100, batch 16, hidden 256, 2 layers) and a ConvLSTM over 16 slices of
   * 64x64 (16 input channels, hidden 32, 3x3), forward + backward of the input and
   * every weight, the output's gradient all ones.
   */
  async rnn(repeats) {
    const { createLayer, layers: layerBuilders } = await import('../lib');
    const cases = [
      { name: 'lstm: T=100, N=16, I=256, H=256, 2 layers', kind: 'lstm', x: [100, 16, 256], inputSize: 256, hiddenSize: 256, numLayers: 2 },
      { name: 'gru: T=100, N=16, I=256, H=256, 2 layers', kind: 'gru', x: [100, 16, 256], inputSize: 256, hiddenSize: 256, numLayers: 2 },
      { name: 'convLstm: 16 slices of 64x64, C=16, hidden 32, 3x3, N=1', kind: 'convLstm', x: [1, 16, 16, 64, 64], hidden: 32, kernel: 3 },
    ] as const;
    const peer = runPeer({ suite: 'rnn', threads, repeats, cases });
    if (typeof peer === 'string') console.error(`torch peer unavailable (${peer}); install it with: pip install torch`);
    for (const c of cases) {
      const layer = c.kind === 'convLstm'
        ? createLayer(layerBuilders.convLstm({ hidden: c.hidden, kernel: c.kernel }), { inChannels: c.x[1] })
        : createLayer((c.kind === 'lstm' ? layerBuilders.lstm : layerBuilders.gru)({ inputSize: c.inputSize, hiddenSize: c.hiddenSize, numLayers: c.numLayers }));
      const x = randomTensor([...c.x], 'cpu');
      const dy = Tensor.full(layer.outputShape(c.x, c.kind), 1);  // made once, as the peer's
      const times: number[] = [];
      for (let i = 0; i < repeats + 2; ++i) {
        const start = process.hrtime.bigint();
        const tape = new GradientTape();
        tape.watch(x);
        const y = await tape.record(() => layer.forward(x, { training: true, random: Math.random }));
        const grads = await tape.backward(y, dy);
        if (i >= 2) times.push(Number(process.hrtime.bigint() - start) / 1e6);
        for (const g of grads.values()) g.dispose();
        y.dispose();
        tape.dispose();
      }
      dy.dispose();
      const ms = median(times), torchMs = typeof peer === 'string' ? null : peer.get(c.name) ?? null;
      console.log(JSON.stringify({
        case: c.name, segvol_ms: Number(ms.toFixed(1)), torch_ms: torchMs === null ? null : Number(torchMs.toFixed(1)),
        ratio: torchMs === null ? null : Number((torchMs / ms).toFixed(2)), target_ratio: 1,
      }));
      x.dispose();
    }
  },
  /**
   * The 2D-3D ConvNet paper's pipeline on a synthetic EM stack (benchmarks/znn_pipeline.ts):
   * N4, VD2D, then VD2D3D trained recursively; held-out pixel error and best Rand F-scores.
   * --steps N, --patch P, --size d,h,w override the defaults (300 steps, 32x32 patches, 24x160x160).
   */
  async pipeline() {
    const { runPipeline } = await import('./znn_pipeline');
    const arg = (name: string) => {
      const i = process.argv.indexOf(name);
      return i >= 0 ? process.argv[i + 1] : undefined;
    };
    const size = (arg('--size') ?? '24,160,160').split(',').map(Number) as [number, number, number];
    const scores = await runPipeline({
      size, heldOut: 6, patch: Number(arg('--patch') ?? 32), steps: Number(arg('--steps') ?? 300), log: (line) => console.error(line),
    });
    for (const s of scores) console.log(JSON.stringify({ case: `${s.network} on a synthetic ${size.join('x')} stack (6 held-out slices)`, ...s }));
  },
  tf32: () => tf32Accuracy(),
  /** The training step's overhead alone (also the last case of the pyramid suite). */
  step: (repeats) => tapeOverhead(repeats),
  /**
   * How long the event loop waits while a fit runs (the heavy work is on the compute
   * thread): p99 and max of the loop's delay over a fit of the paper network. Target p99 < 50 ms.
   */
  async eventloop(repeats) {
    const { monitorEventLoopDelay } = await import('node:perf_hooks');
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [8, 12], fc: [12], kernel: 5, seed: 1 });
    const volume = Float32Array.from({ length: 16 * 64 * 64 }, (_, i) => Math.sin(i * 0.01));
    const data = new VolumeSampler({ volume, shape: [1, 16, 64, 64], labels: volume.map((v) => (v > 0 ? 1 : 0)) });
    const trainer = new Trainer(model, { seed: 1 });
    await trainer.fit({ data, size: [8, 32, 32], steps: 2 });  // warm-up: primitives built
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const started = Date.now();
    await trainer.fit({ data, size: [8, 32, 32], steps: Math.max(repeats, 1) * 5 });
    histogram.disable();
    console.log(JSON.stringify({
      case: `event-loop delay while a fit runs (${Math.max(repeats, 1) * 5} steps of a small PyraMiD network on 8x32x32)`,
      fit_ms: Date.now() - started, p50_ms: Number((histogram.percentile(50) / 1e6).toFixed(2)),
      p99_ms: Number((histogram.percentile(99) / 1e6).toFixed(2)), max_ms: Number((histogram.max / 1e6).toFixed(2)), samples: histogram.count, target_p99_ms: 50,
    }));
  },
  async data(repeats) {
    // Reading + per-slice normalisation of the two volumes, and sampling vs a training step.
    const dir = fs.mkdtempSync(`${os.tmpdir()}/segvol-data-bench-`);
    const stack = Float32Array.from({ length: 30 * 512 * 512 }, (_, i) => (i * 2654435761) % 65536);
    writeVolume(`${dir}/stack.tif`, { data: stack, shape: [30, 512, 512], dtype: 'float32' }, { dtype: 'uint16' });
    const mr = Float32Array.from({ length: 48 * 240 * 240 }, (_, i) => ((i * 40503) % 4096) - 1024);
    writeVolume(`${dir}/mr.nii.gz`, { data: mr, shape: [48, 240, 240], dtype: 'float32' }, { dtype: 'int16' });
    const time = (f: () => void) => {
      const times: number[] = [];
      for (let i = 0; i < repeats; ++i) {
        const start = process.hrtime.bigint();
        f();
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      return median(times);
    };
    const tiffMs = time(() => { const v = readVolume(`${dir}/stack.tif`); normalizeSlices(v.data, v.shape); });
    const niftiMs = time(() => { const v = readVolume(`${dir}/mr.nii.gz`); normalizeSlices(v.data, v.shape); });
    const r = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, 'peer_data.py'), `${dir}/stack.tif`, `${dir}/mr.nii.gz`], { encoding: 'utf8' });
    const peer = r.status === 0 ? (JSON.parse(r.stdout.trim()) as { tiff: number; nifti: number }) : null;
    if (!peer) console.error(`python peer unavailable: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`);
    for (const [name, ms, peerMs] of [['read + normalise 30x512x512 uint16 TIFF', tiffMs, peer?.tiff], ['read + normalise 48x240x240 int16 NIfTI (.nii.gz)', niftiMs, peer?.nifti]] as const) {
      console.log(JSON.stringify({ case: name, segvol_ms: Number(ms.toFixed(1)), python_ms: peerMs === undefined ? null : Number(peerMs.toFixed(1)),
        ratio: peerMs === undefined ? null : Number((peerMs / ms).toFixed(2)), target_ms: 1000 }));
    }
    // Sampling a 64x64x8 sub-volume (with rotation and flips) vs one training step of the paper network on it.
    const v = readVolume(`${dir}/mr.nii.gz`);
    const sampler = new VolumeSampler({ volume: normalizeSlices(v.data, v.shape), shape: [1, 48, 240, 240], labels: new Float32Array(48 * 240 * 240), rotate: true });
    const random = new Random(1);
    const sampleMs = time(() => { sampler.sample(random, [8, 64, 64]); });
    const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [16], fc: [], kernel: 7 });
    const x = Tensor.full([1, 1, 8, 64, 64], 0.5);
    const steps: number[] = [];
    for (let i = 0; i < 2; ++i) {
      const start = process.hrtime.bigint();
      const tape = new GradientTape();
      const y = await tape.record(() => model.forward(x, { training: true }));
      for (const g of (await tape.backward(y, y)).values()) g.dispose();
      tape.dispose();
      y.dispose();
      steps.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    console.log(JSON.stringify({ case: 'sample 8x64x64 (rotation, flips) vs one PyraMiD-LSTM layer training step on it', sample_ms: Number(sampleMs.toFixed(2)),
      step_ms: Number(steps[1]!.toFixed(1)), sampling_share: Number((sampleMs / steps[1]!).toFixed(4)) }));
    fs.rmSync(dir, { recursive: true });
  },
  metrics(repeats) {
    // A 30x512x512 EM-sized volume: ~2,000 blocky segments, the prediction with merges and splits.
    const [D, H, W] = [30, 512, 512];
    const truth = new Int32Array(D * H * W);
    const pred = new Int32Array(D * H * W);
    for (let z = 0; z < D; ++z)
      for (let y = 0; y < H; ++y)
        for (let x = 0; x < W; ++x) {
          const i = (z * H + y) * W + x;
          truth[i] = (y % 24 === 0 || x % 24 === 0) ? 0 : 1 + Math.floor(y / 24) * 32 + Math.floor(x / 24) + z * 1024;
          pred[i] = 1 + Math.floor((y + 7) / 36) * 32 + Math.floor(x / 18) + z * 1024;
        }
    const classes = 2;
    const predClass = Int32Array.from(pred, (v) => v % classes);
    const truthClass = Int32Array.from(truth, (v) => v % classes);
    const times: number[] = [];
    for (let i = 0; i < repeats + 1; ++i) {
      const start = process.hrtime.bigint();
      metrics.overlap(predClass, truthClass, classes);
      metrics.rand(pred, truth);
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      if (i >= 1) times.push(elapsed);
    }
    const segvolMs = median(times);
    const dir = fs.mkdtempSync(`${os.tmpdir()}/segvol-bench-`);
    writeNpy(`${dir}/pred.npy`, { shape: [D, H, W], data: Float32Array.from(pred) });
    writeNpy(`${dir}/truth.npy`, { shape: [D, H, W], data: Float32Array.from(truth) });
    const r = spawnSync(process.env.PYTHON ?? 'python3', [path.join(__dirname, 'peer_metrics.py'), `${dir}/pred.npy`, `${dir}/truth.npy`, String(classes)], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true });
    const peer = r.status === 0 ? (JSON.parse(r.stdout.trim()) as { peer_ms: number }).peer_ms : null;
    if (peer === null) console.error(`scikit-image peer unavailable: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}`);
    console.log(JSON.stringify({
      case: 'overlap (2 classes) + Rand scores + VI on 30x512x512', segvol_ms: Number(segvolMs.toFixed(1)),
      skimage_ms: peer === null ? null : Number(peer.toFixed(1)), ratio: peer === null ? null : Number((peer / segvolMs).toFixed(2)),
      target_ms: 2000,
    }));
  },
  async pyramid(repeats) {
    if (flags.has('--gpu')) {
      await gpuPyramid(repeats, flags.has('--smoke'), flags.has('--tf32'));
      return;
    }
    // issue 3's cases: one PyraMiD-LSTM layer, forward + backward, N = 1, 7x7 filters
    const cases: PyramidCase[] = [
      { name: 'pyramidLstm C=5 O=16 k=7 on 8x64x64', x: [1, 5, 8, 64, 64], hidden: 16, kernel: 7 },
      { name: 'pyramidLstm C=25 O=32 k=7 on 8x64x64', x: [1, 25, 8, 64, 64], hidden: 32, kernel: 7 },
    ];
    const peer = runPeer({ suite: 'pyramid', threads, repeats, cases });
    if (typeof peer === 'string') console.error(`torch peer unavailable (${peer}); install it with: pip install torch`);
    for (const c of cases) {
      const segvolMs = await timePyramid(c, repeats);
      report(c.name, segvolMs, typeof peer === 'string' ? null : peer.get(c.name) ?? null, pyramidFlops(c));
    }
    await tapeOverhead(repeats);
    // The memory rows (issue 18): peak memory and time of a paper-network step at the
    // paper's three sizes, gates kept vs recomputed. --no-memory skips them (about 25 min).
    if (!flags.has('--no-memory')) await suites.memory!(repeats);
  },
  conv(repeats) {
    // The shapes of a PyraMiD-LSTM direction's batched input convolution (planes as batch)
    // and of a 3D ConvNet layer.
    const cases: ConvCase[] = [
      { name: 'conv2d 7x7 C=5 O=64, 8 planes 64x64', x: [8, 5, 64, 64], w: [64, 5, 7, 7], padding: 3 },
      { name: 'conv2d 7x7 C=25 O=128, 8 planes 64x64', x: [8, 25, 64, 64], w: [128, 25, 7, 7], padding: 3 },
      { name: 'conv2d 7x7 C=32 O=128, 1 plane 64x64 (recurrent step)', x: [1, 32, 64, 64], w: [128, 32, 7, 7], padding: 3 },
      { name: 'conv3d 3x3x3 C=16 O=16, 16x64x64', x: [1, 16, 16, 64, 64], w: [16, 16, 3, 3, 3], padding: 1 },
    ];
    const peer = runPeer({ suite: 'conv', threads, repeats, cases });
    if (typeof peer === 'string') console.error(`torch peer unavailable (${peer}); install it with: pip install torch`);
    for (const c of cases) {
      report(c.name, timeConv(c, repeats), typeof peer === 'string' ? null : peer.get(c.name) ?? null, convFlops(c));
    }
  },
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const suite = args.find((a) => !a.startsWith('--')) ?? 'conv';
  const repeatsFlag = args.indexOf('--repeats');
  const repeats = repeatsFlag >= 0 ? Number(args[repeatsFlag + 1]) : 10;
  const run = suites[suite];
  if (!run) {
    console.error(`unknown benchmark suite '${suite}'; available: ${Object.keys(suites).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  console.error(`segvol bench ${suite}: ${threads} threads, ${repeats} timed runs per case (median)`);
  await run(repeats);
}

void main();
