// `segvol train` for the consistent ConvLSTM: a config names the EM volume and its object
// ids; settings 'paper' gives the paper's regime (Adam at 1e-6, batch 1, 40 epochs, true
// masks for the first 10, an 80/20 split with the best model kept). Its own loop
// (trainConsistent), not the Trainer's: checkpoints at every epoch's end, the best model
// beside the checkpoint, a JSON-lines log, and --resume from the last finished epoch.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { Random } from '../../core/random';
import { preprocessVolume, type Normalization } from '../../data/preprocess';
import { readLabels } from '../../io/labels';
import { readVolume } from '../../io/volume_io';
import { loadCheckpoint, saveCheckpoint } from '../../training/checkpoint';
import { parseBudget } from '../../training/memory';
import { Optimizer, type OptimizerConfig } from '../../training/optimizers';
import type { FamilyTraining, TrainConfigObject } from '../family';
import type { ConsistentConvLstmNet } from './network';
import { trainConsistent, type ConsistentSplit } from './training';

/** The paper's regime (section 2.5 and Table 1). */
export const consistentPaperSettings = {
  optimizer: { kind: 'adam', lr: 1e-6 } as OptimizerConfig,
  epochs: 40,
  switchEpoch: 10,
  validationFraction: 0.2,
} as const;

interface ConsistentConfig extends TrainConfigObject {
  size?: [number, number, number];
  epochs?: number;
  switchEpoch?: number;
  maxObjects?: number;
  objectsPerGroup?: number;
  stride?: [number, number, number];
  passes?: number;
  optimizer?: OptimizerConfig;
  memoryBudget?: number | string;
  seed?: number;
  checkpoint?: { path: string };
  validation?: { fraction?: number; split?: ConsistentSplit };
}

const integerTriple = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every((n) => Number.isInteger(n) && n >= 1);

