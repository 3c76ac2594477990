// Training: per step, a batch of windows is drawn (on the main thread, while the
// previous step computes), the model's forward function and the loss run on a
// GradientTape, backward gives every parameter's gradient, and the optimizer
// updates in place. A fit is a list of phases, each free to change the window,
// batch, steps, loss, weighting, learning rate, optimizer, data and window filter.
// Checkpoints resume bit-exactly, in the middle of any phase.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GradientTape, noGrad } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native } from '../core/native';
import { Random } from '../core/random';
import { handleOf, Tensor } from '../core/tensor';
import { classStatistics, type DataSource, type SampledWindow, type Size3 } from '../data/samplers';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors';
import type { MemorySchedule } from '../nn/layer';
import type { ModelBase } from '../nn/model';
import { lossKinds, ops, type LossKind, type LossNormalization } from '../ops';
import { Batch, cropWindow } from './batch';
import { classWeightsFromCounts, classWeightsFromStatistics, computedWeightings, type ClassWeighting, type ComputedWeighting } from './losses';
import { checkOptimizerConfig, Optimizer, sameUpdateRule, type OptimizerConfig } from './optimizers';
import { learningRate, type Schedule } from './schedules';
import { estimateStepMemory, parseBudget, planMemory, type StepMemory } from './memory';
import { addConfusion, higherIsBetter, scoreConfusion, validationMetrics, type ValidationMetric } from './validation';

export interface LossConfig {
  kind: LossKind;
  classWeights?: ClassWeighting;
  /** Where computed class weights come from: each batch, or all the data once (default 'global'). */
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
  clipGradients?: { maxNorm?: number; maxValue?: number };
  /**
   * The most memory a training step may take (bytes, or text like "12G"; default the
   * SEGVOL_MEMORY_BUDGET environment variable): each phase runs with the fastest
   * schedule whose predicted peak fits, and a phase whose window cannot fit is refused
   * before any step, naming a window that does (see docs/pyramid-lstm.md).
   */
  memoryBudget?: number | string;
  /** A fixed memory schedule instead (recomputed gates, directions at a time); ignored with a budget. */
  memorySchedule?: MemorySchedule;
}

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

interface Position {
  phase: number;
  /** Steps done in the phase. */
  stepInPhase: number;
  /** Steps done in all. */
  step: number;
}

/** Validation progress, saved in checkpoints so a resumed fit stops at the same step. */
interface ValidationState {
  best: number;
  bestStep: number;
  sinceBest: number;
}

/** A phase with every field resolved. */
interface Plan {
  index: number;
  name: string;
  size: Size3;
  steps: number;
  stepsPerEpoch: number;
  batchSize: number;
  loss: LossSpec;
  optimizer: OptimizerConfig;
  schedule: Schedule;
  data: DataSource;
  names: Map<string, string>;
  filter: WindowFilter | undefined;
  filterTries: number;
  outputSize: number[];
  /** How the forward pass trades memory for time, and the predicted peak (when the model's memory can be predicted). */
  memory: MemorySchedule;
  memoryEstimate: StepMemory | undefined;
}

const trainerKeys = new Set(['loss', 'optimizer', 'schedule', 'seed', 'clipGradients', 'memoryBudget', 'memorySchedule']);
const fitKeys = new Set(['data', 'phases', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'signal', 'onProgress', 'checkpoint',
  'validation', 'log']);
const validationKeys = new Set(['data', 'windows', 'size', 'every', 'metric', 'patience']);
const phaseKeys = new Set(['name', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule', 'lr',
  'data', 'filter', 'filterTries']);

function rejectUnknown(object: object, known: Set<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) throw new SegvolError('ERR_ARGUMENT', `${where}: unknown option '${key}'; known: ${[...known].join(', ')}`);
  }
}

function positiveInteger(value: unknown, where: string, zeroAllowed = false): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected an integer ${zeroAllowed ? '>= 0' : '>= 1'}, received ${describe(value)}`);
  }
  return value;
}

function checkSize(size: unknown, where: string): Size3 {
  if (!Array.isArray(size) || size.length !== 3 || size.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected three positive integers (d, h, w), received ${describe(size)}`);
  }
  return [size[0], size[1], size[2]] as Size3;
}

