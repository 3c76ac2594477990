// Training: forward, loss, backward and the optimizer update per step, with the
// heavy layers off the main thread; progress events, cancellation, bootstrap
// stages, and checkpoints that resume bit-exactly.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import type { DataSource, Size3, TrainingSample } from './data';
import { describe, SegvolError } from './errors';
import { classCounts, classWeightsFromCounts, computeLoss, lossKinds, type ClassWeighting, type LossKind } from './losses';
import type { ModelBase } from './model';
import { Optimizer, type OptimizerConfig } from './optimizers';
import { Random } from './random';
import { readSafetensors, writeSafetensors, type NamedArray } from './safetensors';
import { learningRate, type Schedule } from './schedules';
import { Tensor, type Device } from './tensor';

export interface LossConfig {
  kind: LossKind;
  classWeights?: ClassWeighting;
  /** Where computed class weights come from: each sub-volume, or all the data once (default 'global'). */
  weightsFrom?: 'patch' | 'global';
}

export interface TrainerOptions {
  loss?: LossKind | LossConfig;
  /** Default: the paper's RMSprop with momentum. */
  optimizer?: OptimizerConfig;
  /** Default: the paper's decaying rate, reset at each stage. */
  schedule?: Schedule;
  /** Fixes sub-volume sampling (the model's seed fixes its initial weights). */
  seed?: number;
  /** Stored in checkpoints so a CLI can rebuild the model. */
  modelConfig?: unknown;
}

/** A bootstrap stage: sub-volume size (d, h, w) and epoch count (the paper: 64x64x8, 128x128x15, 256x256x20). */
export interface Stage {
  size: Size3;
  epochs: number;
}

export interface FitOptions {
  data: DataSource;
  /** Either stages, or epochs with one size. */
  stages?: readonly Stage[];
  epochs?: number;
  size?: Size3;
  /** Sub-volumes per epoch (default 1, the paper's usage). */
  stepsPerEpoch?: number;
  /** Ends cleanly after the current step. */
  signal?: AbortSignal;
  onProgress?: (progress: Progress) => void;
  /** Saves atomically every `every` steps (default: at the end only) and at the end. */
  checkpoint?: { path: string; every?: number };
}

export interface Progress {
  stage: number;
  stages: number;
  epoch: number;
  epochs: number;
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  voxelsPerSecond: number;
  etaSeconds: number;
}

export interface FitResult {
  steps: number;
  lastLoss: number;
  aborted: boolean;
}

interface Position {
  stage: number;
  epoch: number;
  stepInEpoch: number;
  step: number;
}

const trainerKeys = new Set(['loss', 'optimizer', 'schedule', 'seed', 'modelConfig']);
const fitKeys = new Set(['data', 'stages', 'epochs', 'size', 'stepsPerEpoch', 'signal', 'onProgress', 'checkpoint']);

function rejectUnknown(object: object, known: Set<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) throw new SegvolError('ERR_ARGUMENT', `${where}: unknown option '${key}'; known: ${[...known].join(', ')}`);
  }
}

export declare interface Trainer {
  on(event: 'progress', listener: (progress: Progress) => void): this;
  on(event: 'checkpoint', listener: (info: { path: string; step: number }) => void): this;
}

/** The sample with its tensors on a device; tensors moved are disposed of on the old one. */
function onDevice(sample: TrainingSample, device: Device): TrainingSample {
  const move = (t: Tensor): Tensor => {
    if (t.device === device) return t;
    const moved = t.to(device);
    t.dispose();
    return moved;
  };
  return { ...sample, input: move(sample.input), labels: move(sample.labels), ...(sample.mask ? { mask: move(sample.mask) } : {}) };
}

export class Trainer extends EventEmitter {
  readonly lossConfig: LossConfig;
  readonly schedule: Schedule;
  readonly optimizer: Optimizer;
  private readonly random: Random;
  private position: Position = { stage: 0, epoch: 0, stepInEpoch: 0, step: 0 };
  private prefetched: { size: Size3; sample: TrainingSample; stateBefore: number } | undefined;
  private globalWeights: Float32Array | undefined;

