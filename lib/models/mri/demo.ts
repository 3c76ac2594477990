// `segvol demo --model brats`: Tseng et al.'s cross-modality ConvLSTM on synthetic brain
// MR phantoms (BRATS cannot be shipped). Trains the preset, narrowed for a CPU, with the
// paper's two-phase regime for a time budget, then segments held-out phantoms and
// reports the BRATS regions' Dice and the mean IU, beside those of the untrained net.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../../core/tensor';
import { bratsClasses, bratsModalities, bratsSampler, type BratsCase } from './brats';
import { syntheticBrainMri } from './phantom';
import { normalizeNonzero } from '../../data/preprocess';
import { bratsMetrics, type BratsScores } from './scores';
import { predictVolume } from '../../inference/predict_volume';
import { writeVolume } from '../../io/volume_io';
import { writeSlicePanels } from '../../io/panels';
import { mriPresets as presets } from './network';
import type { CrossModalityConvLstm } from './network';
import { crossModalityPhases } from './regime';
import { Trainer, type Precision, type Progress } from '../../training/trainer';
import { argmaxClasses } from '../../ops';

export interface BratsDemoOptions {
  /** Training time budget in seconds (default 120), split 3:1 between the two phases. */
  seconds?: number;
  /** Or fixed step counts for the two phases (tests). */
  steps?: [number, number];
  /** Output folder (default ./segvol-demo-brats). */
  out?: string;
  seed?: number;
  /** Phantom size (default [24, 64, 64]) and counts of training and held-out cases (default 6 and 2). */
  size?: [number, number, number];
  trainCases?: number;
  testCases?: number;
  /** Feature channels per level (default 16; the paper's 64 is slow on a CPU). */
  channels?: number;
  /**
   * Adam's rates in phase 1 and phase 2 (default 1e-3 and 1e-4: ten times the paper's 1e-4 and
   * 1e-6's hundredfold, since a demo has minutes, not the paper's epochs over BRATS).
   */
  lr?: number;
  fineTuneLr?: number;
  /** The Trainer's convolution math (default: the process's, 'fp32' unless changed). */
  precision?: Precision;
  onProgress?: (progress: Progress, elapsedSeconds: number) => void;
}

export interface BratsDemoResult {
  steps: [number, number];
  /** Scores over the held-out phantoms (all their voxels), trained and untrained. */
  scores: BratsScores;
  untrained: BratsScores;
  files: string[];
  model: CrossModalityConvLstm;
}

function phantomCase(id: string, dims: [number, number, number], seed: number): BratsCase {
  const p = syntheticBrainMri({ depth: dims[0], height: dims[1], width: dims[2], seed });
  // The same pre-processing as loadBratsCase: each modality to z-scores over the brain.
  return { id, image: normalizeNonzero(p.image, [4, ...p.dims]), labels: p.labels, dims: p.dims, normalize: 'nonzero' };
}

/** Hard labels of held-out cases: stitched windows of `sequence` slices, argmax over classes. */
async function segmentCases(model: CrossModalityConvLstm, cases: readonly BratsCase[], sequence: number): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for (const c of cases) {
    const [D, H, W] = c.dims;
    const input = Tensor.fromArray(c.image, [1, 4, D, H, W]);
    const probs = await predictVolume(model, input, { window: [sequence, H, W], overlap: 0.5, preprocess: false });
    const p = probs.toArray();
    const n = D * H * W;
    out.push(argmaxClasses(p, 1, 5, new Int32Array(n)));
    input.dispose();
    probs.dispose();
  }
  return out;
}

function concatenate(parts: ArrayLike<number>[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(Array.from(p), o);
    o += p.length;
  }
  return out;
}

