// `segvol train`: one config trains one model, or, with `recursive`, the 2D-3D
// ConvNet paper's pipeline: a first network (trained here, or a model file) gives
// boundary maps of the training stacks, and the second network trains on the image
// and that map, starting from the first one's shared layers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Device } from '../core/tensor';
import { SegvolError } from '../core/errors';
import { VolumeSampler, type DataSource } from '../data/samplers';
import type { ModelBase } from '../nn/model';
import { loadModel } from '../serialize/model_file';
import { formatBytes } from '../training/memory';
import { recursiveBoundaryMap, transferWeights, vd2dSharedLayers } from '../training/recursive';
import { Trainer, type FitOptions } from '../training/trainer';
import { buildModel, loadTrainingData, paperSettings, phasesOf, type TrainConfig } from './config';
import { duration, progressReporter } from './progress';

export interface TrainRunOptions {
  resume?: string;
  device: Device;
  signal: AbortSignal;
}

/** Trains the config's model (and first its recursive stage's, when it has one). Returns the trained model. */
export async function trainFromConfig(config: TrainConfig, baseDir: string, options: TrainRunOptions, label = ''): Promise<ModelBase> {
  const settings = paperSettings(config);
  if (config.checkpoint) config.checkpoint = { ...config.checkpoint, path: path.resolve(baseDir, config.checkpoint.path) };
  const model = buildModel(config.model).to(options.device);
  const loaded = loadTrainingData(config, baseDir, settings);
  let { data, validation } = loaded;
  const { info } = loaded;
  if (config.recursive) {
    const r = config.recursive;
    let first: ModelBase;
    if (r.first) {
      // The first stage shares this config's data and validation.
      const firstConfig = { ...r.first, data: config.data, ...(config.validation ? { validation: config.validation } : {}) } as TrainConfig;
      console.log(`recursive training: stage 1 of 2, ${firstConfig.model.preset}`);
      first = await trainFromConfig(firstConfig, baseDir, { device: options.device, signal: options.signal }, '(stage 1) ');
      console.log(`recursive training: stage 2 of 2, ${config.model.preset} on the image and stage 1's boundary map`);
    } else {
      first = loadModel(path.resolve(baseDir, r.model!)).to(options.device);
    }
    const boundaryOf = async (source: DataSource, what: string) => {
      if (!(source instanceof VolumeSampler)) throw new SegvolError('ERR_ARGUMENT', 'recursive training needs volume data (data.volume and data.labels)');
      const sampler = source;
      const image = sampler.volumeOf();
      const bar = progressReporter(`boundary map of the ${what}`);
      const map = await recursiveBoundaryMap(first, image.data, image.dims, {
        ...(r.window ? { window: r.window } : {}), ...(r.overlap !== undefined ? { overlap: r.overlap } : {}),
        ...(r.boundaryClass !== undefined ? { boundaryClass: r.boundaryClass } : {}),
        onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`),
      });
      bar.done();
      return sampler.withInput('boundary', map);
    };
    data = await boundaryOf(data, 'training data');
    if (validation) validation = await boundaryOf(validation, 'validation data');
    const report = transferWeights(first, model, { layers: r.transfer ?? (config.model.preset === 'vd2d3d' ? vd2dSharedLayers : undefined) });
    const layersOf = (names: string[]) => [...new Set(names.map((n) => n.split('.').slice(-2, -1)[0]))].join(', ');
    console.log(`started from the first network's ${layersOf(report.transferred)} (${report.transferred.length} tensors); ` +
      `fresh: ${layersOf(report.fresh)}`);
    info.normalize = { image: typeof info.normalize === 'string' ? info.normalize : 'slice', boundary: 'none' };
  }
  const phases = phasesOf(config);
  const lastSize = phases?.[phases.length - 1]?.size ?? config.size;
  model.info = { ...info, ...(lastSize ? { window: [...lastSize] as [number, number, number] } : {}) };
  const optimizer = config.optimizer ?? settings?.optimizer;
  const loss = config.loss ?? settings?.loss;
  const trainer = new Trainer(model, {
    ...(loss ? { loss } : {}), ...(optimizer ? { optimizer } : {}),
    ...(config.schedule ? { schedule: config.schedule } : {}), ...(config.clipGradients ? { clipGradients: config.clipGradients } : {}),
    ...(config.memoryBudget !== undefined ? { memoryBudget: config.memoryBudget } : {}), seed: config.seed ?? 0,
  });
  if (options.resume) {
    trainer.resume(options.resume);
    console.log(`resumed from step ${trainer.step} (${options.resume})`);
  }
  const bar = progressReporter(`${label}training`);
  const v = config.validation;
  const outputSize = config.outputSize ?? (config.size ? undefined : settings?.outputSize);
  const fitOptions: FitOptions = {
    data, signal: options.signal,
    onProgress: (p) => bar.update(p.step / p.totalSteps, `step ${p.step}/${p.totalSteps}${p.phases > 1 ? ` (${p.phaseName})` : ''}  ` +
      `loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${Math.round(p.voxelsPerSecond).toLocaleString('en-US')} voxels/s  ` +
      `${p.validation !== undefined ? `validation ${p.validation.toFixed(4)}  ` : ''}eta ${duration(p.etaSeconds)}`),
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
    console.log(`memory per step${phases && phases.length > 1 ? ` (${phase})` : ''}: about ${formatBytes(estimate.peakBytes)} (${how})`);
  }
  const result = await trainer.fit(fitOptions);
  bar.done();
  const best = result.validation ? `; best validation ${result.validation.metric} ${result.validation.best.toFixed(4)} at step ${result.validation.bestStep}` : '';
  console.log(`${label}${result.aborted ? 'stopped' : result.stoppedEarly ? 'stopped early (validation stopped improving)' : 'finished'} at step ` +
    `${result.steps}, last loss ${result.lastLoss.toFixed(5)}${best}` + (config.checkpoint ? `; checkpoint ${config.checkpoint.path}` : ''));
  if (result.aborted && label) throw new SegvolError('ERR_ARGUMENT', 'stopped during the first stage of recursive training');
  if (config.checkpoint && !fs.existsSync(config.checkpoint.path)) model.save(config.checkpoint.path);
  return model;
}
