// npm run bench -- pyramid [--gpu [--tf32] [--smoke]] [--no-memory]: the PyraMiD-LSTM
// layer against PyTorch, then the training step's overhead and memory; with --gpu, the
// GPU cases instead.
import {
  memoryStats, ops, Optimizer, presets, resetPeakMemory, setConvMath, estimateStepMemory, synchronize, Tensor,
  type ClstmWeights, type Device, type MemorySchedule,
} from '../../lib';
import { optimized } from '../../lib/testing';
import { randomTensor, report, requireCuda, round, supervisedStep, timeOnDevice, versus, type BenchArgs, type Suite } from '../common';
import { runPeer } from '../processes';
import { memory } from './memory';
import { paperStep, tapeOverhead } from './step';

export interface PyramidCase {
  name: string;
  /** Input (N, C, D, H, W). */
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

/** Median ms of one layer's forward + backward (the async ops), the output's gradient all ones. */
export async function timePyramid(c: PyramidCase, repeats: number, device: Device = 'cpu'): Promise<number> {
  const x = randomTensor(c.x, device);
  const weights: ClstmWeights[] = [0, 1, 2, 3, 4, 5].map(() => ({
    wx: randomTensor([4 * c.hidden, c.x[1]!, c.kernel, c.kernel], device),
    bx: randomTensor([4 * c.hidden], device),
    wh: randomTensor([4 * c.hidden, c.hidden, c.kernel, c.kernel], device),
    bh: randomTensor([4 * c.hidden], device),
  }));
  const dy = Tensor.full([c.x[0]!, c.hidden, ...c.x.slice(2)], 1, { device });
  const ms = await timeOnDevice(async () => {
    const r = await ops.pyramidLstmAsync(x, weights);
    const g = await optimized.pyramidLstmBackwardAsync(r.saved, dy);
    return () => {
      r.y.dispose();
      r.saved.dispose();
      g.dx.dispose();
      for (const d of g.grads) for (const t of Object.values(d)) t.dispose();
    };
  }, repeats, { device });
  for (const t of [x, dy, ...weights.flatMap((w) => Object.values(w))]) t.dispose();
  return ms;
}

/**
 * Issue 4's GPU cases: one PyraMiD-LSTM layer (C=25, O=32, k=7) on 20x256x256,
 * forward + backward; a training step of the paper network on a 20x256x256
 * sub-volume (forward, loss, backward, RMSprop update); inference of a 48x240x240
 * volume in one window. PyTorch runs the same in eager mode on the same GPU.
 * --smoke runs the same code on tiny shapes without the peer (test/cuda.test.ts
 * runs it on the emulated build, so that the GPU path cannot rot between GPU sessions).
 */
async function gpuPyramid(repeats: number, smoke: boolean, tf32: boolean): Promise<void> {
  const cuda = requireCuda('--gpu needs the cuda backend, which is unavailable here');
  if (!cuda) return;
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
  const peer = smoke ? () => null : runPeer({ suite: 'gpu', device: 'cuda', tf32, repeats, cases: peerCases });
  const line = (name: string, ms: number, extra: Record<string, unknown>) => {
    console.log(JSON.stringify({ case: name, device: cuda.detail, math: tf32 ? 'tf32' : 'fp32', ...versus(ms, peer(name)?.torch_ms, 2), ...extra }));
  };

  const layerMs = await timePyramid(layer, repeats, device);
  line(layer.name, layerMs, { gflops: round(pyramidFlops(layer) / layerMs / 1e6, 1), target_ratio: 2 });

  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: net.hidden, fc: net.fc, kernel: net.kernel, seed: 1 }).to(device);
  const optimizer = new Optimizer({ kind: 'rmspropMomentum' });
  const x = randomTensor([1, 1, ...net.size], device);
  const labels = Tensor.fromArray(Float32Array.from({ length: net.size.reduce((a, b) => a * b, 1) }, () => (Math.random() < 0.3 ? 1 : 0)), [1, ...net.size], { device });
  const step = (schedule?: MemorySchedule) => async () => { await supervisedStep(model, optimizer, x, labels, { ...paperStep, schedule, checkFinite: false }); };
  const trainMs = await timeOnDevice(step(), repeats, { device });
  line(trainName, trainMs, { target_ms: 500 });
  // Device memory of the same step: all directions at a time with the gates kept (the
  // default), and the 12 GB schedule (gates recomputed, one direction at a time).
  const gib = (b: number) => round(b / 2 ** 30, 3);
  for (const schedule of [{}, { recompute: true, scanGroups: 1 }] as MemorySchedule[]) {
    await step(schedule)();  // warm: algorithms chosen, workspace grown
    synchronize(device);
    resetPeakMemory(device);
    const stepMs = await timeOnDevice(step(schedule), 1, { device });
    const predicted = estimateStepMemory(model, [1, 1, ...net.size], { schedule, device })!;
    console.log(JSON.stringify({
      case: `${trainName}: device memory, ${schedule.recompute ? 'recomputed gates, one direction at a time' : 'gates kept, default scan groups'}`,
      device: cuda.detail, predicted_gib: gib(predicted.peakBytes), tensor_peak_gib: gib(memoryStats().cuda.peakBytes), step_ms: round(stepMs, 1),
      predicted_bytes: predicted.peakBytes, tensor_peak_bytes: memoryStats().cuda.peakBytes,
    }));
  }

  const volume = randomTensor([1, 1, ...net.inference], device);
  const inferMs = await timeOnDevice(async () => { (await model.predict(volume)).dispose(); }, repeats, { device });
  line(inferName, inferMs, { target_ms: 2000 });
  for (const t of [x, labels, volume]) t.dispose();
  model.dispose();
  setConvMath('fp32');
}

/** Issue 3's cases: one PyraMiD-LSTM layer, forward + backward, N = 1, 7x7 filters. */
export const cpuPyramidCases: readonly PyramidCase[] = [
  { name: 'pyramidLstm C=5 O=16 k=7 on 8x64x64', x: [1, 5, 8, 64, 64], hidden: 16, kernel: 7 },
  { name: 'pyramidLstm C=25 O=32 k=7 on 8x64x64', x: [1, 25, 8, 64, 64], hidden: 32, kernel: 7 },
];

async function cpuPyramid(args: BenchArgs): Promise<void> {
  const cases = cpuPyramidCases;
  const peer = runPeer({ suite: 'pyramid', repeats: args.repeats, cases });
  for (const c of cases) report(c.name, await timePyramid(c, args.repeats), peer(c.name)?.torch_ms ?? null, pyramidFlops(c));
  await tapeOverhead(args.repeats);
  // The memory rows (issue 18): peak memory and time of a paper-network step at the
  // paper's three sizes, gates kept vs recomputed. --no-memory skips them (about 25 min).
  if (!args.has('--no-memory')) await memory.run(args);
}

export const pyramid: Suite = {
  name: 'pyramid',
  run: (args) => (args.has('--gpu') ? gpuPyramid(args.repeats, args.has('--smoke'), args.has('--tf32')) : cpuPyramid(args)),
};
