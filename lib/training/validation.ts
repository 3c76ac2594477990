// Validation during a fit: held-out windows (drawn once, seeded) scored by the
// phase's loss or by segmentation measures of the most probable class per voxel
// against the labels (masked voxels excluded); the best score is tracked, and the
// fit may stop early when it stops improving.
import { noGrad } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { Random } from '../core/random';
import type { Tensor } from '../core/tensor';
import { positiveInteger, rejectUnknown, size3 } from '../core/validate';
import type { SampledWindow } from '../data/samplers';
import type { ModelBase } from '../nn/model';
import { argmaxClasses } from '../ops';
import { Batch } from './batch';
import { validationKeys, type ValidationOptions } from './options';
import { inputNames, type Plan } from './plan';

/**
 * 'loss': the phase's loss (lower is better). 'dice': the mean Dice over the classes
 * 1..K-1 present in the prediction or the truth; 'meanIU': the mean intersection over
 * union over the classes present; 'accuracy': the share of voxels right (higher is better).
 */
export type ValidationMetric = 'loss' | 'dice' | 'meanIU' | 'accuracy';
export const validationMetrics: readonly ValidationMetric[] = ['loss', 'dice', 'meanIU', 'accuracy'];

export function higherIsBetter(metric: ValidationMetric): boolean {
  return metric !== 'loss';
}

/**
 * Adds the confusion counts [truth * K + predicted] of argmax(probs) against the labels:
 * probs (N, K, S) and labels, mask (N, S) as flat host arrays, S the spatial size.
 */
export function addConfusion(counts: Float64Array, probs: Float32Array, n: number, classes: number, labels: Float32Array, mask?: Float32Array): void {
  const s = labels.length / n;
  if (!Number.isInteger(s) || probs.length !== n * classes * s || counts.length !== classes * classes) {
    throw new SegvolError('ERR_SHAPE', `validation: ${probs.length} probabilities do not match ${labels.length} labels of ${classes} classes in ${n} windows`);
  }
  const predicted = argmaxClasses(probs, n, classes);
  for (let i = 0; i < n * s; ++i) {
    if (mask && mask[i] === 0) continue;
    const truth = labels[i]!;
    if (truth >= 0 && truth < classes) counts[truth * classes + predicted[i]!]! += 1;
  }
}

/** A segmentation score from confusion counts [truth * K + predicted]. */
export function scoreConfusion(counts: Float64Array, classes: number, metric: Exclude<ValidationMetric, 'loss'>): number {
  const tp = (c: number) => counts[c * classes + c]!;
  const row = (c: number) => { let s = 0; for (let k = 0; k < classes; ++k) s += counts[c * classes + k]!; return s; };
  const col = (c: number) => { let s = 0; for (let k = 0; k < classes; ++k) s += counts[k * classes + c]!; return s; };
  if (metric === 'accuracy') {
    let right = 0, all = 0;
    for (let c = 0; c < classes; ++c) {
      right += tp(c);
      all += row(c);
    }
    return all > 0 ? right / all : NaN;
  }
  const scores: number[] = [];
  for (let c = metric === 'dice' ? 1 : 0; c < classes; ++c) {
    const truth = row(c), predicted = col(c);
    if (truth + predicted === 0) continue;  // absent on both sides: no score
    scores.push(metric === 'dice' ? (2 * tp(c)) / (truth + predicted) : tp(c) / (truth + predicted - tp(c)));
  }
  return scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : NaN;
}

/** Validation progress, saved in checkpoints so a resumed fit stops at the same step. */
export interface ValidationState {
  best: number;
  bestStep: number;
  sinceBest: number;
}

/** Scores a model on held-out windows during a fit and keeps the best score. */
export class Validator {
  readonly metric: ValidationMetric;
  /** Undefined until the first score (or restored from a checkpoint). */
  state: ValidationState | undefined;
  private readonly windows = new Map<string, SampledWindow[]>();
  private readonly names: Map<string, string>;

