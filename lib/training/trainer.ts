// The training loop: per step, a batch of windows is drawn (the next one while the
// previous step computes), trainStep runs forward and loss on a tape, backward,
// checks and the update; then the hooks: validation with early stopping, the
// JSON-lines log, progress, checkpoints. A fit is a list of phases (see
// options.ts, resolved by plan.ts). Checkpoints resume bit-exactly, in the middle
// of any phase.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { describe, SegvolError } from '../core/errors';
import { Random } from '../core/random';
import { rejectUnknown } from '../core/validate';
import type { ModelBase } from '../nn/model';
import { Batch } from './batch';
import { loadCheckpoint, saveCheckpoint } from './checkpoint';
import { TrainingLog, withoutExtension } from './log';
import { parseBudget, type MemoryBudget, type StepMemory } from './memory';
import { Optimizer, sameUpdateRule, type OptimizerConfig } from './optimizers';
import { fitKeys, trainerKeys, type FitOptions, type FitResult, type LossSpec, type Precision, type Progress, type TrainerOptions } from './options';
import { DataParallel, checkDistributed, indexedWindows, type DistributedOptions } from './distributed';
import { lossScalerFor, type LossScaler } from './loss_scaling';
import { lossConfigs, needsAllOutputs } from './phase_loss';
import { checkPrecision, withPrecision } from './precision';
import { resolvePlans, type Plan } from './plan';
import { ProgressMeter } from './progress';
import { checkSchedule, learningRate } from './schedules';
import { checkClipping, trainStep, type StepResult } from './step';
import { Validator, type ValidationState } from './validation';
import { WindowDrawer } from './windows';

export { containsClass } from './options';
export type {
  FitOptions, FitResult, LossConfig, LossFunction, LossSpec, Phase, PhaseShape, Precision, Progress, TrainerOptions, ValidationOptions, WindowFilter,
} from './options';

interface Position {
  phase: number;
  /** Steps done in the phase. */
  stepInPhase: number;
  /** Steps done in all. */
  step: number;
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
  private readonly windows: WindowDrawer;
  private position: Position = { phase: 0, stepInPhase: 0, step: 0 };
  /** A checkpoint of format 1 counted epochs of its fit's stepsPerEpoch; converted when the fit is known. */
  private legacyEpoch: { epoch: number; stepInEpoch: number } | undefined;
  private validationState: ValidationState | undefined;
  /** The checkpoint this trainer last wrote or resumed from: the only one an error may call good. */
  private lastCheckpoint: { path: string; step: number } | undefined;
  private readonly budget: MemoryBudget | undefined;
  private readonly precision: Precision | undefined;
  /** Dynamic loss scaling (fp16 by default); undefined when off. */
  private readonly scaler: LossScaler | undefined;
  private readonly distributed: DistributedOptions | undefined;
  /** The ranks of a distributed run, once its first fit has opened the group. */
  private parallel: DataParallel | undefined;

  constructor(readonly model: ModelBase, private readonly options: TrainerOptions = {}) {
    super();
    rejectUnknown(options, trainerKeys, 'Trainer');
    this.defaultLoss = options.loss ?? 'squaredError';
    this.defaultOptimizer = options.optimizer ?? { kind: 'rmspropMomentum' };
    this.optimizer = new Optimizer(this.defaultOptimizer);
    if (options.schedule) checkSchedule(options.schedule, this.defaultOptimizer.lr, 'Trainer: schedule');
    checkClipping(options.clipGradients, 'Trainer');
    const budget = options.memoryBudget ?? process.env.SEGVOL_MEMORY_BUDGET;
    const source = options.memoryBudget !== undefined ? 'option' : 'environment';
    this.budget = budget === undefined || budget === '' ? undefined
      : { bytes: parseBudget(budget, source === 'option' ? 'Trainer: memoryBudget' : 'SEGVOL_MEMORY_BUDGET'), source };
    this.random = new Random(options.seed ?? 0);
    this.windows = new WindowDrawer(this.random, indexedWindows(options));
    lossConfigs(this.defaultLoss);
    this.precision = options.precision === undefined ? undefined : checkPrecision(options.precision, this.model.device);
    this.scaler = lossScalerFor(options.lossScaling, this.precision);
    this.distributed = options.distributed === undefined ? undefined : checkDistributed(options.distributed);
  }

