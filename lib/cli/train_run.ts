// `segvol train`: one config trains one model. The model's family supplies its
// paper settings, any data form of its own, and any stage before the main fit
// (recursive training's first network); the rest is the Trainer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { launcherEnv } from '../core/distributed';
import { SegvolError } from '../core/errors';
import type { Device } from '../core/tensor';
import type { DataSource } from '../data/samplers';
import type { CliContext, ContinuedTraining } from '../models/family';
import { loadModel } from '../models/load';
import type { ModelBase } from '../nn/model';
import { withoutExtension } from '../training/log';
import type { DistributedOptions } from '../training/distributed';
import { formatBytes } from '../training/memory';
import { Trainer, type FitOptions } from '../training/trainer';
import { buildModel, familyOfConfig, loadTrainingData, loadTrainingStacks, paperSettings, phasesOf, type TrainConfig } from './config';
import { evaluateStacks } from './train_evaluation';

export interface TrainRunOptions {
  resume?: string;
  /** Resume from weights whose optimizer state is missing, with fresh optimizer state. */
  freshOptimizer?: boolean;
  /** Replace an existing model file (and its log, optimizer state and best model) instead of refusing. */
  overwrite?: boolean;
  device: Device;
  signal: AbortSignal;
}

/** The run's distributed option: the config's, or 'mpi' when an MPI launcher started several ranks. */
function distributedOf(config: TrainConfig): DistributedOptions | undefined {
  const d = config.distributed ?? ((launcherEnv()?.size ?? 1) > 1 ? 'mpi' : 'none');
  if (d === 'none') return undefined;
  return d === 'mpi' ? { kind: 'mpi' } : (d as DistributedOptions);
}

/** The files a run writes beside its checkpoint. */
function runFiles(checkpoint: string): string[] {
  const stem = checkpoint.slice(0, checkpoint.length - path.extname(checkpoint).length);
  return [checkpoint, `${checkpoint}.optimizer`, `${checkpoint}.optimizer.pending`, `${stem}.best.safetensors`, `${stem}.log.jsonl`, `${stem}.validation.png`];
}

/** A run that does not resume must not silently replace an earlier run's model file and append to its log. */
function claimCheckpoint(checkpoint: string, options: TrainRunOptions, cli: CliContext): void {
  if (options.resume || !fs.existsSync(checkpoint)) return;
  if (!options.overwrite) {
    throw new SegvolError('ERR_ARGUMENT', `${checkpoint} exists (an earlier run's model file); continue it with --resume ${checkpoint}, ` +
      'or start again with --overwrite (its log, optimizer state and best model are replaced too)');
  }
  for (const file of runFiles(checkpoint)) fs.rmSync(file, { force: true });
  cli.note(`replacing ${checkpoint} and the files beside it (--overwrite)`);
}

/** The trainer and fit of each model trained in this process, so a family may train it on (continueTraining). */
const runs = new WeakMap<ModelBase, { trainer: Trainer; fit: FitOptions; checkpoint: string | undefined; signal: AbortSignal }>();

/** Trains a model of an earlier trainFromConfig on: its last phase's shape, loss and optimizer, on other data. */
function continueTraining(model: ModelBase, data: DataSource): ContinuedTraining {
  const run = runs.get(model);
  if (!run) throw new SegvolError('ERR_ARGUMENT', 'continueTraining: the model was not trained in this run (give its training, not a model file)');
  const { trainer, fit, checkpoint, signal } = run;
  const last = fit.phases?.[fit.phases.length - 1];
  const lastPhase = last ? (({ steps: _s, epochs: _e, data: _d, ...rest }) => rest)(last) : undefined;
  const shape = {
    ...(fit.size ? { size: fit.size } : {}), ...(fit.outputSize ? { outputSize: fit.outputSize } : {}),
    ...(fit.batchSize ? { batchSize: fit.batchSize } : {}),
  };
  return {
    async run(steps: number) {
      if (steps < 1) return;
      await trainer.fit({
        data, signal, ...shape, ...(lastPhase ? { phases: [{ ...lastPhase, steps }] } : { steps }),
        log: checkpoint ? `${withoutExtension(checkpoint)}.log.jsonl` : false,
      });
    },
    get steps() {
      return trainer.step;
    },
    save() {
      if (checkpoint) trainer.save(checkpoint);
    },
    checkpoint,
  };
}

