// What a fit is told: the trainer's defaults, the phases (each free to change the
// window, batch, steps, loss, weighting, learning rate, optimizer, data and window
// filter), validation, checkpoints and the log; and what it reports back.
import type { Tensor } from '../core/tensor';
import type { DataSource, Size3 } from '../data/samplers';
import type { MemorySchedule } from '../nn/layer';
import type { LossInput, LossKind, LossNormalization, TargetLossKind } from '../ops';
import type { Batch } from './batch';
import type { ClassWeighting } from './losses';
import type { OptimizerConfig } from './optimizers';
import type { Schedule } from './schedules';
import type { DistributedOptions } from './distributed';
import type { LossScalingOptions } from './loss_scaling';
import type { GradientClipping } from './step';
import type { TargetKind } from './targets';
import type { ValidationMetric } from './validation';

export interface LossConfig {
  /** A LossKind against class ids; with targets 'affinities', 'squaredError' or 'binaryCrossEntropy' (TargetLossKind). */
  kind: LossKind | TargetLossKind;
  /**
   * What the output is compared with: 'classes' (default), the labels as class ids; 'affinities',
   * the affinities of the labels as instance ids (0 = boundary), computed per window: the model
   * outputs 3 channels (z, y, x) in [0, 1].
   */
  targets?: TargetKind;
  /** What the model outputs: class probabilities (default; checked) or raw scores, 'logits' (PyTorch's cross_entropy). */
  input?: LossInput;
  /** With targets 'affinities', the weights of affinity 0 and 1 (numbers, 'inverseFrequency' or 'medianCount'), from each batch. */
  classWeights?: ClassWeighting;
  /** Where computed class weights come from: each batch, or all the data once (default 'global'; 'patch' for computed targets). */
  weightsFrom?: 'patch' | 'global';
  /** 'weights' (default): the weighted mean; 'voxels': divided by the output voxels (ZNN). */
  normalize?: LossNormalization;
  /** The output it applies to (multi-output models); default the first. */
  output?: string;
  /** Its weight in the sum, with several losses (default 1). */
  weight?: number;
}

/** A loss written with ops (so it is taped): outputs by name and the batch in, a (1) tensor out. */
export type LossFunction = (outputs: Readonly<Record<string, Tensor>>, batch: Batch) => Tensor | Promise<Tensor>;

/** A loss kind, one configured loss, several summed, or a function. */
export type LossSpec = LossKind | LossConfig | readonly LossConfig[] | LossFunction;

/** Accepts or rejects a drawn window by its labels (cut to the output window): two-phase training's "windows with tumour". */
export type WindowFilter = (window: { labels: Float32Array; mask?: Float32Array; size: readonly number[] }) => boolean;

/** A filter accepting windows with at least minVoxels voxels of any of these classes. */
export function containsClass(classes: number | readonly number[], minVoxels = 1): WindowFilter {
  const wanted = new Set(typeof classes === 'number' ? [classes] : classes);
  return ({ labels, mask }) => {
    let hits = 0;
    for (let i = 0; i < labels.length; ++i) if (wanted.has(labels[i]!) && (!mask || mask[i] !== 0) && ++hits >= minVoxels) return true;
    return false;
  };
}

/** The window, length and batch of a phase (also FitOptions' one-phase shorthands). */
export interface PhaseShape {
  /** The input window (d, h, w). */
  size?: Size3;
  /** Or the output window of a dense network (ZNN's output patch): the input is this plus the field of view minus one. */
  outputSize?: Size3;
  /** Passes over the data; or give steps. */
  epochs?: number;
  steps?: number;
  /** Steps in an epoch. Default: one pass, the data's voxels over the voxels a step trains on (1 if the data does not know its size). */
  stepsPerEpoch?: number;
  /** Windows per step (default 1). The loss averages over all their voxels. */
  batchSize?: number;
}

/** One phase of a fit. Fields left out fall back to the fit's, then to the trainer's. */
export interface Phase extends PhaseShape {
  name?: string;
  loss?: LossSpec;
  /** A different update rule starts fresh optimizer state; the same one keeps it across phases. */
  optimizer?: OptimizerConfig;
  /** The learning rate over the phase's epochs; or a constant lr. */
  schedule?: Schedule;
  lr?: number;
  data?: DataSource;
  /** Only windows it accepts are trained on (drawn again up to filterTries times, default 100). */
  filter?: WindowFilter;
  filterTries?: number;
}