function lossConfigs(spec: LossSpec): LossConfig[] | undefined {
  if (typeof spec === 'function') return undefined;
  const list = typeof spec === 'string' ? [{ kind: spec }] : Array.isArray(spec) ? [...spec as readonly LossConfig[]] : [spec as LossConfig];
  for (const c of list) {
    if (!lossKinds.includes(c.kind)) {
      throw new SegvolError('ERR_ARGUMENT', `Trainer: expected loss ${lossKinds.join(', ')}, received ${describe(c.kind)}`);
    }
  }
  return list;
}

function withoutExtension(file: string): string {
  return file.slice(0, file.length - path.extname(file).length);
}

function appendLog(file: string, entry: object): void {
  fs.appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

export declare interface Trainer {
  on(event: 'progress', listener: (progress: Progress) => void): this;
  on(event: 'checkpoint', listener: (info: { path: string; step: number }) => void): this;
}

export class Trainer extends EventEmitter {
  optimizer: Optimizer;
  private readonly defaultLoss: LossSpec;
  private readonly defaultOptimizer: OptimizerConfig;
  private readonly random: Random;
  private position: Position = { phase: 0, stepInPhase: 0, step: 0 };
  /** A checkpoint of format 1 counted epochs of its fit's stepsPerEpoch; converted when the fit is known. */
  private legacyPosition: { epoch: number; stepInEpoch: number } | undefined;
  private validationState: ValidationState | undefined;
  private readonly validationWindows = new Map<string, SampledWindow[]>();
  private readonly budget: number | undefined;
  private prefetched: { phase: number; windows: SampledWindow[]; stateBefore: number } | undefined;
  private readonly globalWeights = new Map<DataSource, Map<string, Float32Array>>();

  constructor(readonly model: ModelBase, private readonly options: TrainerOptions = {}) {
    super();
    rejectUnknown(options, trainerKeys, 'Trainer');
    this.defaultLoss = options.loss ?? 'squaredError';
    lossConfigs(this.defaultLoss);
    this.defaultOptimizer = options.optimizer ?? { kind: 'rmspropMomentum' };
    this.optimizer = new Optimizer(this.defaultOptimizer);
    if (options.schedule) learningRate(options.schedule, 0);
    const clip = options.clipGradients;
    if (clip !== undefined) {
      for (const [name, v] of Object.entries(clip)) {
        if (!['maxNorm', 'maxValue'].includes(name)) throw new SegvolError('ERR_ARGUMENT', `Trainer: clipGradients: unknown option '${name}' (maxNorm, maxValue)`);
        if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) {
          throw new SegvolError('ERR_ARGUMENT', `Trainer: clipGradients.${name}: expected a positive number, received ${describe(v)}`);
        }
      }
    }
    const budget = options.memoryBudget ?? process.env.SEGVOL_MEMORY_BUDGET;
    this.budget = budget === undefined || budget === '' ? undefined : parseBudget(budget, options.memoryBudget !== undefined ? 'Trainer: memoryBudget' : 'SEGVOL_MEMORY_BUDGET');
    this.random = new Random(options.seed ?? 0);
  }

  /** Each phase's predicted peak memory per step and the schedule it will run with (undefined where it cannot be predicted). */
  memoryPlan(options: FitOptions): Array<{ phase: string; estimate: StepMemory | undefined }> {
    return this.plans(options).map((p) => ({ phase: p.name, estimate: p.memoryEstimate }));
  }

  /** Steps done so far (across fits and resumes). */
  get step(): number {
    return this.position.step;
  }

  /** The trainer's default schedule: the options', else the optimizer's constant lr, else the paper's. */
  private scheduleFor(optimizer: OptimizerConfig): Schedule {
    if (this.options.schedule) return this.options.schedule;
    if (optimizer.lr !== undefined) return { kind: 'constant', lr: optimizer.lr };
    return { kind: 'paper' };
  }

  /** Resolves each phase against the fit's and the trainer's settings, checking everything before any step. */
  private plans(options: FitOptions): Plan[] {
    const phases: readonly Phase[] = options.phases ?? [{}];
    if (!Array.isArray(phases) || phases.length === 0) throw new SegvolError('ERR_ARGUMENT', 'fit: expected at least one phase');
    return phases.map((phase, index) => {
      const where = phases.length > 1 || options.phases ? `fit: phase ${index + 1}${phase.name ? ` (${phase.name})` : ''}` : 'fit';
      rejectUnknown(phase, phaseKeys, where);
      const data = phase.data ?? options.data;
      if (!data || typeof data.sample !== 'function' || typeof data.inputs !== 'object') {
        throw new SegvolError('ERR_ARGUMENT', `${where}: expected data, a DataSource (VolumeSampler, MultiSampler, ...)`);
      }
      const names = this.inputNames(data, where);
      const outputSize = phase.outputSize ?? (phase.size ? undefined : options.outputSize);
      let size: Size3;
      if (outputSize !== undefined) {
        const out = checkSize(outputSize, `${where}: outputSize`);
        const fov = this.model.fieldOfView();
        if (!fov || fov.length !== 3) {
          throw new SegvolError('ERR_ARGUMENT', `${where}: outputSize needs a dense 3D network (stride 1 throughout); give size, the input window`);
        }
        size = [out[0] + fov[0]! - 1, out[1] + fov[1]! - 1, out[2] + fov[2]! - 1];
      } else {
        size = checkSize(phase.size ?? options.size ?? [8, 64, 64], `${where}: size`);
      }
      const window = this.model.outputWindow(size);
      const batchSize = positiveInteger(phase.batchSize ?? options.batchSize ?? 1, `${where}: batchSize`);
      // An epoch is a pass over the data: as many steps as fill its voxels with output windows.
      const outputVoxels = window.size.reduce((a, b) => a * b, 1) * batchSize;
      const pass = data.voxels !== undefined ? Math.max(1, Math.ceil(data.voxels / outputVoxels)) : 1;
      const stepsPerEpoch = positiveInteger(phase.stepsPerEpoch ?? options.stepsPerEpoch ?? pass, `${where}: stepsPerEpoch`);
      let steps: number;
      if (phase.steps !== undefined || (phase.epochs === undefined && options.steps !== undefined && options.phases === undefined)) {
        steps = positiveInteger(phase.steps ?? options.steps, `${where}: steps`, true);
      } else {
        steps = stepsPerEpoch * positiveInteger(phase.epochs ?? (options.phases ? undefined : options.epochs) ?? 1, `${where}: epochs`, true);
      }
      const optimizer = phase.optimizer ?? this.defaultOptimizer;
      checkOptimizerConfig(optimizer);
      let schedule = phase.schedule ?? (phase.lr !== undefined ? { kind: 'constant', lr: phase.lr } as const : undefined);
      schedule ??= phase.optimizer?.lr !== undefined ? { kind: 'constant', lr: phase.optimizer.lr } : this.scheduleFor(optimizer);
      learningRate(schedule, 0);
      const loss = phase.loss ?? this.defaultLoss;
      lossConfigs(loss);
      if (phase.filter !== undefined && typeof phase.filter !== 'function') {
        throw new SegvolError('ERR_ARGUMENT', `${where}: expected filter as a function of the window's labels (see containsClass)`);
      }
      const inputShape = [batchSize, this.model.inChannels, ...size];
      const memoryEstimate = this.budget !== undefined ? planMemory(this.model, inputShape, this.budget)
        : estimateStepMemory(this.model, inputShape, { schedule: this.options.memorySchedule ?? {} });
      return {
        index, name: phase.name ?? `phase ${index + 1}`, size, steps, stepsPerEpoch, batchSize,
        memory: memoryEstimate?.schedule ?? this.options.memorySchedule ?? {}, memoryEstimate,
        loss, optimizer, schedule, data, names, filter: phase.filter, filterTries: positiveInteger(phase.filterTries ?? 100, `${where}: filterTries`),
        outputSize: window.size,
      };
    });
  }

  /** Maps each model input to a data input: by name, or the only one to the only one. */
  private inputNames(data: DataSource, where: string): Map<string, string> {
    const modelInputs = Object.entries(this.model.inputs);
    const dataInputs = Object.entries(data.inputs);
    const describeInputs = (e: Array<[string, number]>) => e.map(([n, c]) => `${n} (${c} channel${c === 1 ? '' : 's'})`).join(', ');
    const names = new Map<string, string>();
    if (modelInputs.length === 1 && dataInputs.length === 1) {
      names.set(modelInputs[0]![0], dataInputs[0]![0]);
    } else {
      for (const [name] of modelInputs) {
        if (!(name in data.inputs)) {
          throw new SegvolError('ERR_SHAPE', `${where}: the model reads ${describeInputs(modelInputs)}, the data has ${describeInputs(dataInputs)}; ` +
            'name the data inputs like the model inputs');
        }
        names.set(name, name);
      }
    }
    for (const [modelName, dataName] of names) {
      if (this.model.inputs[modelName] !== data.inputs[dataName]) {
        throw new SegvolError('ERR_SHAPE', `${where}: the data has ${data.inputs[dataName]} channels for input '${dataName}', the model expects ` +
          `${this.model.inputs[modelName]}${modelInputs.length === 1 ? '' : ` for '${modelName}'`}`);
      }
    }
    return names;
  }

  /**
   * Trains through the phases. A new trainer starts at the beginning; after resume() it goes on
   * from the saved position; after a finished fit, the next fit starts its plan anew.
   */
  async fit(options: FitOptions): Promise<FitResult> {
    if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `fit: expected options, received ${describe(options)}`);
    rejectUnknown(options, fitKeys, 'fit');
    const plans = this.plans(options);
    const validation = this.checkValidation(options.validation);
    const logFile = options.log === false ? undefined : options.log ?? (options.checkpoint ? `${withoutExtension(options.checkpoint.path)}.log.jsonl` : undefined);
    const bestFile = validation && options.checkpoint ? `${withoutExtension(options.checkpoint.path)}.best.safetensors` : undefined;
    if (this.legacyPosition) {
      // Format 1: epochs of the fit's stepsPerEpoch (1 unless configured).
      this.position.stepInPhase = this.legacyPosition.epoch * (options.stepsPerEpoch ?? 1) + this.legacyPosition.stepInEpoch;
      this.legacyPosition = undefined;
    }
    if (this.position.phase >= plans.length) {
      throw new SegvolError('ERR_ARGUMENT', `fit: the checkpoint is in phase ${this.position.phase + 1}, but this fit has ${plans.length}; ` +
        'resume with the phases it was trained with');
    }
    const totalSteps = plans.reduce((n, p) => n + p.steps, 0);
    const stepsBefore = (pos: Position) => plans.slice(0, pos.phase).reduce((n, p) => n + p.steps, 0) + pos.stepInPhase;
    const startedAt = Date.now();
    const startStep = stepsBefore(this.position);
    let lastLoss = NaN;
    let voxels = 0;
    let entered = -1;
    const result = (extra: Partial<FitResult>): FitResult => ({
      steps: this.position.step, lastLoss, aborted: false, stoppedEarly: false,
      ...(validation && this.validationState ? { validation: { metric: validation.metric, best: this.validationState.best, bestStep: this.validationState.bestStep } } : {}),
      ...extra,
    });
    while (true) {
      const plan = plans[this.position.phase]!;
      if (this.position.stepInPhase >= plan.steps) {
        // The end of the last phase stays the saved position, so a checkpoint of a finished
        // run resumes into a longer plan (more steps) where it left off.
        if (this.position.phase === plans.length - 1) break;
        this.position = { ...this.position, phase: this.position.phase + 1, stepInPhase: 0 };
        continue;
      }
      if (entered !== plan.index) {
        entered = plan.index;
        if (!sameUpdateRule(this.optimizer.config, plan.optimizer)) {
          this.optimizer.dispose();
          this.optimizer = new Optimizer(plan.optimizer);
        }
      }
      if (options.signal?.aborted) {
        this.dropPrefetched();
        if (options.checkpoint) this.save(options.checkpoint.path);
        return result({ aborted: true });
      }
      const epoch = Math.floor(this.position.stepInPhase / plan.stepsPerEpoch);
      const lr = learningRate(plan.schedule, epoch, this.position.stepInPhase);
      let windows: SampledWindow[];
      if (this.prefetched && this.prefetched.phase === plan.index) {
        windows = this.prefetched.windows;
        this.prefetched = undefined;
      } else {
        this.dropPrefetched();
        windows = this.drawWindows(plan);
      }
      const step = this.trainStep(plan, windows, lr, options.checkpoint?.path);
      // While the compute thread runs this step, draw the next batch on the main thread.
      const next = this.position.stepInPhase + 1 >= plan.steps ? plans[plan.index + 1] : plan;
      if (next && next.steps > 0 && !options.signal?.aborted) {
        const stateBefore = this.random.getState();
        try {
          this.prefetched = { phase: next.index, windows: this.drawWindows(next), stateBefore };
        } catch {
          this.random.setState(stateBefore);  // the error surfaces when that step draws for itself
        }
      }
      let stepResult: { loss: number; gradNorm: number };
      try {
        stepResult = await step;
      } catch (error) {
        this.dropPrefetched();
        throw error;
      }
      lastLoss = stepResult.loss;
      voxels += plan.batchSize * plan.size[0] * plan.size[1] * plan.size[2];
      this.position.step += 1;
      this.position.stepInPhase += 1;
      const elapsed = (Date.now() - startedAt) / 1000;
      const done = stepsBefore(this.position);
      const progress: Progress = {
        phase: plan.index + 1, phases: plans.length, phaseName: plan.name,
        epoch: Math.floor(this.position.stepInPhase / plan.stepsPerEpoch), epochs: Math.ceil(plan.steps / plan.stepsPerEpoch),
        step: done, totalSteps, loss: lastLoss, lr, batchSize: plan.batchSize, gradNorm: stepResult.gradNorm,
        voxelsPerSecond: voxels / Math.max(elapsed, 1e-9), etaSeconds: ((totalSteps - done) * elapsed) / Math.max(done - startStep, 1),
      };
      let stopEarly = false;
      if (validation && (this.position.stepInPhase % (validation.every ?? plan.stepsPerEpoch) === 0 || this.position.stepInPhase === plan.steps)) {
        const score = await this.validate(plan, validation);
        progress.validation = score;
        const state = this.validationState ??= { best: NaN, bestStep: 0, sinceBest: 0 };
        const better = Number.isNaN(state.best) || (higherIsBetter(validation.metric) ? score > state.best : score < state.best);
        if (better && Number.isFinite(score)) {
          Object.assign(state, { best: score, bestStep: this.position.step, sinceBest: 0 });
          if (bestFile) this.model.save(bestFile);
        } else {
          state.sinceBest += 1;
        }
        stopEarly = validation.patience !== undefined && state.sinceBest >= validation.patience;
        if (logFile) appendLog(logFile, { step: this.position.step, phase: plan.index + 1, validation: score, metric: validation.metric, best: state.best, bestStep: state.bestStep });
      }
      if (logFile) {
        appendLog(logFile, { step: this.position.step, phase: plan.index + 1, epoch: progress.epoch, loss: lastLoss, lr, gradNorm: stepResult.gradNorm,
          batchSize: plan.batchSize, voxelsPerSecond: Math.round(progress.voxelsPerSecond), time: new Date().toISOString() });
      }
      options.onProgress?.(progress);
      this.emit('progress', progress);
      const every = options.checkpoint?.every;
      if (options.checkpoint && ((every && this.position.step % every === 0) || stopEarly)) this.save(options.checkpoint.path, this.prefetched?.stateBefore);
      if (stopEarly) {
        this.dropPrefetched();
        return result({ stoppedEarly: true });
      }
    }
    this.dropPrefetched();
    if (options.checkpoint) this.save(options.checkpoint.path);
    const finished = result({});
    // A finished plan: the next fit starts a new one (the step count goes on).
    this.position = { phase: 0, stepInPhase: 0, step: this.position.step };
    this.validationState = undefined;
    return finished;
  }

  private checkValidation(v: ValidationOptions | undefined): (ValidationOptions & { metric: ValidationMetric }) | undefined {
    if (v === undefined) return undefined;
    if (v === null || typeof v !== 'object') throw new SegvolError('ERR_ARGUMENT', `fit: validation: expected options, received ${describe(v)}`);
    rejectUnknown(v, validationKeys, 'fit: validation');
    if (!v.data || typeof v.data.sample !== 'function') throw new SegvolError('ERR_ARGUMENT', 'fit: validation: expected data, a DataSource');
    const metric = v.metric ?? 'loss';
    if (!validationMetrics.includes(metric)) {
      throw new SegvolError('ERR_ARGUMENT', `fit: validation: expected metric ${validationMetrics.join(', ')}, received ${describe(metric)}`);
    }
    if (v.windows !== undefined) positiveInteger(v.windows, 'fit: validation: windows');
    if (v.every !== undefined) positiveInteger(v.every, 'fit: validation: every');
    if (v.patience !== undefined) positiveInteger(v.patience, 'fit: validation: patience');
    if (v.size !== undefined) checkSize(v.size, 'fit: validation: size');
    this.inputNames(v.data, 'fit: validation');
    return { ...v, metric };
  }

  /** The model's score on the validation windows (drawn once per size with their own seed), in inference mode. */
  private async validate(plan: Plan, v: ValidationOptions & { metric: ValidationMetric }): Promise<number> {
    const size = v.size ?? plan.size;
    const key = size.join('x');
    let windows = this.validationWindows.get(key);
    if (!windows) {
      const random = new Random(0x7a11d);
      windows = Array.from({ length: v.windows ?? 8 }, () => v.data.sample(random, size));
      this.validationWindows.set(key, windows);
    }
    const names = this.inputNames(v.data, 'fit: validation');
    const classes = this.model.outChannels;
    const counts = new Float64Array(classes * classes);
    let lossSum = 0;
    for (let start = 0; start < windows.length; start += plan.batchSize) {
      const batch = new Batch(windows.slice(start, start + plan.batchSize), size, v.data.inputs, names, this.model.device);
      try {
        await noGrad(async () => {
          const outputs = await this.model.forwardOutputs(batch.inputs, { training: false });
          try {
            if (v.metric === 'loss') {
              const loss = await this.lossOf(plan, outputs, batch);
              lossSum += loss.toArray()[0]! * batch.count;
              loss.dispose();
            } else {
              const out = outputs[this.model.outputNames[0]!]!;
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
    return v.metric === 'loss' ? lossSum / windows.length : scoreConfusion(counts, classes, v.metric);
  }

  /** One batch of windows for a phase, each passing its filter. */
  private drawWindows(plan: Plan): SampledWindow[] {
    const out: SampledWindow[] = [];
    for (let b = 0; b < plan.batchSize; ++b) {
      let window = plan.data.sample(this.random, plan.size);
      if (plan.filter) {
        const offset = plan.outputSize.map((s, a) => Math.floor((plan.size[a]! - s) / 2));
        const accepts = (w: SampledWindow) => plan.filter!({
          labels: cropWindow(w.labels, 1, plan.size, offset, plan.outputSize),
          ...(w.mask ? { mask: cropWindow(w.mask, 1, plan.size, offset, plan.outputSize) } : {}),
          size: plan.outputSize,
        });
        let tries = 1;
        while (!accepts(window)) {
          if (tries++ >= plan.filterTries) {
            throw new SegvolError('ERR_ARGUMENT', `fit: ${plan.name}: no window of (${plan.size.join(', ')}) passed the filter in ${plan.filterTries} draws; ` +
              'loosen the filter, raise filterTries, or check that the data holds what the filter looks for');
          }
          window = plan.data.sample(this.random, plan.size);
        }
      }
      out.push(window);
    }
    return out;
  }

  /** Returns a drawn-ahead batch's RNG draws, so the next draw (or a checkpoint) sees the same sequence. */
  private dropPrefetched(): void {
    if (!this.prefetched) return;
    this.random.setState(this.prefetched.stateBefore);
    this.prefetched = undefined;
  }

  private classWeightsFor(plan: Plan, config: LossConfig, labels: Float32Array, mask: Float32Array | undefined, classes: number, plane: number): Float32Array | undefined {
    const w = config.classWeights;
    if (w === undefined || w === 'none') return undefined;
    if (Array.isArray(w)) {
      if (w.length !== classes) throw new SegvolError('ERR_ARGUMENT', `loss: expected ${classes} class weights (one per class), received ${w.length}`);
      return Float32Array.from(w as number[]);
    }
    const mode = w as ComputedWeighting;
    if (!computedWeightings.includes(mode)) {
      throw new SegvolError('ERR_ARGUMENT', `loss: expected classWeights 'none', ${computedWeightings.map((k) => `'${k}'`).join(', ')} or numbers, received ${describe(w)}`);
    }
    const global = (config.weightsFrom ?? 'global') === 'global';
    if (global && mode === 'medianFrequency' && plan.data.classStatistics) {
      return this.cachedWeights(plan, mode, classes, () => classWeightsFromStatistics(plan.data.classStatistics!(classes), mode));
    }
    if (global && mode !== 'medianFrequency' && plan.data.classCounts) {
      return this.cachedWeights(plan, mode, classes, () => classWeightsFromCounts(plan.data.classCounts!(classes), mode));
    }
    // From the window's own labels: images are its slices of plane h*w.
    return classWeightsFromStatistics(classStatistics(labels, plane, classes, mask), mode);
  }

  private cachedWeights(plan: Plan, mode: string, classes: number, compute: () => Float32Array): Float32Array {
    let cache = this.globalWeights.get(plan.data);
    if (!cache) this.globalWeights.set(plan.data, (cache = new Map()));
    const key = `${mode}:${classes}`;
    if (!cache.has(key)) cache.set(key, compute());
    return cache.get(key)!;
  }

  /** The phase's loss on the tape: one configured loss, a weighted sum, or the user's function. */
  private async lossOf(plan: Plan, outputs: Readonly<Record<string, Tensor>>, batch: Batch): Promise<Tensor> {
    if (typeof plan.loss === 'function') {
      const value = await plan.loss(outputs, batch);
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new SegvolError('ERR_ARGUMENT', `loss function: expected a one-value Tensor, received ${value instanceof Tensor ? `(${value.shape.join(', ')})` : describe(value)}`);
      }
      return value;
    }
    const terms: Tensor[] = [];
    for (const config of lossConfigs(plan.loss)!) {
      const name = config.output ?? this.model.outputNames[0]!;
      const out = outputs[name];
      if (!out) throw new SegvolError('ERR_ARGUMENT', `loss: the model has no output '${name}'; its outputs: ${this.model.outputNames.join(', ')}`);
      const labels = batch.labels(out);
      const mask = batch.mask(out);
      const weights = this.classWeightsFor(plan, config, batch.labelValues(out.shape.slice(2)), mask?.toArray(), out.shape[1]!,
        out.shape[out.shape.length - 1]! * out.shape[out.shape.length - 2]!);
      const classWeights = weights ? Tensor.fromArray(weights, [weights.length], { device: out.device }) : undefined;
      try {
        const term = ops.loss(out, labels, {
          kind: config.kind, ...(mask ? { mask } : {}), ...(classWeights ? { classWeights } : {}),
          ...(config.normalize ? { normalize: config.normalize } : {}),
        });
        terms.push(config.weight === undefined || config.weight === 1 ? term : ops.scale(term, config.weight));
      } finally {
        classWeights?.dispose();
      }
    }
    return terms.length === 1 ? terms[0]! : ops.sum(terms);
  }

  private async trainStep(plan: Plan, windows: SampledWindow[], lr: number, checkpointPath: string | undefined): Promise<{ loss: number; gradNorm: number }> {
    const device = this.model.device;
    const batch = new Batch(windows, plan.size, plan.data.inputs, plan.names, device);
    const tape = new GradientTape({ checkFinite: true });
    const stepNumber = this.position.step + 1;
    const stop = (where: string) => {
      const kept = checkpointPath && fs.existsSync(checkpointPath) ? `; the last good checkpoint ${checkpointPath} is kept` : '';
      return new SegvolError('ERR_NON_FINITE', `fit: a NaN or infinite value appeared in ${where} at step ${stepNumber}; ` +
        `training stopped before updating the weights${kept}. Check the data for NaN, or lower the learning rate`);
    };
    try {
      const badInput = batch.nonFiniteInput();
      if (badInput !== undefined) throw stop(`the input '${badInput}'`);
      const all = typeof plan.loss === 'function' || (lossConfigs(plan.loss) ?? []).some((c) => c.output !== undefined);
      const loss = await tape.record(async () => {
        const run = { training: true, schedule: plan.memory };
        const outputs = all ? await this.model.forwardOutputs(batch.inputs, run)
          : { [this.model.outputNames[0]!]: await this.model.forward(batch.inputs, run) };
        try {
          return await this.lossOf(plan, outputs, batch);
        } finally {
          for (const t of Object.values(outputs)) t.dispose();
        }
      });
      try {
        const bad = tape.findNonFinite();
        if (bad) throw stop(`the output of ${bad.op}${bad.scope ? ` in ${bad.scope}` : ''}`);
        const value = loss.toArray()[0]!;
        if (!Number.isFinite(value)) throw stop('the loss');
        const grads = this.model.gradientsByName(await tape.backward(loss));
        try {
          const names = [...grads.keys()];
          const i = native.firstNonFinite(names.map((n) => handleOf(grads.get(n)!, 'fit', n)));
          if (i >= 0) throw stop(`the gradient of ${names[i]}`);
          const gradNorm = Math.sqrt(ops.sumOfSquares([...grads.values()]));
          this.clip(grads, gradNorm);
          this.optimizer.step(this.model.parameters(), grads, lr);
          return { loss: value, gradNorm };
        } finally {
          for (const g of grads.values()) g.dispose();
        }
      } finally {
        loss.dispose();
      }
    } finally {
      tape.dispose();
      batch.dispose();
    }
  }

  /** Gradient clipping in place of the map's entries (PyTorch's clip_grad_norm_, then clip_grad_value_). */
  private clip(grads: Map<string, Tensor>, norm: number): void {
    const { maxNorm, maxValue } = this.options.clipGradients ?? {};
    const replace = (f: (g: Tensor) => Tensor) => {
      for (const [name, g] of grads) {
        grads.set(name, f(g));
        g.dispose();
      }
    };
    if (maxNorm !== undefined) {
      const factor = maxNorm / (norm + 1e-6);
      if (factor < 1) replace((g) => ops.scale(g, factor));
    }
    if (maxValue !== undefined) replace((g) => ops.clamp(g, -maxValue, maxValue));
  }

  /**
   * Writes a checkpoint atomically: `path` is a model file (weights readable by PyTorch,
   * architecture and info: loadModel reads it) with the trainer state in its metadata;
   * `path + '.optimizer'` holds the optimizer state.
   */
  save(path: string, randomState = this.prefetched?.stateBefore ?? this.random.getState()): void {
    const optimizerState = new Map<string, NamedArray>();
    for (const [name, t] of this.optimizer.stateTensors()) optimizerState.set(name, { shape: [...t.shape], data: t.toArray() });
    writeSafetensors(`${path}.optimizer`, optimizerState, { step: String(this.position.step) });
    const state = {
      format: 'segvol-checkpoint-2',
      position: this.position,
      validation: this.validationState ?? null,
      random: randomState,
      modelRandom: this.model.random.getState(),
      optimizer: { config: this.optimizer.config, steps: this.optimizer.steps },
    };
    this.model.saveWeights(path, { ...this.model.fileMetadata(), segvol: JSON.stringify(state) });
    this.emit('checkpoint', { path, step: this.position.step });
  }

  /** Restores weights, optimizer state, position and sampling state from save(path). */
  resume(path: string): void {
    const file = readSafetensors(path);
    const raw = file.metadata.segvol;
    if (!raw) throw new SegvolError('ERR_FORMAT', `resume: ${path} has no segvol trainer state; it holds weights only (use model.loadWeights)`);
    const state = JSON.parse(raw) as {
      format: string; position: Partial<Position> & { stage?: number; epoch?: number; stepInEpoch?: number; step: number }; random: number;
      modelRandom?: number; optimizer: { steps: number; config?: OptimizerConfig }; validation?: ValidationState | null;
    };
    if (state.format !== 'segvol-checkpoint-2' && state.format !== 'segvol-checkpoint-1') {
      throw new SegvolError('ERR_FORMAT', `resume: ${path} has unknown format ${state.format}; this segvol reads segvol-checkpoint-1 and -2`);
    }
    const optimizer = readSafetensors(`${path}.optimizer`);
    if (Number(optimizer.metadata.step) !== state.position.step) {
      throw new SegvolError('ERR_FORMAT', `resume: ${path}.optimizer is from step ${optimizer.metadata.step}, the weights from step ${state.position.step}`);
    }
    this.model.loadWeights(path);
    if (state.optimizer.config && !sameUpdateRule(this.optimizer.config, state.optimizer.config)) {
      this.optimizer.dispose();
      this.optimizer = new Optimizer(state.optimizer.config);
    }
    this.optimizer.loadState(optimizer.tensors, state.optimizer.steps);
    const p = state.position;
    if (state.format === 'segvol-checkpoint-1') {
      // Format 1 called phases stages and counted epochs of stepsPerEpoch steps (converted in fit).
      this.position = { phase: p.stage ?? 0, stepInPhase: 0, step: p.step };
      this.legacyPosition = { epoch: p.epoch ?? 0, stepInEpoch: p.stepInEpoch ?? 0 };
    } else {
      this.position = { phase: p.phase ?? 0, stepInPhase: p.stepInPhase ?? 0, step: p.step };
      this.legacyPosition = undefined;
    }
    // JSON has no NaN: a best score not yet set comes back as null.
    this.validationState = state.validation ? { ...state.validation, best: state.validation.best ?? NaN } : undefined;
    this.random.setState(state.random);
    if (state.modelRandom !== undefined) this.model.random.setState(state.modelRandom);
  }
}
