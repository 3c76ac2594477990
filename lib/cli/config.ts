// The JSON configuration of `segvol train`: checked strictly, so a typo names
// its key instead of being ignored.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VolumeSampler, type DataSource, type VolumeSamplerOptions } from '../data/samplers';
import { bratsClasses, bratsModalities, bratsSampler, findBratsCases, loadBratsCase } from '../data/brats';
import { crossModalityPhases } from '../training/regimes';
import { describe, SegvolError } from '../core/errors';
import { containsClass, type LossConfig, type Phase, type TrainerOptions } from '../training/trainer';
import type { Size3 } from '../data/samplers';
import { preprocessVolume, type Normalization } from '../data/preprocess';
import { readVolume, stackModalities, type Volume } from '../io/volume_io';
import type { ModelBase, ModelInfo } from '../nn/model';
import { presets, znnTrainingSettings, type CrossModalityConvLstmOptions, type PyramidNetOptions, type Vd2d3dOptions, type ZnnPreset, type ZnnTrainingSettings } from '../presets';

/** The network: the PyraMiD-LSTM paper's, one of the 2D-3D ConvNet paper's (N4, VD2D, VD2D3D), or the cross-modality ConvLSTM. */
export type ModelConfig = (PyramidNetOptions & { preset: 'pyramidNet' }) | (Vd2d3dOptions & { preset: ZnnPreset }) |
  (CrossModalityConvLstmOptions & { preset: 'crossModalityConvLstm' });

/**
 * Recursive training (the 2D-3D ConvNet paper): the first network's boundary map of the
 * training stacks becomes the second input ('boundary') of this config's model.
 */
export interface RecursiveConfig {
  /** A model file of the first network (trained earlier)... */
  model?: string;
  /** ...or its training, in this run: model, settings and the training keys of a config (its data is this config's). */
  first?: Omit<TrainConfig, 'data' | 'validation' | 'recursive'>;
  /** The output window of the first network's stitched inference (default: the whole volume). */
  window?: [number, number, number];
  overlap?: number;
  /** The class whose probability is the boundary (default 1). */
  boundaryClass?: number;
  /** Layers to start from the first network's weights (default for VD2D3D: conv1a .. conv3b). */
  transfer?: string[];
}

/** A phase in train.json: Phase's JSON-friendly fields, and a class filter instead of a function. */
export interface PhaseConfig {
  name?: string;
  size?: [number, number, number];
  outputSize?: [number, number, number];
  epochs?: number;
  steps?: number;
  stepsPerEpoch?: number;
  batchSize?: number;
  loss?: TrainerOptions['loss'];
  optimizer?: TrainerOptions['optimizer'];
  schedule?: TrainerOptions['schedule'];
  lr?: number;
  /** Only windows holding at least minVoxels voxels of one of these classes (in the output window). */
  filter?: { containsClass: number | number[]; minVoxels?: number; tries?: number };
}

export interface TrainConfig {
  model: ModelConfig;
  data: {
    /** One volume, or one per modality (stacked as channels). Any format readVolume reads. */
    volume?: string | string[];
    labels?: string;
    /** Or a folder of BRATS case folders (2015 or 2018-2021 naming): four modalities as channels, 'nonzero' normalisation by default. */
    brats?: string;
    mask?: string;
    flip?: { z?: boolean; y?: boolean; x?: boolean };
    rotate?: boolean;
    classAware?: { label: number; minVoxels?: number; tries?: number };
    /** 'slice' (default): per-slice standardisation; 'mr': the paper's MR pipeline; 'none'. Recorded in the model file. */
    normalize?: 'slice' | 'mr' | 'nonzero' | 'none';
    /** Class names, index = class id; recorded in the model file. */
    classNames?: string[];
  };
  /** Held-out data scored during training (normalised like data); the best model is kept beside the checkpoint. */
  validation?: {
    volume?: string | string[];
    labels?: string;
    brats?: string;
    mask?: string;
    windows?: number;
    size?: [number, number, number];
    every?: number;
    metric?: 'loss' | 'dice' | 'meanIU' | 'accuracy';
    patience?: number;
  };
  clipGradients?: { maxNorm?: number; maxValue?: number };
  /**
   * 'paper': the 2D-3D ConvNet paper's settings for an N4/VD2D/VD2D3D model (SGD 0.01 momentum 0.9, its output patch,
   * rebalanced cross-entropy normalised by voxels, rotations and flips, per-slice z-scores); for crossModalityConvLstm
   * Tseng et al.'s two phases (size, and steps or epochs per phase, from the config); keys given here override them.
   */
  settings?: 'paper';
  recursive?: RecursiveConfig;
  /** The output window of a 'valid' network (N4, VD2D, VD2D3D), instead of size. */
  outputSize?: [number, number, number];
  /** The most memory a step may take ("12G"): the cheapest schedule that fits is chosen, or the config is refused. */
  memoryBudget?: number | string;
  phases?: PhaseConfig[];
  /**
   * The PyraMiD-LSTM paper's bootstrap stages: a size and the paper's "epochs", which are
   * updates (one sub-volume each): a stage is a phase of that many steps.
   */
  stages?: Array<{ size: [number, number, number]; epochs: number }>;
  epochs?: number;
  steps?: number;
  size?: [number, number, number];
  stepsPerEpoch?: number;
  batchSize?: number;
  loss?: TrainerOptions['loss'];
  optimizer?: TrainerOptions['optimizer'];
  schedule?: TrainerOptions['schedule'];
  seed?: number;
  checkpoint?: { path: string; every?: number };
}