export interface TrainerOptions {
  /** Default loss (default 'squaredError', the PyraMiD-LSTM paper's). */
  loss?: LossSpec;
  /** Default: the paper's RMSprop with momentum. */
  optimizer?: OptimizerConfig;
  /** Default: the paper's decaying rate per phase, or the optimizer's lr as a constant. */
  schedule?: Schedule;
  /** Fixes window sampling (the model's seed fixes its initial weights). */
  seed?: number;
  /** Gradient clipping before each update: scale all gradients so their global L2 norm is at most maxNorm; clamp each entry to +-maxValue. */
  clipGradients?: GradientClipping;
  /**
   * The most memory a training step may take (bytes, or text like "12G"; default the
   * SEGVOL_MEMORY_BUDGET environment variable): each phase runs with the fastest
   * schedule whose predicted peak fits, and a phase whose window cannot fit is refused
   * before any step, naming a window that does (see docs/pyramid-lstm.md).
   */
  memoryBudget?: number | string;
  /** A fixed memory schedule instead (recomputed gates, directions at a time); ignored with a budget. */
  memorySchedule?: MemorySchedule;
  /**
   * How convolutions compute during fit() (default: whatever setConvMath set, 'fp32' unless changed).
   * 'bf16' (cpu and cuda): mixed precision: convolution operands in bfloat16 with float32
   * accumulation; weights, gradients, optimizer state, cell states and every other op stay
   * float32. On the cpu it needs AVX512-BF16 (refused here otherwise), on cuda compute
   * capability 8.0. 'fp16' (cuda): the same with IEEE half operands, and dynamic loss scaling
   * (see lossScaling). 'tf32' (cuda): tensor cores for float32 convolutions.
   * Process-wide for the length of each fit, restored after it. See docs/precision.md.
   */
  precision?: Precision;
  /**
   * Dynamic loss scaling, on by default with precision 'fp16' (PyTorch's GradScaler rule):
   * the loss's gradient is scaled before backward and the gradients unscaled before the
   * update; a step whose gradients overflow is skipped (weights untouched) and the scale
   * halves; it doubles after growthInterval clean steps. `false` turns it off; options
   * turn it on with any precision. Its state is saved in checkpoints.
   */
  lossScaling?: LossScalingOptions | false;
  /**
   * Data-parallel training over the ranks of an MPI job (started by mpirun or srun): each
   * rank draws batchSize / ranks windows of every batch (batchSize stays the global batch),
   * the gradients are averaged by an allreduce, and rank 0 alone writes checkpoints and the
   * log. Needs segvol built with MPI (ERR_NOT_BUILT otherwise). A rank that exits or stays
   * silent past timeoutSeconds (default 300) ends the others with ERR_PEER_LOST. See docs/cluster.md.
   */
  distributed?: 'mpi' | DistributedOptions;
  /**
   * How windows are drawn: 'stream' (default) from one generator in turn; 'indexed': window g
   * of step s from its own generator (seed, s, g), which data-parallel runs use (so N ranks at
   * batch b draw the windows one process at N * b draws). Distributed runs are always 'indexed'.
   */
  windowSeeds?: 'stream' | 'indexed';
}

/** The convolution math a Trainer runs with (see setConvMath). */
export type Precision = 'fp32' | 'bf16' | 'tf32' | 'fp16';
export const precisions: readonly Precision[] = ['fp32', 'bf16', 'tf32', 'fp16'];

/** Held-out data scored during a fit: the best model is kept, and training may stop early. */
export interface ValidationOptions {
  data: DataSource;
  /** Windows drawn once (seeded, the same every time) and scored (default 8). */
  windows?: number;
  /** Their size (default: the current phase's window). */
  size?: Size3;
  /** Steps between scores (default: each epoch's end). */
  every?: number;
  /** Default 'loss' (the phase's loss). */
  metric?: ValidationMetric;
  /** Stop after this many scores without improvement. */
  patience?: number;
}

/** The phases of a fit, or one phase given by PhaseShape's fields. */
export interface FitOptions extends PhaseShape {
  data: DataSource;
  phases?: readonly Phase[];
  /** Ends cleanly after the current step (writing a checkpoint when one is configured). */
  signal?: AbortSignal;
  onProgress?: (progress: Progress) => void;
  /**
   * Saves atomically every `every` steps (default: at the end only), at the end, and when stopped;
   * with validation, the best model also goes to `<path without extension>.best.safetensors`.
   */
  checkpoint?: { path: string; every?: number };
  /** Scores held-out windows during the fit; see ValidationOptions. */
  validation?: ValidationOptions;
  /**
   * A JSON-lines log (one line per step, one per validation), appended to: default
   * `<checkpoint path without extension>.log.jsonl` when checkpoints are written; false for none.
   */
  log?: string | false;
  /**
   * Awaited after each step (and its validation, log line and checkpoint), before the next:
   * other work interleaved with the fit, given the steps done so far (recursive training
   * trains its first network on between the second one's steps).
   */
  afterStep?: (step: number) => Promise<void> | void;
}

export interface Progress {
  /** 1-based phase index, of phases. */
  phase: number;
  phases: number;
  phaseName: string;
  /** Epoch within the phase (completed), of epochs. */
  epoch: number;
  epochs: number;
  /** Steps done in the whole plan, of totalSteps. */
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  batchSize: number;
  /** The global L2 norm of the step's gradients (before clipping). */
  gradNorm: number;
  /** Input voxels trained on per second. */
  voxelsPerSecond: number;
  etaSeconds: number;
  /** The validation score, on steps that computed one. */
  validation?: number;
  /** With loss scaling: the scale the step ran with, and whether its gradients overflowed (the step was skipped). */
  lossScale?: number;
  skipped?: boolean;
}

export interface FitResult {
  steps: number;
  lastLoss: number;
  aborted: boolean;
  /** Stopped because validation did not improve for `patience` scores. */
  stoppedEarly: boolean;
  /** The best validation score and its step, with validation. */
  validation?: { metric: ValidationMetric; best: number; bestStep: number };
}

export const trainerKeys = ['loss', 'optimizer', 'schedule', 'seed', 'clipGradients', 'memoryBudget', 'memorySchedule', 'precision', 'lossScaling', 'distributed', 'windowSeeds'] as const;
export const fitKeys = ['data', 'phases', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'signal', 'onProgress', 'checkpoint',
  'validation', 'log', 'afterStep'] as const;
export const validationKeys = ['data', 'windows', 'size', 'every', 'metric', 'patience'] as const;
export const phaseKeys = ['name', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule', 'lr',
  'data', 'filter', 'filterTries'] as const;
