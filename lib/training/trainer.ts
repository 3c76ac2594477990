// Training: per step, a batch of windows is drawn (on the main thread, while the
// previous step computes), the model's forward function and the loss run on a
// GradientTape, backward gives every parameter's gradient, and the optimizer
// updates in place. A fit is a list of phases, each free to change the window,
// batch, steps, loss, weighting, learning rate, optimizer, data and window filter.
// Checkpoints resume bit-exactly, in the middle of any phase.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { GradientTape } from '../autograd/tape';
import { describe, SegvolError } from '../core/errors';
import { native } from '../core/native';
import { Random } from '../core/random';
import { handleOf, Tensor } from '../core/tensor';
import { classCounts, type DataSource, type SampledWindow, type Size3 } from '../data/samplers';
import { readSafetensors, writeSafetensors, type NamedArray } from '../io/safetensors';
import type { ModelBase } from '../nn/model';
import { lossKinds, ops, type LossKind, type LossNormalization } from '../ops';
import { Batch, cropWindow } from './batch';
import { classWeightsFromCounts, type ClassWeighting } from './losses';
import { checkOptimizerConfig, Optimizer, sameUpdateRule, type OptimizerConfig } from './optimizers';
import { learningRate, type Schedule } from './schedules';

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

/** One phase of a fit. Fields left out fall back to the fit's, then to the trainer's. */
export interface Phase {
  name?: string;
  /** The input window (d, h, w). */
  size?: Size3;
  /** Or the output window of a dense network (ZNN's output patch): the input is this plus the field of view minus one. */
  outputSize?: Size3;
  /** Epochs of stepsPerEpoch steps; or give steps. */
  epochs?: number;
  steps?: number;
  stepsPerEpoch?: number;
  /** Windows per step (default 1). The loss averages over all their voxels. */
  batchSize?: number;
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
  /** Stored in checkpoints so a CLI can rebuild the model. */
  modelConfig?: unknown;
}

export interface FitOptions {
  data: DataSource;
  /** The phases; or the one-phase shorthands below. */
  phases?: readonly Phase[];
  size?: Size3;
  outputSize?: Size3;
  epochs?: number;
  steps?: number;
  /** Steps per epoch (default 1, the PyraMiD-LSTM paper's usage). */
  stepsPerEpoch?: number;
  batchSize?: number;
  /** Ends cleanly after the current step (writing a checkpoint when one is configured). */
  signal?: AbortSignal;
  onProgress?: (progress: Progress) => void;
  /** Saves atomically every `every` steps (default: at the end only), at the end, and when stopped. */
  checkpoint?: { path: string; every?: number };
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
  /** Input voxels trained on per second. */
  voxelsPerSecond: number;
  etaSeconds: number;
}

export interface FitResult {
  steps: number;
  lastLoss: number;
  aborted: boolean;
}

interface Position {
  phase: number;
  epoch: number;
  stepInEpoch: number;
  step: number;
}

/** A phase with every field resolved. */
interface Plan {
  index: number;
  name: string;
  size: Size3;
  epochs: number;
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
}

const trainerKeys = new Set(['loss', 'optimizer', 'schedule', 'seed', 'modelConfig']);
const fitKeys = new Set(['data', 'phases', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'signal', 'onProgress', 'checkpoint']);
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

export declare interface Trainer {
  on(event: 'progress', listener: (progress: Progress) => void): this;
  on(event: 'checkpoint', listener: (info: { path: string; step: number }) => void): this;
}