/** Trains the config's model (and first what its family runs before it). Returns the trained model. */
export async function trainFromConfig(config: TrainConfig, baseDir: string, options: TrainRunOptions, cli: CliContext, label = ''): Promise<ModelBase> {
  const settings = paperSettings(config);
  if (config.checkpoint) {
    config.checkpoint = { ...config.checkpoint, path: path.resolve(baseDir, config.checkpoint.path) };
    if (!fs.existsSync(path.dirname(config.checkpoint.path))) {
      throw new SegvolError('ERR_ARGUMENT', `checkpoint.path ${config.checkpoint.path}: the folder ${path.dirname(config.checkpoint.path)} does not exist; create it first`);
    }
    // Rank 0 alone writes (and replaces) files.
    if ((launcherEnv()?.rank ?? 0) === 0) claimCheckpoint(config.checkpoint.path, options, cli);
  }
  const distributed = distributedOf(config);
  const model = buildModel(config, settings).to(options.device);
  const ownLoop = familyOfConfig(config).training?.fit;
  if (ownLoop && distributed) {
    throw new SegvolError('ERR_ARGUMENT', `distributed: the ${familyOfConfig(config).name} family trains with its own loop, which runs in one process in this version; ` +
      'start it without mpirun (or set "distributed": "none")');
  }
  if (ownLoop) {
    await ownLoop({
      config, baseDir, model, signal: options.signal, ...(options.resume ? { resume: options.resume } : {}),
      ...(options.freshOptimizer ? { freshOptimizer: true } : {}),
    }, cli);
    return model;
  }
  let loaded = loadTrainingData(config, baseDir, cli, settings);
  const prepared = await familyOfConfig(config).training?.prepare?.({
    config, baseDir, model, loaded, device: options.device, signal: options.signal,
    // The first stage is trained again on a resume or an overwrite: its own model file is replaced then.
    train: (first, firstLabel) => trainFromConfig(first as TrainConfig, baseDir,
      { device: options.device, signal: options.signal, overwrite: options.overwrite === true || options.resume !== undefined }, cli, firstLabel),
    load: (file) => loadModel(file),
    loadStacks: (stacks, where) => loadTrainingStacks(config, baseDir, stacks, where, settings).map((s) => s.sampler),
    continueTraining,
  }, cli);
  if (prepared) loaded = prepared;
  const { data, validation, info } = loaded;
  // settings: 'paper' gives the paper's update count where the config gives none.
  const paperSteps = config.steps === undefined && config.epochs === undefined && !config.phases && !config.stages && !settings?.phases ? settings?.steps : undefined;
  const phases = phasesOf(config, settings);
  const size = config.size ?? (config.outputSize ? undefined : settings?.size);
  const lastSize = phases?.[phases.length - 1]?.size ?? size;
  model.info = { ...info, ...(lastSize ? { window: [...lastSize] as [number, number, number] } : {}) };
  const defaults = familyOfConfig(config).training?.defaults?.(config);
  const optimizer = config.optimizer ?? settings?.trainer?.optimizer ?? defaults?.optimizer;
  const loss = config.loss ?? settings?.trainer?.loss ?? defaults?.loss;
  const trainer = new Trainer(model, {
    ...(loss ? { loss } : {}), ...(optimizer ? { optimizer } : {}),
    ...(config.schedule ? { schedule: config.schedule } : {}), ...(config.clipGradients ? { clipGradients: config.clipGradients } : {}),
    ...(config.memoryBudget !== undefined ? { memoryBudget: config.memoryBudget } : {}), seed: config.seed ?? 0,
    ...(config.precision !== undefined ? { precision: config.precision } : {}), ...(distributed ? { distributed } : {}),
  });
  if (options.resume) {
    trainer.resume(options.resume, { freshOptimizer: options.freshOptimizer === true });
    cli.print(`resumed from step ${trainer.step} (${options.resume})${options.freshOptimizer ? ' with fresh optimizer state' : ''}`);
  }
  const bar = cli.progress(`${label}training`);
  const v = config.validation;
  const outputSize = config.outputSize ?? (config.size || settings?.size ? undefined : settings?.outputSize);
  let totalSteps = 0;
  const fitOptions: FitOptions = {
    data, signal: options.signal,
    onProgress: (p) => bar.update(p.step / p.totalSteps, `step ${p.step}/${p.totalSteps}${p.phases > 1 ? ` (${p.phaseName})` : ''}  ` +
      `loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${Math.round(p.voxelsPerSecond).toLocaleString('en-US')} voxels/s  ` +
      `${p.validation !== undefined ? `validation ${p.validation.toFixed(4)}  ` : ''}eta ${cli.duration(p.etaSeconds)}`),
    ...(phases ? { phases } : {}), ...(config.epochs ? { epochs: config.epochs } : {}), ...(config.steps ? { steps: config.steps } : paperSteps ? { steps: paperSteps } : {}),
    ...(size ? { size } : {}), ...(outputSize ? { outputSize } : {}),
    ...(config.stepsPerEpoch ? { stepsPerEpoch: config.stepsPerEpoch } : {}),
    ...(config.batchSize ? { batchSize: config.batchSize } : {}), ...(config.checkpoint ? { checkpoint: config.checkpoint } : {}),
    ...(v && validation ? {
      validation: {
        data: validation, ...(v.windows ? { windows: v.windows } : {}), ...(v.size ? { size: v.size } : {}), ...(v.every ? { every: v.every } : {}),
        ...(v.metric ? { metric: v.metric } : {}), ...(v.patience ? { patience: v.patience } : {}),
      },
    } : {}),
    ...(prepared?.afterStep ? { afterStep: (step: number) => prepared.afterStep!(step, totalSteps) } : {}),
  };
  for (const { phase, estimate } of trainer.memoryPlan(fitOptions)) {
    if (!estimate) continue;
    const s = estimate.schedule;
    const how = [s.recompute ? 'gates recomputed in backward' : 'gates kept', s.scanGroups ? `at most ${s.scanGroups} direction${s.scanGroups > 1 ? 's' : ''} at a time` : '']
      .filter(Boolean).join(', ');
    const budget = estimate.budget.source === 'available' ? `${formatBytes(estimate.budget.bytes)} available` : `budget ${formatBytes(estimate.budget.bytes)}`;
    cli.print(`memory per step${phases && phases.length > 1 ? ` (${phase})` : ''}: about ${formatBytes(estimate.peakBytes)} of ${budget} (${how})`);
  }
  totalSteps = trainer.step + trainer.stepsLeft(fitOptions);
  if (options.resume && trainer.stepsLeft(fitOptions) === 0) {
    cli.print(`nothing left to do: ${options.resume} finished this config's ${phases && phases.length > 1 ? 'phases' : 'steps'} at step ${trainer.step}; ` +
      'raise steps or epochs (or add phases) to train on');
    return model;
  }
  const result = await trainer.fit(fitOptions);
  bar.done();
  await prepared?.finish?.(result.aborted);
  runs.set(model, { trainer, fit: fitOptions, checkpoint: config.checkpoint?.path, signal: options.signal });
  const best = result.validation ? `; best validation ${result.validation.metric} ${result.validation.best.toFixed(4)} at step ${result.validation.bestStep}` : '';
  cli.print(`${label}${result.aborted ? 'stopped' : result.stoppedEarly ? 'stopped early (validation stopped improving)' : 'finished'} at step ` +
    `${result.steps}, last loss ${result.lastLoss.toFixed(5)}${best}` + (config.checkpoint ? `; checkpoint ${config.checkpoint.path}` : ''));
  if (result.aborted && label) throw new SegvolError('ERR_ARGUMENT', 'stopped during the first stage of training');
  const leader = (launcherEnv()?.rank ?? 0) === 0 || !distributed;
  if (leader && config.checkpoint && !fs.existsSync(config.checkpoint.path)) model.save(config.checkpoint.path);
  if (leader && config.evaluation && !result.aborted) await evaluateStacks(model, config, baseDir, settings, prepared?.inputsFor, cli);
  return model;
}
