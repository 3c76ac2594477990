// `segvol train`: one config trains one model. The model's family supplies its
// paper settings, any data form of its own, and any stage before the main fit
// (recursive training's first network); the rest is the Trainer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SegvolError } from '../core/errors';
import type { Device } from '../core/tensor';
import type { CliContext } from '../models/family';
import { loadModel } from '../models/load';
import type { ModelBase } from '../nn/model';
import { formatBytes } from '../training/memory';
import { Trainer, type FitOptions } from '../training/trainer';
import { buildModel, familyOfConfig, loadTrainingData, paperSettings, phasesOf, type TrainConfig } from './config';

export interface TrainRunOptions {
  resume?: string;
  device: Device;
  signal: AbortSignal;
}

/** Trains the config's model (and first what its family runs before it). Returns the trained model. */
export async function trainFromConfig(config: TrainConfig, baseDir: string, options: TrainRunOptions, cli: CliContext, label = ''): Promise<ModelBase> {
  const settings = paperSettings(config);
  if (config.checkpoint) config.checkpoint = { ...config.checkpoint, path: path.resolve(baseDir, config.checkpoint.path) };
  const model = buildModel(config).to(options.device);
  let loaded = loadTrainingData(config, baseDir, cli, settings);
  const prepared = await familyOfConfig(config).training?.prepare?.({
    config, baseDir, model, loaded, device: options.device, signal: options.signal,
    train: (first, firstLabel) => trainFromConfig(first as TrainConfig, baseDir, { device: options.device, signal: options.signal }, cli, firstLabel),
    load: (file) => loadModel(file),
  }, cli);
  if (prepared) loaded = prepared;
  const { data, validation, info } = loaded;
  const phases = phasesOf(config, settings);
  const lastSize = phases?.[phases.length - 1]?.size ?? config.size;
  model.info = { ...info, ...(lastSize ? { window: [...lastSize] as [number, number, number] } : {}) };
  const optimizer = config.optimizer ?? settings?.trainer?.optimizer;
  const loss = config.loss ?? settings?.trainer?.loss;
  const trainer = new Trainer(model, {
    ...(loss ? { loss } : {}), ...(optimizer ? { optimizer } : {}),
    ...(config.schedule ? { schedule: config.schedule } : {}), ...(config.clipGradients ? { clipGradients: config.clipGradients } : {}),
    ...(config.memoryBudget !== undefined ? { memoryBudget: config.memoryBudget } : {}), seed: config.seed ?? 0,
  });
  if (options.resume) {
    trainer.resume(options.resume);
    cli.print(`resumed from step ${trainer.step} (${options.resume})`);
  }
  const bar = cli.progress(`${label}training`);
  const v = config.validation;
  const outputSize = config.outputSize ?? (config.size ? undefined : settings?.outputSize);
  const fitOptions: FitOptions = {
    data, signal: options.signal,
    onProgress: (p) => bar.update(p.step / p.totalSteps, `step ${p.step}/${p.totalSteps}${p.phases > 1 ? ` (${p.phaseName})` : ''}  ` +
      `loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${Math.round(p.voxelsPerSecond).toLocaleString('en-US')} voxels/s  ` +
      `${p.validation !== undefined ? `validation ${p.validation.toFixed(4)}  ` : ''}eta ${cli.duration(p.etaSeconds)}`),
    ...(phases ? { phases } : {}), ...(config.epochs ? { epochs: config.epochs } : {}), ...(config.steps ? { steps: config.steps } : {}),
    ...(config.size ? { size: config.size } : {}), ...(outputSize ? { outputSize } : {}),
    ...(config.stepsPerEpoch ? { stepsPerEpoch: config.stepsPerEpoch } : {}),
    ...(config.batchSize ? { batchSize: config.batchSize } : {}), ...(config.checkpoint ? { checkpoint: config.checkpoint } : {}),
    ...(v && validation ? {
      validation: {
        data: validation, ...(v.windows ? { windows: v.windows } : {}), ...(v.size ? { size: v.size } : {}), ...(v.every ? { every: v.every } : {}),
        ...(v.metric ? { metric: v.metric } : {}), ...(v.patience ? { patience: v.patience } : {}),
      },
    } : {}),
  };
  for (const { phase, estimate } of trainer.memoryPlan(fitOptions)) {
    if (!estimate) continue;
    const s = estimate.schedule;
    const how = [s.recompute ? 'gates recomputed in backward' : 'gates kept', s.scanGroups ? `at most ${s.scanGroups} direction${s.scanGroups > 1 ? 's' : ''} at a time` : '']
      .filter(Boolean).join(', ');
    const budget = estimate.budget.source === 'available' ? `${formatBytes(estimate.budget.bytes)} available` : `budget ${formatBytes(estimate.budget.bytes)}`;
    cli.print(`memory per step${phases && phases.length > 1 ? ` (${phase})` : ''}: about ${formatBytes(estimate.peakBytes)} of ${budget} (${how})`);
  }
  const result = await trainer.fit(fitOptions);
  bar.done();
  const best = result.validation ? `; best validation ${result.validation.metric} ${result.validation.best.toFixed(4)} at step ${result.validation.bestStep}` : '';
  cli.print(`${label}${result.aborted ? 'stopped' : result.stoppedEarly ? 'stopped early (validation stopped improving)' : 'finished'} at step ` +
    `${result.steps}, last loss ${result.lastLoss.toFixed(5)}${best}` + (config.checkpoint ? `; checkpoint ${config.checkpoint.path}` : ''));
  if (result.aborted && label) throw new SegvolError('ERR_ARGUMENT', 'stopped during the first stage of training');
  if (config.checkpoint && !fs.existsSync(config.checkpoint.path)) model.save(config.checkpoint.path);
  return model;
}