  constructor(private readonly model: ModelBase, readonly options: ValidationOptions) {
    if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `fit: validation: expected options, received ${describe(options)}`);
    rejectUnknown(options, validationKeys, 'fit: validation');
    if (!options.data || typeof options.data.sample !== 'function') throw new SegvolError('ERR_ARGUMENT', 'fit: validation: expected data, a DataSource');
    this.metric = options.metric ?? 'loss';
    if (!validationMetrics.includes(this.metric)) {
      throw new SegvolError('ERR_ARGUMENT', `fit: validation: expected metric ${validationMetrics.join(', ')}, received ${describe(this.metric)}`);
    }
    if (options.windows !== undefined) positiveInteger(options.windows, 'fit: validation: windows');
    if (options.every !== undefined) positiveInteger(options.every, 'fit: validation: every');
    if (options.patience !== undefined) positiveInteger(options.patience, 'fit: validation: patience');
    if (options.size !== undefined) size3(options.size, 'fit: validation: size');
    this.names = inputNames(model, options.data, 'fit: validation');
  }

  /** Refuses a segmentation measure for phases whose loss compares with computed targets (affinities): they have no classes to score. */
  checkPlans(plans: readonly Plan[]): void {
    if (this.metric === 'loss') return;
    const other = plans.find((p) => p.loss.comparesClasses === false);
    if (other) {
      throw new SegvolError('ERR_ARGUMENT', `fit: validation: metric '${this.metric}' scores the most probable class per voxel, but ${other.name}'s loss ` +
        "compares with targets computed from the labels (affinities); use metric 'loss'");
    }
  }

  /** The middle plane of the first window at the last score: input | truth | prediction (the training log draws it). */
  lastSlice: ValidationSlice | undefined;

  /** Whether a score is due after this many steps of the phase. */
  due(plan: Plan, stepInPhase: number): boolean {
    return stepInPhase % (this.options.every ?? plan.stepsPerEpoch) === 0 || stepInPhase === plan.steps;
  }

  /** The model's score on the validation windows (drawn once per size with their own seed), in inference mode. */
  async score(plan: Plan): Promise<number> {
    const size = this.options.size ?? plan.size;
    const key = size.join('x');
    let windows = this.windows.get(key);
    if (!windows) {
      const random = new Random(0x7a11d);
      windows = Array.from({ length: this.options.windows ?? 8 }, () => this.options.data.sample(random, size));
      this.windows.set(key, windows);
    }
    const classes = this.model.outChannels;
    const counts = new Float64Array(classes * classes);
    let lossSum = 0;
    for (let start = 0; start < windows.length; start += plan.batchSize) {
      const batch = new Batch(windows.slice(start, start + plan.batchSize), size, this.options.data.inputs, this.names, this.model.device);
      try {
        await noGrad(async () => {
          const outputs = await this.model.forwardOutputs(batch.inputs, { training: false });
          const out = outputs[this.model.outputNames[0]!]!;
          try {
            if (start === 0) {
              // The picture is for people: an output it cannot draw skips the picture, not the training.
              try {
                this.lastSlice = middleSlice(batch, out, plan.loss.comparesClasses !== false && classes > 1);
              } catch {
                this.lastSlice = undefined;
              }
            }
            if (this.metric === 'loss') {
              const loss = await plan.loss.of(outputs, batch);
              lossSum += loss.toArray()[0]! * batch.count;
              loss.dispose();
            } else {
              addConfusion(counts, out.toArray(), batch.count, classes, batch.labels(out).toArray(), batch.mask(out)?.toArray());
            }
          } finally {
            for (const t of Object.values(outputs)) t.dispose();
          }
        });
      } finally {
        batch.dispose();
      }
    }
    return this.metric === 'loss' ? lossSum / windows.length : scoreConfusion(counts, classes, this.metric);
  }

  /** Records a score made after `step` steps: whether it is the best so far, and whether patience ran out. */
  record(score: number, step: number): { improved: boolean; stop: boolean } {
    const state = this.state ??= { best: NaN, bestStep: 0, sinceBest: 0 };
    const better = Number.isNaN(state.best) || (higherIsBetter(this.metric) ? score > state.best : score < state.best);
    const improved = better && Number.isFinite(score);
    if (improved) Object.assign(state, { best: score, bestStep: step, sinceBest: 0 });
    else state.sinceBest += 1;
    return { improved, stop: this.options.patience !== undefined && state.sinceBest >= this.options.patience };
  }
}

/** One plane of a validation window, for a picture: the input cropped to the output's extent. */
export interface ValidationSlice {
  height: number;
  width: number;
  input: Float32Array;
  truth: Float32Array;
  /** Class ids (argmax) where the loss compares classes, else output channel 0 in grey. */
  prediction: Float32Array;
  predictionKind: 'labels' | 'grey';
}

/** The middle output plane of window 0: the input's channel 0 at the same voxels, the truth, and the prediction. */
function middleSlice(batch: Batch, out: Tensor, classesCompared: boolean): ValidationSlice {
  // out: (N, K, d, h, w) or (N, K, h, w)
  const spatial = out.shape.length === 5 ? out.shape.slice(2) : [1, ...out.shape.slice(2)];
  const [d, h, w] = spatial as [number, number, number];
  const k = out.shape[1]!, plane = h * w, z = Math.floor(d / 2);
  const o = out.toArray();
  const prediction = new Float32Array(plane);
  for (let i = 0; i < plane; ++i) {
    if (!classesCompared) {
      prediction[i] = o[z * plane + i]!;
      continue;
    }
    let best = 0;
    for (let c = 1; c < k; ++c) if (o[(c * d + z) * plane + i]! > o[(best * d + z) * plane + i]!) best = c;
    prediction[i] = best;
  }
  const truth = batch.labels(out).toArray().slice(z * plane, (z + 1) * plane);
  // x: (N, C, D, H, W) or (N, C, H, W); 'valid' networks' outputs are centred in their inputs.
  const x = Object.values(batch.inputs)[0]!;
  const xs = x.shape.length === 5 ? x.shape.slice(2) : [1, ...x.shape.slice(2)];
  const [D, H, W] = xs as [number, number, number];
  const [oz, oy, ox] = [Math.floor((D - d) / 2), Math.floor((H - h) / 2), Math.floor((W - w) / 2)];
  const xa = x.toArray();
  const input = new Float32Array(plane);
  for (let r = 0; r < h; ++r) input.set(xa.subarray(((oz + z) * H + oy + r) * W + ox, ((oz + z) * H + oy + r) * W + ox + w), r * w);
  return { height: h, width: w, input, truth, prediction, predictionKind: classesCompared ? 'labels' : 'grey' };
}