const schema: Record<string, readonly string[]> = {
  '': ['model', 'data', 'validation', 'phases', 'stages', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer',
    'schedule', 'clipGradients', 'memoryBudget', 'seed', 'checkpoint', 'settings', 'recursive'],
  model: ['preset', 'inChannels', 'classes', 'hidden', 'fc', 'kernel', 'seed', 'activation', 'recursive', 'modalities', 'channels', 'levels', 'lstmKernel',
    'multiModal', 'fusion', 'convLstm', 'decoderActivation'],
  recursive: ['model', 'first', 'window', 'overlap', 'boundaryClass', 'transfer'],
  'recursive.first': ['model', 'phases', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule',
    'clipGradients', 'memoryBudget', 'seed', 'checkpoint', 'settings'],
  'recursive.first.model': ['preset', 'inChannels', 'classes', 'hidden', 'fc', 'kernel', 'seed', 'activation', 'recursive'],
  'recursive.first.checkpoint': ['path', 'every'],
  data: ['volume', 'labels', 'brats', 'mask', 'flip', 'rotate', 'classAware', 'normalize', 'classNames'],
  validation: ['volume', 'labels', 'brats', 'mask', 'windows', 'size', 'every', 'metric', 'patience'],
  clipGradients: ['maxNorm', 'maxValue'],
  'data.flip': ['z', 'y', 'x'],
  'data.classAware': ['label', 'minVoxels', 'tries'],
  checkpoint: ['path', 'every'],
  loss: ['kind', 'classWeights', 'weightsFrom', 'normalize'],
};
const phaseSchema = ['name', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule', 'lr', 'filter'];
const filterSchema = ['containsClass', 'minVoxels', 'tries'];

function checkKeys(value: unknown, where: string): void {
  const known = schema[where];
  if (!known || value === null || typeof value !== 'object' || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    const full = where ? `${where}.${key}` : key;
    if (!known.includes(key)) {
      throw new SegvolError('ERR_ARGUMENT', `config: unknown key '${full}'; known keys${where ? ` of ${where}` : ''}: ${known.join(', ')}`);
    }
    checkKeys(child, full);
  }
}

export function parseTrainConfig(text: string, source: string): TrainConfig {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new SegvolError('ERR_FORMAT', `config ${source}: not valid JSON (${(error as Error).message})`);
  }
  checkKeys(config, '');
  const c = config as TrainConfig;
  if (c.phases !== undefined && c.stages !== undefined) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: give phases or stages, not both (stages are phases with a size and epochs)`);
  }
  if (c.phases !== undefined && !Array.isArray(c.phases)) throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected phases as a list`);
  (c.phases ?? []).forEach((phase, i) => {
    for (const key of Object.keys(phase)) {
      if (!phaseSchema.includes(key)) {
        throw new SegvolError('ERR_ARGUMENT', `config: unknown key 'phases[${i}].${key}'; known keys of a phase: ${phaseSchema.join(', ')}`);
      }
    }
    for (const key of Object.keys(phase.filter ?? {})) {
      if (!filterSchema.includes(key)) {
        throw new SegvolError('ERR_ARGUMENT', `config: unknown key 'phases[${i}].filter.${key}'; known: ${filterSchema.join(', ')}`);
      }
    }
    if (phase.filter && phase.filter.containsClass === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config: phases[${i}].filter needs containsClass (a class id or a list)`);
    }
  });
  const presetsKnown = ['pyramidNet', 'n4', 'vd2d', 'vd2d3d', 'crossModalityConvLstm'];
  for (const [where, model] of [['model', c.model], ['recursive.first.model', c.recursive?.first?.model]] as const) {
    if (where === 'recursive.first.model' && !c.recursive?.first) continue;
    if (!model || !presetsKnown.includes(model.preset)) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected ${where}.preset ${presetsKnown.map((p) => `'${p}'`).join(', ')}, received ${describe(model?.preset)}`);
    }
  }
  if (c.settings !== undefined && (c.settings !== 'paper' || c.model.preset === 'pyramidNet')) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: settings 'paper' sets the paper's training of n4, vd2d, vd2d3d or crossModalityConvLstm; ` +
      `received settings ${describe(c.settings)} for ${c.model.preset}`);
  }
  if (c.recursive) {
    if ((c.recursive.model === undefined) === (c.recursive.first === undefined)) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: recursive needs the first network: a model file (recursive.model) or its training (recursive.first), one of the two`);
    }
    if (c.model.preset !== 'vd2d3d' || !(c.model as Vd2d3dOptions).recursive) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: recursive training feeds a boundary map to a model with a second input: model { "preset": "vd2d3d", "recursive": true }`);
    }
  }
  for (const [key, d] of [['data', c.data], ['validation', c.validation]] as const) {
    if (key === 'validation' && d === undefined) continue;
    if (d?.brats !== undefined) {
      if (typeof d.brats !== 'string' || d.volume !== undefined || d.labels !== undefined || d.mask !== undefined) {
        throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${key}.brats is a folder of BRATS cases (a path), given instead of ${key}.volume, labels and mask`);
      }
      continue;
    }
    const volumes = d ? (Array.isArray(d.volume) ? d.volume : [d.volume]) : [];
    if (!d || volumes.length === 0 || volumes.some((v) => typeof v !== 'string') || typeof d.labels !== 'string') {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected ${key}.volume (a path, or one per modality) and ${key}.labels (a path), or ${key}.brats (a folder of BRATS cases)`);
    }
  }
  if (c.data.normalize !== undefined && !['slice', 'mr', 'nonzero', 'none'].includes(c.data.normalize)) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected data.normalize 'slice', 'mr', 'nonzero' or 'none', received ${describe(c.data.normalize)}`);
  }
  return c;
}

export function buildModel(config: ModelConfig): ModelBase {
  if (config.preset === 'pyramidNet') {
    const { preset: _preset, ...options } = config;
    return presets.pyramidNet(options);
  }
  const { preset, ...options } = config;
  return presets[preset](options);
}

/** The paper's settings a config asks for ('settings': 'paper'), or undefined. */
export function paperSettings(config: Pick<TrainConfig, 'settings' | 'model'>): ZnnTrainingSettings | undefined {
  const preset = config.model.preset;
  return config.settings === 'paper' && preset !== 'pyramidNet' && preset !== 'crossModalityConvLstm' ? znnTrainingSettings(preset) : undefined;
}

/** Reads one volume per modality (paths relative to baseDir), checks it, normalises it, and stacks the modalities as channels. */
function readModalities(paths: readonly string[], normalize: Normalization, baseDir: string, key: string): Volume {
  const modalities = paths.map((p) => {
    const v = readVolume(path.resolve(baseDir, p));
    let nan = 0;
    for (const value of v.data) if (!Number.isFinite(value)) ++nan;
    if (nan) {
      throw new SegvolError('ERR_NON_FINITE', `${key} ${p}: ${nan} voxels are NaN or infinite; training needs finite values ` +
        '(fill them, or mask them out with data.mask and set them to 0)');
    }
    if (v.shape.length !== 3) {
      throw new SegvolError('ERR_SHAPE', `${key} ${p}: expected one (D, H, W) volume per modality, received (${v.shape.join(', ')})`);
    }
    return { ...v, data: preprocessVolume(v.data, v.shape, normalize) };
  });
  return stackModalities(modalities, [...paths]);
}

function sampler(volume: Volume, labelsPath: string, maskPath: string | undefined, baseDir: string, key: string,
  extra: Partial<VolumeSamplerOptions> = {}): VolumeSampler {
  const labels = readVolume(path.resolve(baseDir, labelsPath));
  if (labels.shape.join() !== volume.shape.slice(1).join()) {
    throw new SegvolError('ERR_SHAPE', `${key}.labels ${labelsPath}: expected shape (${volume.shape.slice(1).join(', ')}) like the volume, received (${labels.shape.join(', ')})`);
  }
  const mask = maskPath ? readVolume(path.resolve(baseDir, maskPath)).data : undefined;
  return new VolumeSampler({
    volume: volume.data, shape: volume.shape as [number, number, number, number], labels: labels.data, ...(mask ? { mask } : {}), ...extra,
  });
}

/**
 * Loads the config's volumes (paths relative to the config file), normalised, modalities
 * stacked as channels, and what the model file should record about them.
 */
export function loadTrainingData(config: TrainConfig, baseDir: string, settings?: ZnnTrainingSettings): { data: DataSource; validation?: DataSource; info: ModelInfo } {
  if (config.data.brats !== undefined) return loadBrats(config, baseDir);
  const paths = (Array.isArray(config.data.volume) ? config.data.volume : [config.data.volume!]);
  const normalize = config.data.normalize ?? settings?.normalize ?? 'slice';
  const volume = readModalities(paths, normalize, baseDir, 'data.volume');
  const flip = config.data.flip ?? settings?.augmentation.flip;
  const rotate = config.data.rotate ?? settings?.augmentation.rotate;
  const data = sampler(volume, config.data.labels!, config.data.mask, baseDir, 'data', {
    ...(flip ? { flip } : {}), ...(rotate ? { rotate: true } : {}),
    ...(config.data.classAware ? { classAware: config.data.classAware } : {}),
  });
  const v = config.validation;
  if (v?.brats !== undefined) throw new SegvolError('ERR_ARGUMENT', 'config: validation.brats goes with data.brats; give validation.volume and labels for volume data');
  const validation = v ? sampler(readModalities(Array.isArray(v.volume) ? v.volume : [v.volume!], normalize, baseDir, 'validation.volume'),
    v.labels!, v.mask, baseDir, 'validation', { flip: {} }) : undefined;
  const info: ModelInfo = {
    normalize,
    channels: { input: paths.map((p) => path.basename(p).replace(/\.(nii\.gz|nii|tiff?|npy|png)$/i, '')) },
    ...(volume.spacing ? { spacing: volume.spacing } : {}),
    ...(config.data.classNames ? { classes: [...config.data.classNames] } : {}),
  };
  return validation ? { data, validation, info } : { data, info };
}

/** BRATS cases as training (and validation) data: slice sequences of the four modalities, normalised per case and modality. */
function loadBrats(config: TrainConfig, baseDir: string): { data: DataSource; validation?: DataSource; info: ModelInfo } {
  const normalize = config.data.normalize ?? 'nonzero';
  const load = (folder: string, what: string) => {
    const files = findBratsCases(path.resolve(baseDir, folder));
    const bar = progressLine(`loading ${files.length} BRATS case${files.length > 1 ? 's' : ''} (${what})`);
    const cases = files.map((f) => loadBratsCase(f, { normalize }));
    bar();
    return cases;
  };
  const cases = load(config.data.brats!, 'training');
  const data = bratsSampler(cases, { flip: config.data.flip?.x ?? true });
  const v = config.validation;
  if (v && v.brats === undefined) throw new SegvolError('ERR_ARGUMENT', 'config: with data.brats, give validation.brats (a folder of held-out cases)');
  const validation = v?.brats !== undefined ? bratsSampler(load(v.brats, 'validation'), { flip: false }) : undefined;
  const info: ModelInfo = {
    normalize, channels: { input: [...bratsModalities] }, classes: config.data.classNames ? [...config.data.classNames] : [...bratsClasses],
    ...(cases[0]!.spacing ? { spacing: cases[0]!.spacing } : {}),
  };
  return validation ? { data, validation, info } : { data, info };
}

function progressLine(text: string): () => void {
  const started = Date.now();
  process.stderr.write(`${text}...`);
  return () => process.stderr.write(` ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