  constructor(readonly model: ModelBase, private readonly options: TrainerOptions = {}) {
    super();
    rejectUnknown(options, trainerKeys, 'Trainer');
    const loss = options.loss ?? 'squaredError';
    this.lossConfig = typeof loss === 'string' ? { kind: loss } : loss;
    if (!lossKinds.includes(this.lossConfig.kind)) {
      throw new SegvolError('ERR_ARGUMENT', `Trainer: expected loss ${lossKinds.join(', ')}, received ${describe(this.lossConfig.kind)}`);
    }
    this.schedule = options.schedule ?? { kind: 'paper' };
    learningRate(this.schedule, 0);
    this.optimizer = new Optimizer(options.optimizer ?? { kind: 'rmspropMomentum' });
    this.random = new Random(options.seed ?? 0);
  }

  /** Steps done so far (across fits and resumes). */
  get step(): number {
    return this.position.step;
  }

  private classWeightsFor(data: DataSource, labels: Tensor, mask: Tensor | undefined): Tensor | undefined {
    const w = this.lossConfig.classWeights;
    const classes = this.model.outChannels;
    if (w === undefined || w === 'none') return undefined;
    const device = { device: labels.device };
    if (Array.isArray(w)) return Tensor.fromArray(w as number[], [classes], device);
    const mode = w as 'inverseFrequency' | 'medianFrequency';
    if ((this.lossConfig.weightsFrom ?? 'global') === 'global' && data.classCounts) {
      this.globalWeights ??= classWeightsFromCounts(data.classCounts(classes), mode);
      return Tensor.fromArray(this.globalWeights, [classes], device);
    }
    const counts = classCounts(labels.toArray(), classes, mask?.toArray());
    return Tensor.fromArray(classWeightsFromCounts(counts, mode), [classes], device);
  }