export async function runBratsDemo(options: BratsDemoOptions = {}): Promise<BratsDemoResult> {
  const seed = options.seed ?? 1;
  const dims = options.size ?? [24, 64, 64];
  const trainCount = options.trainCases ?? 6, testCount = options.testCases ?? 2;
  const out = path.resolve(options.out ?? 'segvol-demo-brats');
  const train = Array.from({ length: trainCount }, (_, i) => phantomCase(`phantom_${i + 1}`, dims, seed * 1000 + i + 1));
  const test = Array.from({ length: testCount }, (_, i) => phantomCase(`heldout_${i + 1}`, dims, seed * 1000 + 500 + i));
  const model = presets.crossModalityConvLstm({ channels: options.channels ?? 16, seed });
  model.info = {
    normalize: 'nonzero', channels: { input: [...bratsModalities] }, classes: [...bratsClasses], window: [3, dims[1], dims[2]],
    description: 'cross-modality ConvLSTM encoder-decoder (Tseng et al. 2017), demo on synthetic MR phantoms',
  };
  const truth = concatenate(test.map((c) => c.labels!));
  const untrained = bratsMetrics.brats(concatenate(await segmentCases(model, test, 3)), truth);

  const [p1, p2] = crossModalityPhases({
    plane: [dims[1], dims[2]], steps: options.steps ?? [1_000_000, 1_000_000], lr: options.lr ?? 1e-3, fineTuneLr: options.fineTuneLr ?? 1e-4,
  });
  const trainer = new Trainer(model, { seed, ...(options.precision ? { precision: options.precision } : {}) });
  const data = bratsSampler(train);
  const started = Date.now();
  const seconds = options.seconds ?? 120;
  const timed = (fraction: number) => (options.steps ? {} : { signal: AbortSignal.timeout(seconds * fraction * 1000) });
  const onProgress = (p: Progress) => options.onProgress?.(p, (Date.now() - started) / 1000);
  const first = await trainer.fit({ data, phases: [p1!], ...timed(0.75), onProgress });
  const second = await trainer.fit({ data, phases: [p2!], ...timed(0.25), onProgress });

  const predicted = await segmentCases(model, test, 3);
  const scores = bratsMetrics.brats(concatenate(predicted), truth);
  fs.mkdirSync(out, { recursive: true });
  const files = [path.join(out, 'heldout_1_prediction.nii.gz'), path.join(out, 'heldout_1_truth.nii.gz'), path.join(out, 'slice.png'), path.join(out, 'model.safetensors')];
  const [D, H, W] = dims;
  writeVolume(files[0]!, { data: Float32Array.from(predicted[0]!), shape: [D, H, W], dtype: 'float32' }, { dtype: 'uint8' });
  writeVolume(files[1]!, { data: test[0]!.labels!, shape: [D, H, W], dtype: 'float32' }, { dtype: 'uint8' });
  // The slice with the most tumour: flair, t1ce, truth, prediction.
  let z = 0, most = -1;
  for (let s = 0; s < D; ++s) {
    let k = 0;
    for (let i = s * H * W; i < (s + 1) * H * W; ++i) if (test[0]!.labels![i]! > 0) ++k;
    if (k > most) [most, z] = [k, s];
  }
  const n = D * H * W, plane = (a: ArrayLike<number>, offset: number) => Float32Array.from({ length: H * W }, (_, i) => a[offset + z * H * W + i]!);
  // Outside the brain (0 in every modality after the pre-processing) drawn black.
  const brain = plane(test[0]!.image, 0).map((_, i) => (bratsModalities.some((_m, m) => test[0]!.image[m * n + z * H * W + i] !== 0) ? 1 : 0));
  const shown = (m: number) => plane(test[0]!.image, m * n).map((v, i) => (brain[i] ? v : -Infinity));
  const flair = { data: shown(0), lo: -2.5, hi: 2.5 };
  writeSlicePanels(files[2]!, [
    ...bratsModalities.map((name, m) => ({ title: name, kind: 'grey' as const, data: shown(m), lo: -2.5, hi: 2.5 })),
    { title: 'truth', kind: 'labels', data: plane(test[0]!.labels!, 0), underlay: flair },
    { title: 'prediction', kind: 'labels', data: plane(predicted[0]!, 0), underlay: flair },
  ], W, H, { classes: model.info.classes ?? [...bratsClasses], columns: 3, caption: `held-out phantom, slice ${z + 1} of ${D} (the most tumour); labels over flair` });
  model.save(files[3]!);
  return { steps: [first.steps, second.steps - first.steps], scores, untrained, files, model };
}