  /** Each phase's predicted peak memory per step and the schedule it will run with (undefined where it cannot be predicted). */
  memoryPlan(options: FitOptions): Array<{ phase: string; estimate: (StepMemory & { budget: MemoryBudget }) | undefined }> {
    if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `memoryPlan: expected fit options, received ${describe(options)}`);
    rejectUnknown(options, fitKeys, 'memoryPlan');
    return this.plans(options).map((p) => ({ phase: p.name, estimate: p.memoryEstimate }));
  }

  /** Steps a fit with these options would still run from the current position (0: the plan is finished). */
  stepsLeft(options: FitOptions): number {
    const plans = this.plans(options);
    if (this.position.phase >= plans.length) return 0;
    const legacy = this.legacyEpoch ? this.legacyEpoch.epoch * (options.stepsPerEpoch ?? 1) + this.legacyEpoch.stepInEpoch : undefined;
    const inPhase = legacy ?? this.position.stepInPhase;
    return plans.slice(this.position.phase).reduce((n, p) => n + p.steps, 0) - Math.min(inPhase, plans[this.position.phase]!.steps);
  }

  /** Steps done so far (across fits and resumes). */
  get step(): number {
    return this.position.step;
  }

  private plans(options: FitOptions): Plan[] {
    return resolvePlans(this.model, options, { loss: this.defaultLoss, optimizer: this.defaultOptimizer, options: this.options, budget: this.budget });
  }

  /**
   * Trains through the phases. A new trainer starts at the beginning; after resume() it goes on
   * from the saved position; after a finished fit, the next fit starts its plan anew.
   */
  async fit(options: FitOptions): Promise<FitResult> {
    return withPrecision(this.precision, () => this.fitPhases(options));
  }

  private async fitPhases(options: FitOptions): Promise<FitResult> {
    if (options === null || typeof options !== 'object') throw new SegvolError('ERR_ARGUMENT', `fit: expected options, received ${describe(options)}`);
    rejectUnknown(options, fitKeys, 'fit');
    const plans = this.plans(options);
    const validator = options.validation === undefined ? undefined : new Validator(this.model, options.validation);
    validator?.checkPlans(plans);
    if (validator) validator.state = this.validationState;
    if (this.distributed) this.parallel = await DataParallel.prepare(this.parallel, this.distributed, this.model, plans, this.windows, [this.options, options, this.position]);
    const leader = this.parallel?.leader ?? true;  // rank 0 alone writes files
    const logFile = !leader || options.log === false ? undefined : options.log ?? (options.checkpoint ? `${withoutExtension(options.checkpoint.path)}.log.jsonl` : undefined);
    // A run that starts from step 0 (not resumed) starts a new log rather than appending to an old one.
    if (logFile && this.position.step === 0 && !this.lastCheckpoint && fs.existsSync(logFile)) fs.rmSync(logFile);
    const log = logFile ? new TrainingLog(logFile) : undefined;
    const bestFile = validator && options.checkpoint ? `${withoutExtension(options.checkpoint.path)}.best.safetensors` : undefined;
    if (this.legacyEpoch) {
      // Format 1: epochs of the fit's stepsPerEpoch (1 unless configured).
      this.position.stepInPhase = this.legacyEpoch.epoch * (options.stepsPerEpoch ?? 1) + this.legacyEpoch.stepInEpoch;
      this.legacyEpoch = undefined;
    }
    if (this.position.phase >= plans.length) {
      throw new SegvolError('ERR_ARGUMENT', `fit: the checkpoint is in phase ${this.position.phase + 1}, but this fit has ${plans.length}; ` +
        'resume with the phases it was trained with');
    }
    const totalSteps = plans.reduce((n, p) => n + p.steps, 0);
    const stepsBefore = (pos: Position) => plans.slice(0, pos.phase).reduce((n, p) => n + p.steps, 0) + pos.stepInPhase;
    const meter = new ProgressMeter(totalSteps, stepsBefore(this.position), plans.length);
    let lastLoss = NaN;
    let entered = -1;
    const result = (extra: Partial<FitResult>): FitResult => ({
      steps: this.position.step, lastLoss, aborted: false, stoppedEarly: false,
      ...(validator?.state ? { validation: { metric: validator.metric, best: validator.state.best, bestStep: validator.state.bestStep } } : {}),
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
        this.windows.drop();
        if (options.checkpoint) this.save(options.checkpoint.path);
        return result({ aborted: true });
      }
      const lr = learningRate(plan.schedule, Math.floor(this.position.stepInPhase / plan.stepsPerEpoch), this.position.stepInPhase);
      const step = this.stepOn(plan, lr, options.checkpoint?.path);
      // While the compute thread runs this step, draw the next batch on the main thread.
      const next = this.position.stepInPhase + 1 >= plan.steps ? plans[plan.index + 1] : plan;
      if (next && next.steps > 0 && !options.signal?.aborted) this.windows.prefetch(next, this.position.step + 1);
      let stepResult: StepResult;
      try {
        stepResult = await step;
      } catch (error) {
        this.windows.drop();
        throw error;
      }
      lastLoss = stepResult.loss;
      this.position.step += 1;
      this.position.stepInPhase += 1;
      const progress = meter.after(plan, stepsBefore(this.position), this.position.stepInPhase, { ...stepResult, lr });
      this.scaler?.after(progress, stepResult.skipped === true);  // a skipped step still counts, as with PyTorch's GradScaler
      let stopEarly = false;
      if (validator && validator.due(plan, this.position.stepInPhase)) {
        const score = await validator.score(plan);
        progress.validation = score;
        const { improved, stop } = validator.record(score, this.position.step);
        if (improved && bestFile && leader) this.model.save(bestFile);
        stopEarly = stop;
        this.validationState = validator.state;
        const { best, bestStep } = validator.state!;
        log?.validation({ step: this.position.step, phase: plan.index + 1, validation: score, metric: validator.metric, best, bestStep }, validator.lastSlice, this.model.info.classes);
      }
      log?.step({ step: this.position.step, phase: plan.index + 1, phaseName: plan.name, epoch: progress.epoch, loss: lastLoss, lr, gradNorm: stepResult.gradNorm,
        batchSize: plan.batchSize, voxelsPerSecond: progress.voxelsPerSecond });
      options.onProgress?.(progress);
      this.emit('progress', progress);
      const every = options.checkpoint?.every;
      if (options.checkpoint && ((every && this.position.step % every === 0) || stopEarly)) this.save(options.checkpoint.path);
      if (stopEarly) {
        this.windows.drop();
        return result({ stoppedEarly: true });
      }
      if (options.afterStep) {
        try {
          await options.afterStep(this.position.step);
        } catch (error) {
          this.windows.drop();
          throw error;
        }
      }
    }
    this.windows.drop();
    if (options.checkpoint) this.save(options.checkpoint.path);
    const finished = result({});
    // A finished plan: the next fit starts a new one (the step count goes on).
    this.position = { phase: 0, stepInPhase: 0, step: this.position.step };
    this.validationState = undefined;
    return finished;
  }

  /** One step of a phase on a batch: the batch's inputs are checked, then trainStep. */
  private async stepOn(plan: Plan, lr: number, checkpointPath: string | undefined): Promise<StepResult> {
    const windows = this.windows.take(plan, this.position.step);
    const batch = new Batch(windows, plan.size, plan.data.inputs, plan.names, this.model.device);
    const stepNumber = this.position.step + 1;
    const nonFinite = (where: string) => {
      const last = this.lastCheckpoint;
      const kept = last && last.path === checkpointPath && fs.existsSync(last.path) ? `; the last good checkpoint ${last.path} is kept (step ${last.step})` : '';
      return new SegvolError('ERR_NON_FINITE', `fit: a NaN or infinite value appeared in ${where} at step ${stepNumber}; ` +
        `training stopped before updating the weights${kept}. Check the data for NaN, or lower the learning rate`);
    };
    try {
      const badInput = batch.nonFiniteInput();
      if (badInput !== undefined) throw nonFinite(`the input '${badInput}'`);
      const all = needsAllOutputs(plan.loss.spec);
      return await trainStep(this.model, this.optimizer, async () => {
        const run = { training: true, schedule: plan.memory };
        const outputs = all ? await this.model.forwardOutputs(batch.inputs, run)
          : { [this.model.outputNames[0]!]: await this.model.forward(batch.inputs, run) };
        try {
          return await plan.loss.of(outputs, batch);
        } finally {
          for (const t of Object.values(outputs)) t.dispose();
        }
      }, {
        lr, nonFinite, ...(this.options.clipGradients ? { clipGradients: this.options.clipGradients } : {}),
        ...(this.scaler ? { lossScale: this.scaler.scale } : {}),
        ...(this.parallel ? { collective: this.parallel.collective(stepNumber, this.model) } : {}),
      });
    } finally {
      batch.dispose();
    }
  }

  /**
   * Writes a checkpoint: `path` is a model file (weights readable by PyTorch, architecture and
   * info: loadModel reads it) with the trainer state in its metadata; `path + '.optimizer'`
   * holds the optimizer state. The two are committed as one unit (training/checkpoint.ts): a
   * kill at any instant leaves a pair that resumes.
   */
  save(path: string): void {
    if (this.parallel && !this.parallel.leader) return;
    saveCheckpoint(path, this.model, {
      position: this.position, validation: this.validationState, random: this.windows.state, optimizer: this.optimizer,
      ...(this.scaler ? { lossScaler: this.scaler.state } : {}),
    });
    this.lastCheckpoint = { path, step: this.position.step };
    this.emit('checkpoint', { path, step: this.position.step });
  }

  /**
   * Restores weights, optimizer state, position and sampling state from save(path). With
   * freshOptimizer, a checkpoint without the optimizer state of its step resumes from its
   * weights with fresh optimizer state (no longer bit-exact).
   */
  resume(path: string, options: { freshOptimizer?: boolean } = {}): void {
    const { state, optimizer } = loadCheckpoint(path, this.model, this.random, this.optimizer, options);
    this.optimizer = optimizer;
    this.position = { ...state.position };
    this.lastCheckpoint = { path, step: state.position.step };
    this.legacyEpoch = state.legacyEpoch;
    this.validationState = state.validation;
    if (this.scaler && state.lossScaler) this.scaler.state = state.lossScaler;
  }
}