export const consistentTraining: FamilyTraining = {
  modelKeys: ['inChannels', 'hidden', 'variant', 'kernel', 'seed', 'encoderWeights'],
  schema: {
    '': ['switchEpoch', 'maxObjects', 'objectsPerGroup', 'stride', 'passes'],
    validation: ['fraction', 'split'],
  },
  check(config, source) {
    if (config.model.preset !== 'consistentConvLstm') {
      for (const key of ['switchEpoch', 'maxObjects', 'objectsPerGroup', 'stride', 'passes']) {
        if (config[key] !== undefined) throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${key} is for consistentConvLstm models`);
      }
      return;
    }
    const c = config as ConsistentConfig;
    for (const key of ['phases', 'stages', 'steps', 'stepsPerEpoch', 'batchSize', 'loss', 'schedule', 'outputSize', 'clipGradients']) {
      if (config[key] !== undefined) {
        throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${key} is not a key of the consistent ConvLSTM's training (an epoch is a pass over the training sub-volumes, one each step, ` +
          'the loss the matched soft IoU); its keys: size, epochs, switchEpoch, maxObjects, objectsPerGroup, stride, passes, optimizer, memoryBudget, seed, checkpoint, validation.fraction, validation.split');
      }
    }
    if (c.size !== undefined && !integerTriple(c.size)) throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected size as [T, h, w] (frames, then sides that are multiples of 32), received ${describe(c.size)}`);
    if (c.stride !== undefined && !integerTriple(c.stride)) throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected stride as [z, y, x], received ${describe(c.stride)}`);
    if (c.epochs === undefined && config.settings !== 'paper') {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected epochs (passes over the training sub-volumes), or settings 'paper' for the paper's 40`);
    }
    const v = c.validation;
    if (v && (v as Record<string, unknown>).volume !== undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: the consistent ConvLSTM holds out part of data.volume for validation (validation.fraction, validation.split); ` +
        'validation.volume is not read');
    }
    if (v?.split !== undefined && v.split !== 'subvolumes' && v.split !== 'z') {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected validation.split 'subvolumes' or 'z', received ${describe(v.split)}`);
    }
  },
  paperPresets: ['consistentConvLstm'],
  paperSettings: (config) => config.model.preset === 'consistentConvLstm' && config.settings === 'paper'
    ? { trainer: { optimizer: consistentPaperSettings.optimizer } } : undefined,
  async fit({ config, baseDir, model, signal, resume, freshOptimizer }, cli) {
    const c = config as ConsistentConfig;
    const net = model as ConsistentConvLstmNet;
    const paper = config.settings === 'paper';
    const volumePath = config.data.volume;
    if (typeof volumePath !== 'string') throw new SegvolError('ERR_ARGUMENT', 'config: the consistent ConvLSTM reads one volume (data.volume, a path)');
    const image = readVolume(path.resolve(baseDir, volumePath));
    const labels = await readLabels(path.resolve(baseDir, config.data.labels as string));
    const dims = image.shape.slice(-3) as [number, number, number];
    if (labels.shape.join() !== dims.join()) {
      throw new SegvolError('ERR_SHAPE', `data.labels ${String(config.data.labels)}: expected object ids of shape (${dims.join(', ')}) like the volume, received (${labels.shape.join(', ')})`);
    }
    if (image.shape.length === 4 && image.shape[0] !== net.options.inChannels) {
      throw new SegvolError('ERR_SHAPE', `data.volume has ${image.shape[0]} channels, the model takes ${net.options.inChannels}`);
    }
    const normalize = (config.data.normalize as Normalization | undefined) ?? 'slice';
    const volume = preprocessVolume(image.data, image.shape, normalize);
    const [D, H, W] = dims;
    const window = c.size ?? [Math.min(8, D), Math.min(256, Math.floor(H / 32) * 32), Math.min(256, Math.floor(W / 32) * 32)] as [number, number, number];
    const epochs = c.epochs ?? consistentPaperSettings.epochs;
    const encoderWeights = config.model.encoderWeights as string | undefined;
    if (encoderWeights && !resume) cli.print(`encoder: ${net.loadEncoderWeights(path.resolve(baseDir, encoderWeights))} tensors from ${encoderWeights}`);
    model.info = { ...model.info, normalize, window: [...window] };
    const checkpoint = c.checkpoint?.path;
    const stem = checkpoint ? checkpoint.slice(0, checkpoint.length - path.extname(checkpoint).length) : undefined;
    let optimizer = new Optimizer(c.optimizer ?? (paper ? consistentPaperSettings.optimizer : { kind: 'adam', lr: 1e-6 }));
    let start: { epoch: number; optimizer: Optimizer; best?: { epoch: number; score: number } } = { epoch: 0, optimizer };
    let steps = 0;
    if (resume) {
      const restored = loadCheckpoint(resume, model, new Random(0), optimizer, { freshOptimizer: freshOptimizer === true });
      optimizer = restored.optimizer;
      const v = restored.state.validation;
      start = { epoch: restored.state.position.stepInPhase, optimizer, ...(v && Number.isFinite(v.best) ? { best: { epoch: v.bestStep, score: v.best } } : {}) };
      steps = restored.state.position.step;
      cli.print(`resumed after epoch ${start.epoch} of ${epochs} (${resume})`);
      if (start.epoch >= epochs) {
        cli.print(`nothing left to do: ${resume} finished this config's ${epochs} epochs; raise epochs to train on`);
        return;
      }
    }
    const budget = c.memoryBudget !== undefined ? parseBudget(c.memoryBudget, 'memoryBudget') : undefined;
    const log = stem ? `${stem}.log.jsonl` : undefined;
    const bar = cli.progress('training');
    let stepsDone = steps;
    const perEpoch = { count: 0 };
    const result = await trainConsistent(net, {
      volume, segments: labels.data, dims, window, epochs, start, signal, seed: c.seed ?? 0,
      ...(c.switchEpoch !== undefined ? { switchEpoch: c.switchEpoch } : paper ? { switchEpoch: consistentPaperSettings.switchEpoch } : {}),
      ...(c.maxObjects !== undefined ? { maxObjects: c.maxObjects } : {}), ...(c.objectsPerGroup !== undefined ? { objectsPerGroup: c.objectsPerGroup } : {}),
      ...(c.stride ? { stride: c.stride } : {}), ...(c.passes !== undefined ? { passes: c.passes } : {}), ...(budget !== undefined ? { memoryBudget: budget } : {}),
      validationFraction: c.validation?.fraction ?? consistentPaperSettings.validationFraction, split: c.validation?.split ?? 'subvolumes',
      onProgress: (p) => {
        ++stepsDone;
        ++perEpoch.count;
        bar.update((p.epoch + 0.5) / epochs, `epoch ${p.epoch + 1}/${epochs}  step ${stepsDone}  loss ${p.loss.toFixed(4)}  objects ${p.objects}` +
          `${p.groups > 1 ? ` in ${p.groups} groups` : ''}  ${p.inferredMasks ? 'own masks' : 'true masks'}`);
        if (log) fs.appendFileSync(log, `${JSON.stringify({ step: stepsDone, epoch: p.epoch, loss: p.loss, objects: p.objects, groups: p.groups, inferredMasks: p.inferredMasks, time: new Date().toISOString() })}\n`);
      },
      onEpoch: (e) => {
        if (e.best && stem) model.save(`${stem}.best.safetensors`);
        if (e.best) start.best = { epoch: e.epoch, score: e.validation! };
        if (log) fs.appendFileSync(log, `${JSON.stringify({ epoch: e.epoch, loss: e.loss, validation: e.validation ?? null, metric: 'adaptedRandError', best: e.best })}\n`);
        if (checkpoint) {
          saveCheckpoint(checkpoint, model, {
            position: { phase: 0, stepInPhase: e.epoch + 1, step: stepsDone },
            validation: start.best ? { best: start.best.score, bestStep: start.best.epoch, sinceBest: e.epoch - start.best.epoch } : undefined,
            random: 0, optimizer,
          });
        }
        cli.print(`epoch ${e.epoch + 1}/${epochs}: loss ${e.loss.toFixed(4)}` +
          (e.validation !== undefined ? `, validation adapted Rand error ${e.validation.toFixed(4)}${e.best ? ' (best)' : ''}` : ''));
      },
    });
    bar.done();
    cli.print(`${result.aborted ? 'stopped' : 'finished'} after ${result.epochs.length} epoch(s) on ${result.subvolumes.training} training sub-volumes of ` +
      `${window.join('x')} (${result.subvolumes.validation} for validation)` +
      (start.best ? `; best validation adapted Rand error ${start.best.score.toFixed(4)} at epoch ${start.best.epoch + 1}${stem ? ` (${stem}.best.safetensors)` : ''}` : '') +
      (checkpoint ? `; checkpoint ${checkpoint}` : ''));
    if (checkpoint && !fs.existsSync(checkpoint)) model.save(checkpoint);
  },
};
