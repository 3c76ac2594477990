// `segvol demo`: the main job on an embedded default. Generates a synthetic EM-like
// stack, trains a small PyraMiD-LSTM network on the CPU for about a minute, reports
// the pixel error on held-out slices, and writes the prediction and a PNG slice.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VolumeSampler } from '../../data/samplers';
import { writeNpy } from '../../io/npy';
import { writeSlicePanels } from '../../io/panels';
import { pyramidPresets as presets } from './network';
import { syntheticEm } from '../../data/synthetic';
import { Tensor } from '../../core/tensor';
import { Trainer, type Precision, type Progress } from '../../training/trainer';

export interface DemoOptions {
  /** Training time budget (default 60). */
  seconds?: number;
  /** Output folder (default ./segvol-demo). */
  out?: string;
  seed?: number;
  /** Or exactly this many steps, however long they take (benchmarks and tests). */
  steps?: number;
  /** The Trainer's convolution math (default: the process's, 'fp32' unless changed). */
  precision?: Precision;
  /** Called after every training step. */
  onProgress?: (progress: Progress, elapsedSeconds: number) => void;
}

export interface DemoResult {
  steps: number;
  /** The loss of the last step, and the mean over the last 20 (less dependent on one window). */
  lastLoss: number;
  meanLossLast20: number;
  pixelError: number;
  /** Pixel error of thresholding the input at its slice mean (membranes are dark). */
  baselinePixelError: number;
  files: string[];
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const seconds = options.seconds ?? 60;
  const out = path.resolve(options.out ?? 'segvol-demo');
  const seed = options.seed ?? 1;
  const [D, H, W, held] = [24, 96, 96, 8];
  const em = syntheticEm({ depth: D, height: H, width: W, seed });
  const trainSlices = D - held;
  const sampler = new VolumeSampler({
    volume: em.image.subarray(0, trainSlices * H * W), shape: [1, trainSlices, H, W], labels: em.labels.subarray(0, trainSlices * H * W),
  });
  const model = presets.pyramidNet({ inChannels: 1, classes: 2, hidden: [8, 12], fc: [12], kernel: 5, seed });
  // The synthetic stack is roughly zero-mean already: the model takes it as it is.
  model.info = { normalize: 'none', classes: ['cell', 'membrane'], window: [8, 32, 32] };
  const trainer = new Trainer(model, {
    seed, loss: 'squaredError', optimizer: { kind: 'rmspropMomentum' }, schedule: { kind: 'paper' }, ...(options.precision ? { precision: options.precision } : {}),
  });
  const started = Date.now();
  const losses: number[] = [];
  const result = await trainer.fit({
    data: sampler,
    size: [8, 32, 32], steps: options.steps ?? 1_000_000,
    ...(options.steps === undefined ? { signal: AbortSignal.timeout(seconds * 1000) } : {}),
    onProgress: (p) => {
      losses.push(p.loss);
      options.onProgress?.(p, (Date.now() - started) / 1000);
    },
  });
  const last20 = losses.slice(-20);

  // Held-out slices: never sampled during training.
  const image = em.image.slice(trainSlices * H * W);
  const truth = em.labels.slice(trainSlices * H * W);
  const input = Tensor.fromArray(image, [1, 1, held, H, W]);
  const probs = await model.predict(input);
  const membrane = probs.toArray().slice(held * H * W);  // class 1 of (1, 2, held, H, W)
  let errors = 0, baselineErrors = 0;
  for (let i = 0; i < truth.length; ++i) {
    if ((membrane[i]! > 0.5 ? 1 : 0) !== truth[i]) ++errors;
    if ((image[i]! < 0 ? 1 : 0) !== truth[i]) ++baselineErrors;
  }
  fs.mkdirSync(out, { recursive: true });
  const files = [path.join(out, 'prediction.npy'), path.join(out, 'truth.npy'), path.join(out, 'input.npy'), path.join(out, 'slice.png')];
  writeNpy(files[0]!, { shape: [held, H, W], data: membrane });
  writeNpy(files[1]!, { shape: [held, H, W], data: truth });
  writeNpy(files[2]!, { shape: [held, H, W], data: image });
  const z = Math.floor(held / 2) * H * W;
  writeSlicePanels(files[3]!, [
    { title: 'input', kind: 'grey', data: image.subarray(z, z + H * W), lo: -2.5, hi: 2.5 },
    { title: 'truth', kind: 'labels', data: truth.subarray(z, z + H * W) },
    { title: 'prediction: P(membrane)', kind: 'grey', data: membrane.subarray(z, z + H * W), lo: 0, hi: 1, scale: 'P(membrane)' },
  ], W, H, { classes: model.info.classes ?? ['cell', 'membrane'], caption: `held-out slice ${Math.floor(held / 2) + 1} of ${held}, after ${result.steps} steps` });
  const weightsFile = path.join(out, 'model.safetensors');
  trainer.save(weightsFile);
  files.push(weightsFile);
  for (const t of [input, probs]) t.dispose();
  model.dispose();
  return {
    steps: result.steps, lastLoss: result.lastLoss, meanLossLast20: last20.reduce((a, b) => a + b, 0) / Math.max(1, last20.length), pixelError: errors / truth.length, baselinePixelError: baselineErrors / truth.length, files,
  };
}