  /**
   * Trains through the stages. A new trainer starts at the beginning; after resume() it goes on
   * from the saved position; after a finished fit, the next fit starts its plan anew.
   */
  async fit(options: FitOptions): Promise<FitResult> {
    rejectUnknown(options, fitKeys, 'fit');
    const stages: readonly Stage[] = options.stages ?? [{ size: options.size ?? [8, 64, 64], epochs: options.epochs ?? 1 }];
    const stepsPerEpoch = options.stepsPerEpoch ?? 1;
    if (stages.length === 0 || stages.some((s) => !(s.epochs >= 0) || s.size.length !== 3)) {
      throw new SegvolError('ERR_ARGUMENT', 'fit: expected stages of { size: [d, h, w], epochs >= 0 }');
    }
    if (options.data.channels !== this.model.inChannels) {
      throw new SegvolError('ERR_SHAPE', `fit: the data has ${options.data.channels} channels, the model expects ${this.model.inChannels}`);
    }
    const totalSteps = stages.reduce((s, st) => s + st.epochs * stepsPerEpoch, 0);
    const stepsBefore = (p: Position) =>
      stages.slice(0, p.stage).reduce((s, st) => s + st.epochs * stepsPerEpoch, 0) + p.epoch * stepsPerEpoch + p.stepInEpoch;
    const startedAt = Date.now();
    const startStep = stepsBefore(this.position);
    let lastLoss = NaN;
    let voxels = 0;
    while (this.position.stage < stages.length) {
      const stage = stages[this.position.stage]!;
      if (this.position.epoch >= stage.epochs) {
        // The end of the last stage stays the saved position, so a checkpoint of a finished
        // run resumes into a longer plan (more epochs) where it left off.
        if (this.position.stage === stages.length - 1) break;
        this.position = { ...this.position, stage: this.position.stage + 1, epoch: 0, stepInEpoch: 0 };
        continue;
      }
      if (options.signal?.aborted) {
        this.dropPrefetched();
        return { steps: this.position.step, lastLoss, aborted: true };
      }
      const lr = learningRate(this.schedule, this.position.epoch);
      let sample: TrainingSample;
      if (this.prefetched && this.prefetched.size === stage.size) {
        sample = this.prefetched.sample;
        this.prefetched = undefined;
      } else {
        this.dropPrefetched();
        sample = options.data.sample(this.random, stage.size);
      }
      const step = this.trainStep(options.data, sample, lr, options.checkpoint?.path);
      // While the compute thread runs this step, draw the next sub-volume on the main thread.
      const nextStage = this.position.epoch + 1 >= stage.epochs && this.position.stepInEpoch + 1 >= stepsPerEpoch
        ? stages[this.position.stage + 1] : stage;
      if (nextStage && !options.signal?.aborted) {
        const stateBefore = this.random.getState();
        this.prefetched = { size: nextStage.size, sample: options.data.sample(this.random, nextStage.size), stateBefore };
      }
      try {
        lastLoss = await step;
      } catch (error) {
        this.dropPrefetched();
        throw error;
      }
      voxels += stage.size[0] * stage.size[1] * stage.size[2];
      this.position.step += 1;
      this.position.stepInEpoch += 1;
      if (this.position.stepInEpoch >= stepsPerEpoch) {
        this.position.stepInEpoch = 0;
        this.position.epoch += 1;
      }
      const elapsed = (Date.now() - startedAt) / 1000;
      const done = stepsBefore(this.position);
      const progress: Progress = {
        stage: Math.min(this.position.stage, stages.length - 1) + 1, stages: stages.length,
        epoch: this.position.epoch, epochs: stage.epochs, step: done, totalSteps,
        loss: lastLoss, lr, voxelsPerSecond: voxels / Math.max(elapsed, 1e-9),
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
    this.position = { stage: 0, epoch: 0, stepInEpoch: 0, step: this.position.step };
    return { steps: this.position.step, lastLoss, aborted: false };
  }

  /** Returns a drawn-ahead sample's RNG draws, so the next draw (or a checkpoint) sees the same sequence. */
  private dropPrefetched(): void {
    if (!this.prefetched) return;
    this.random.setState(this.prefetched.stateBefore);
    for (const t of [this.prefetched.sample.input, this.prefetched.sample.labels, this.prefetched.sample.mask]) t?.dispose();
    this.prefetched = undefined;
  }

  private async trainStep(data: DataSource, sample: TrainingSample, lr: number, checkpointPath: string | undefined): Promise<number> {
    sample = onDevice(sample, this.model.device);
    const { y, tape } = await this.model.forward(sample.input, { keepTape: true, training: true });
    const weights = this.classWeightsFor(data, sample.labels, sample.mask);
    let loss: { loss: number; grad: Tensor };
    try {
      loss = computeLoss('optimized', y, sample.labels, {
        kind: this.lossConfig.kind, ...(sample.mask ? { mask: sample.mask } : {}), ...(weights ? { classWeights: weights } : {}),
      });
    } finally {
      weights?.dispose();
      y.dispose();
    }
    if (!Number.isFinite(loss.loss)) {
      tape.dispose();
      loss.grad.dispose();
      for (const t of [sample.input, sample.labels, sample.mask]) t?.dispose();
      const kept = checkpointPath && fs.existsSync(checkpointPath) ? `; the last good checkpoint ${checkpointPath} is kept` : '';
      throw new SegvolError('ERR_NON_FINITE', `fit: the loss became ${loss.loss} at step ${this.position.step + 1}; ` +
        `training stopped before updating the weights${kept}. Lower the learning rate, or check the data for NaN`);
    }
    const { dx, grads } = await this.model.backward(tape, loss.grad);
    tape.dispose();
    loss.grad.dispose();
    dx.dispose();
    this.optimizer.step(this.model.parameters(), grads, lr);
    for (const g of grads.values()) g.dispose();
    for (const t of [sample.input, sample.labels, sample.mask]) t?.dispose();
    return loss.loss;
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
      format: 'segvol-checkpoint-1',
      position: this.position,
      random: randomState,
      modelRandom: this.model.random.getState(),
      optimizer: { config: this.optimizer.config, steps: this.optimizer.steps },
      loss: this.lossConfig,
      schedule: this.schedule,
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
    const state = JSON.parse(raw) as { format: string; position: Position; random: number; modelRandom?: number; optimizer: { steps: number } };
    if (state.format !== 'segvol-checkpoint-1') throw new SegvolError('ERR_FORMAT', `resume: ${path} has unknown format ${state.format}`);
    const optimizer = readSafetensors(`${path}.optimizer`);
    if (Number(optimizer.metadata.step) !== state.position.step) {
      throw new SegvolError('ERR_FORMAT', `resume: ${path}.optimizer is from step ${optimizer.metadata.step}, the weights from step ${state.position.step}`);
    }
    this.model.loadWeights(path);
    this.optimizer.loadState(optimizer.tensors, state.optimizer.steps);
    this.position = { ...state.position };
    this.random.setState(state.random);
    if (state.modelRandom !== undefined) this.model.random.setState(state.modelRandom);
  }
}
