// What the suites share: the arguments they read, the clock, random inputs, the
// JSON rows they print, and the one training step they all time (segvol's own).
import {
  backends, memoryStats, ops, profile, resetPeakMemory, synchronize, Tensor, trainStep,
  type BackendInfo, type Device, type LossOptions, type MemorySchedule, type ModelBase, type ModelInput, type Optimizer, type StepResult,
} from '../lib';

/** segvol and its peers run on the same thread count, so that a ratio compares like with like. */
export const threads = Number(process.env.OMP_NUM_THREADS ?? 2);
process.env.OMP_NUM_THREADS = String(threads);

/** The command line as a suite sees it (run.ts parses it). */
export interface BenchArgs {
  /** Timed runs per case (--repeats N, default the suite's defaultRepeats or 10). */
  repeats: number;
  /** Whether a flag (--smoke, --gpu, --case) was given. */
  has(flag: string): boolean;
  /** The word `offset` places after a flag (--channels 8: value('--channels') is '8'). */
  value(flag: string, offset?: number): string | undefined;
}

export interface Suite {
  /** The name on the command line: npm run bench -- <name>. */
  name: string;
  /** Timed runs per case without --repeats (default 10). */
  defaultRepeats?: number;
  /** What the suite measures instead of timed runs (printed in place of the repeat count), for suites that do not repeat cases. */
  measures?: string;
  run(args: BenchArgs): void | Promise<void>;
}

/** The upper median, so that an even count still names one measured run. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function elapsedMs(work: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Frees a timed run's outputs once the clock has stopped: freeing is not the case's cost. */
export type Release = () => void;

/**
 * Median ms of `work` over `repeats` runs after `warmup` untimed ones (the first runs choose
 * algorithms and grow workspaces). The device is drained before each clock read, since GPU
 * work is queued asynchronously.
 */
export async function timeOnDevice(work: () => Release | void | Promise<Release | void>, repeats: number,
  options: { device?: Device; warmup?: number } = {}): Promise<number> {
  const device = options.device ?? 'cpu';
  const warmup = options.warmup ?? 2;
  const times: number[] = [];
  for (let i = 0; i < repeats + warmup; ++i) {
    synchronize(device);
    const start = process.hrtime.bigint();
    const release = await work();
    synchronize(device);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    release?.();
    if (i >= warmup) times.push(ms);
  }
  return median(times);
}

/** A tensor of `shape` with entries uniform in [-scale, scale). */
export function randomTensor(shape: readonly number[], device: Device = 'cpu', scale = 1): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; ++i) data[i] = (Math.random() * 2 - 1) * scale;
  return Tensor.fromArray(data, [...shape], { device });
}

export function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

/** The columns {segvol_ms, <peer>_ms, ratio} of a row; ratio = peer / segvol, both null without the peer. */
export function versus(segvolMs: number, peerMs: number | null | undefined, digits: number, peer = 'torch'): Record<string, number | null> {
  const missing = peerMs === null || peerMs === undefined;
  return {
    segvol_ms: round(segvolMs, digits),
    [`${peer}_ms`]: missing ? null : round(peerMs, digits),
    ratio: missing ? null : round(peerMs / segvolMs, 2),
  };
}

/** The row of a kernel case: {case, segvol_ms, torch_ms, ratio, gflops}. */
export function report(name: string, segvolMs: number, torchMs: number | null, flops: number): void {
  console.log(JSON.stringify({ case: name, ...versus(segvolMs, torchMs, 2), gflops: round(flops / segvolMs / 1e6, 1) }));
}

/** The cuda backend, or null after saying why it is unavailable (and failing the run). */
export function requireCuda(why: string): BackendInfo | null {
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (cuda.available) return cuda;
  console.error(`${why}: ${cuda.reason}`);
  process.exitCode = 1;
  return null;
}

/**
 * One training step of `model` on `input` through segvol's trainStep (the step the Trainer
 * runs): forward in training mode, `loss` against `labels`, backward, finite checks, update.
 * Cases timed against a PyTorch peer pass checkFinite: false, since the peer checks nothing.
 */
export function supervisedStep(model: ModelBase, optimizer: Optimizer, input: ModelInput, labels: Tensor,
  options: { loss: LossOptions; lr: number; schedule?: MemorySchedule; checkFinite?: boolean }): Promise<StepResult> {
  return trainStep(model, optimizer, async () => {
    const y = await model.forward(input, { training: true, schedule: options.schedule });
    const loss = ops.loss(y, labels, options.loss);
    y.dispose();
    return loss;
  }, { lr: options.lr, checkFinite: options.checkFinite });
}

/** What a process that ran only training steps measured: its median step and its two memory peaks. */
export interface StepMeasurement {
  segvol_ms: number;
  tensor_peak_mib: number;
  peak_rss_mib: number;
  /** Convolution and matrix-product GFLOP of one step, as segvol's profiler counts them. */
  gflop: number;
}

/**
 * GFLOP of one run of a case: `runs` calls of work (a timing function called with one repeat
 * runs its warm-ups too) under the profiler, which counts the FLOPs of convolutions and matrix
 * products (every tap of a kernel, padding included, as PyTorch's counters do). Run after the
 * timing, so the profiler's bookkeeping is not timed. Dividing by a side's ms gives its rate;
 * the peer runs the same products, so the same count gives its rate too.
 */
export async function gflopPerRun(work: () => Promise<unknown>, runs: number): Promise<number> {
  const { records } = await profile(work);
  return records.reduce((sum, r) => sum + r.flops * r.count, 0) / runs / 1e9;
}

/** Times `step` after two warm-up steps; the tensor peak is that of the timed steps alone; then counts one step's GFLOP. */
export async function measureSteps(step: () => Promise<unknown>, repeats: number): Promise<StepMeasurement> {
  await step();
  await step();
  resetPeakMemory('cpu');
  const segvolMs = await timeOnDevice(async () => { await step(); }, repeats, { warmup: 0 });
  const memory = { tensor_peak_mib: memoryStats().cpu.peakBytes / 2 ** 20, peak_rss_mib: process.resourceUsage().maxRSS / 1024 };
  return { segvol_ms: segvolMs, ...memory, gflop: await gflopPerRun(step, 1) };
}

/** The memory columns of a step measured in its own process against its peer's. */
export function peakMemoryColumns(segvol: StepMeasurement, peer: { peak_rss_mib?: number } | null): Record<string, number | null> {
  return {
    segvol_tensor_peak_mib: Math.round(segvol.tensor_peak_mib), segvol_peak_rss_mib: Math.round(segvol.peak_rss_mib),
    torch_peak_rss_mib: peer?.peak_rss_mib === undefined ? null : Math.round(peer.peak_rss_mib),
  };
}