export class Trainer extends EventEmitter {
  optimizer: Optimizer;
  private readonly defaultLoss: LossSpec;
  private readonly defaultOptimizer: OptimizerConfig;
  private readonly random: Random;
  private position: Position = { phase: 0, epoch: 0, stepInEpoch: 0, step: 0 };
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
    this.random = new Random(options.seed ?? 0);
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
      const stepsPerEpoch = positiveInteger(phase.stepsPerEpoch ?? (phase.steps !== undefined ? 1 : options.stepsPerEpoch ?? 1), `${where}: stepsPerEpoch`);
      let epochs: number;
      if (phase.steps !== undefined || (phase.epochs === undefined && options.steps !== undefined && options.phases === undefined)) {
        epochs = Math.ceil(positiveInteger(phase.steps ?? options.steps, `${where}: steps`, true) / stepsPerEpoch);
      } else {
        epochs = positiveInteger(phase.epochs ?? (options.phases ? undefined : options.epochs) ?? 1, `${where}: epochs`, true);
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
      return {
        index, name: phase.name ?? `phase ${index + 1}`, size, epochs, stepsPerEpoch,
        batchSize: positiveInteger(phase.batchSize ?? options.batchSize ?? 1, `${where}: batchSize`),
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
    const stepsOf = (p: Plan) => p.epochs * p.stepsPerEpoch;
    const totalSteps = plans.reduce((s, p) => s + stepsOf(p), 0);
    const stepsBefore = (pos: Position) =>
      plans.slice(0, pos.phase).reduce((s, p) => s + stepsOf(p), 0) + pos.epoch * (plans[pos.phase]?.stepsPerEpoch ?? 0) + pos.stepInEpoch;
    if (this.position.phase >= plans.length) {
      throw new SegvolError('ERR_ARGUMENT', `fit: the checkpoint is in phase ${this.position.phase + 1}, but this fit has ${plans.length}; ` +
        'resume with the phases it was trained with');
    }
    const startedAt = Date.now();
    const startStep = stepsBefore(this.position);
    let lastLoss = NaN;
    let voxels = 0;
    let entered = -1;
    while (true) {
      const plan = plans[this.position.phase]!;
      if (this.position.epoch >= plan.epochs) {
        // The end of the last phase stays the saved position, so a checkpoint of a finished
        // run resumes into a longer plan (more epochs) where it left off.
        if (this.position.phase === plans.length - 1) break;
        this.position = { ...this.position, phase: this.position.phase + 1, epoch: 0, stepInEpoch: 0 };
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
        return { steps: this.position.step, lastLoss, aborted: true };
      }
      const lr = learningRate(plan.schedule, this.position.epoch);
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
      const lastOfPhase = this.position.epoch + 1 >= plan.epochs && this.position.stepInEpoch + 1 >= plan.stepsPerEpoch;
      const next = lastOfPhase ? plans[plan.index + 1] : plan;
      if (next && stepsOf(next) > 0 && !options.signal?.aborted) {
        const stateBefore = this.random.getState();
        try {
          this.prefetched = { phase: next.index, windows: this.drawWindows(next), stateBefore };
        } catch {
          this.random.setState(stateBefore);  // the error surfaces when that step draws for itself
        }
      }
      try {
        lastLoss = await step;
      } catch (error) {
        this.dropPrefetched();
        throw error;
      }
      voxels += plan.batchSize * plan.size[0] * plan.size[1] * plan.size[2];
      this.position.step += 1;
      this.position.stepInEpoch += 1;
      if (this.position.stepInEpoch >= plan.stepsPerEpoch) {
        this.position.stepInEpoch = 0;
        this.position.epoch += 1;
      }
      const elapsed = (Date.now() - startedAt) / 1000;
      const done = stepsBefore(this.position);
      const progress: Progress = {
        phase: plan.index + 1, phases: plans.length, phaseName: plan.name,
        epoch: this.position.epoch, epochs: plan.epochs, step: done, totalSteps,
        loss: lastLoss, lr, batchSize: plan.batchSize, voxelsPerSecond: voxels / Math.max(elapsed, 1e-9),
        etaSeconds: ((totalSteps - done) * elapsed) / Math.max(done - startStep, 1),
      };
      options.onProgress?.(progress);
      this.emit('progress', progress);
      const every = options.checkpoint?.every;
      if (options.checkpoint && every && this.position.step % every === 0) this.save(options.checkpoint.path, this.prefetched?.stateBefore);
    }
    this.dropPrefetched();
    if (options.checkpoint) this.save(options.checkpoint.path);
    // A finished plan: the next fit starts a new one (the step count goes on).
    this.position = { phase: 0, epoch: 0, stepInEpoch: 0, step: this.position.step };
    return { steps: this.position.step, lastLoss, aborted: false };
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

  private classWeightsFor(plan: Plan, config: LossConfig, labels: Float32Array, mask: Float32Array | undefined, classes: number): Float32Array | undefined {
    const w = config.classWeights;
    if (w === undefined || w === 'none') return undefined;
    if (Array.isArray(w)) {
      if (w.length !== classes) throw new SegvolError('ERR_ARGUMENT', `loss: expected ${classes} class weights (one per class), received ${w.length}`);
      return Float32Array.from(w as number[]);
    }
    const mode = w as 'inverseFrequency' | 'medianFrequency';
    if (mode !== 'inverseFrequency' && mode !== 'medianFrequency') {
      throw new SegvolError('ERR_ARGUMENT', `loss: expected classWeights 'none', 'inverseFrequency', 'medianFrequency' or numbers, received ${describe(w)}`);
    }
    if ((config.weightsFrom ?? 'global') === 'global' && plan.data.classCounts) {
      let cache = this.globalWeights.get(plan.data);
      if (!cache) this.globalWeights.set(plan.data, (cache = new Map()));
      const key = `${mode}:${classes}`;
      if (!cache.has(key)) cache.set(key, classWeightsFromCounts(plan.data.classCounts(classes), mode));
      return cache.get(key)!;
    }
    return classWeightsFromCounts(classCounts(labels, classes, mask), mode);
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
      const weights = this.classWeightsFor(plan, config, batch.labelValues(out.shape.slice(2)), mask?.toArray(), out.shape[1]!);
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

  private async trainStep(plan: Plan, windows: SampledWindow[], lr: number, checkpointPath: string | undefined): Promise<number> {
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
        const outputs = all ? await this.model.forwardOutputs(batch.inputs, { training: true })
          : { [this.model.outputNames[0]!]: await this.model.forward(batch.inputs, { training: true }) };
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
          this.optimizer.step(this.model.parameters(), grads, lr);
        } finally {
          for (const g of grads.values()) g.dispose();
        }
        return value;
      } finally {
        loss.dispose();
      }
    } finally {
      tape.dispose();
      batch.dispose();
    }
  }