/** The config's phases for Trainer.fit (stages become phases; a JSON filter becomes containsClass; the ConvLSTM paper's two phases). */
export function phasesOf(config: TrainConfig): Phase[] | undefined {
  if (!config.phases && !config.stages && config.settings === 'paper' && config.model.preset === 'crossModalityConvLstm') {
    const size = config.size ?? [3, 240, 240];
    const each = (n: number | undefined) => [n ?? 1000, n ?? 1000] as [number, number];
    return crossModalityPhases({
      sequence: size[0], plane: [size[1], size[2]], ...(config.batchSize ? { batchSize: config.batchSize } : {}),
      ...(config.epochs ? { epochs: each(config.epochs) } : { steps: each(config.steps) }),
      ...(config.optimizer?.lr !== undefined ? { lr: config.optimizer.lr } : {}),
    });
  }
  if (config.stages) return config.stages.map((s) => ({ size: s.size as Size3, steps: s.epochs }));
  return config.phases?.map(({ filter, ...rest }) => ({
    ...rest,
    ...(filter ? { filter: containsClass(filter.containsClass, filter.minVoxels ?? 1), ...(filter.tries ? { filterTries: filter.tries } : {}) } : {}),
  }) as Phase);
}

export function readTrainConfig(file: string): TrainConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new SegvolError('ERR_ARGUMENT', `cannot read config ${file}: ${(error as Error).message}`);
  }
  return parseTrainConfig(text, file);
}

export type { LossConfig };