  /**
   * Writes a checkpoint atomically: `path` holds the weights (safetensors, readable by
   * PyTorch) and the trainer state in its metadata; `path + '.optimizer'` the optimizer state.
   */
  save(path: string, randomState = this.prefetched?.stateBefore ?? this.random.getState()): void {
    const optimizerState = new Map<string, NamedArray>();
    for (const [name, t] of this.optimizer.stateTensors()) optimizerState.set(name, { shape: [...t.shape], data: t.toArray() });
    writeSafetensors(`${path}.optimizer`, optimizerState, { step: String(this.position.step) });
    const state = {
      format: 'segvol-checkpoint-2',
      position: this.position,
      random: randomState,
      modelRandom: this.model.random.getState(),
      optimizer: { config: this.optimizer.config, steps: this.optimizer.steps },
      modelConfig: this.options.modelConfig ?? null,
    };
    this.model.saveWeights(path, { segvol: JSON.stringify(state) });
    this.emit('checkpoint', { path, step: this.position.step });
  }

  /** Restores weights, optimizer state, position and sampling state from save(path). */
  resume(path: string): void {
    const file = readSafetensors(path);
    const raw = file.metadata.segvol;
    if (!raw) throw new SegvolError('ERR_FORMAT', `resume: ${path} has no segvol trainer state; it holds weights only (use model.loadWeights)`);
    const state = JSON.parse(raw) as {
      format: string; position: Position & { stage?: number }; random: number; modelRandom?: number;
      optimizer: { steps: number; config?: OptimizerConfig };
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
    // Format 1 called phases stages.
    const { stage, ...position } = state.position;
    this.position = { ...position, phase: position.phase ?? stage ?? 0 };
    this.random.setState(state.random);
    if (state.modelRandom !== undefined) this.model.random.setState(state.modelRandom);
  }
}
