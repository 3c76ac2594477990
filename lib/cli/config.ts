// The JSON configuration of `segvol train`: checked strictly (a typo names its key
// instead of being ignored) against the generic schema merged with the keys of the
// model's family, which also supplies its paper settings and any data form of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { checkSchema, listOf, rejectUnknown } from '../core/validate';
import { preprocessVolume, type Normalization } from '../data/preprocess';
import { VolumeSampler, type Size3, type VolumeSamplerOptions } from '../data/samplers';
import { readVolume, stackModalities, type Volume } from '../io/volume_io';
import { families, familyOfPreset } from '../models';
import type { CliContext, LoadedTrainingData, ModelFamily, PaperSettings, TrainConfigObject } from '../models/family';
import type { ModelBase, ModelInfo } from '../nn/model';
import { containsClass, type Phase } from '../training/options';

/** A phase in train.json: Phase's JSON-friendly fields, and a class filter instead of a function. */
export type PhaseConfig = Omit<Phase, 'data' | 'filter' | 'filterTries'> & {
  /** Only windows holding at least minVoxels voxels of one of these classes (in the output window). */
  filter?: { containsClass: number | number[]; minVoxels?: number; tries?: number };
};

/** The generic part of a train.json; the model's family adds its own keys (see ModelFamily.training). */
export interface TrainConfig extends TrainConfigObject, Omit<Phase, 'name' | 'data' | 'filter' | 'filterTries' | 'lr'> {
  model: { preset: string; seed?: number } & Record<string, unknown>;
  data: {
    /** One volume, or one per modality (stacked as channels). Any format readVolume reads. */
    volume?: string | string[];
    labels?: string;
    mask?: string;
    flip?: { z?: boolean; y?: boolean; x?: boolean };
    rotate?: boolean;
    classAware?: { label: number; minVoxels?: number; tries?: number };
    /** 'slice' (default): per-slice standardisation; 'mr': the paper's MR pipeline; 'nonzero'; 'none'. Recorded in the model file. */
    normalize?: Normalization;
    /** Class names, index = class id; recorded in the model file. */
    classNames?: string[];
  } & Record<string, unknown>;
  /** Held-out data scored during training (normalised like data); the best model is kept beside the checkpoint. */
  validation?: {
    volume?: string | string[];
    labels?: string;
    mask?: string;
    windows?: number;
    size?: Size3;
    every?: number;
    metric?: 'loss' | 'dice' | 'meanIU' | 'accuracy';
    patience?: number;
  } & Record<string, unknown>;
  clipGradients?: { maxNorm?: number; maxValue?: number };
  /** The paper's settings for the model (see the family's docs); keys given here override them. */
  settings?: 'paper';
  /** The most memory a step may take ("12G"): the cheapest schedule that fits is chosen, or the config is refused. */
  memoryBudget?: number | string;
  phases?: PhaseConfig[];
  /**
   * The PyraMiD-LSTM paper's bootstrap stages: a size and the paper's "epochs", which are
   * updates (one sub-volume each): a stage is a phase of that many steps. `epochs` is
   * the deprecated name of `updates` here (an epoch elsewhere is a pass over the data).
   */
  stages?: Array<{ size: Size3; updates?: number; epochs?: number }>;
  seed?: number;
  checkpoint?: { path: string; every?: number };
}

const genericSchema: Readonly<Record<string, readonly string[]>> = {
  '': ['model', 'data', 'validation', 'phases', 'stages', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer',
    'schedule', 'clipGradients', 'memoryBudget', 'seed', 'checkpoint', 'settings'],
  data: ['volume', 'labels', 'mask', 'flip', 'rotate', 'classAware', 'normalize', 'classNames'],
  validation: ['volume', 'labels', 'mask', 'windows', 'size', 'every', 'metric', 'patience'],
  clipGradients: ['maxNorm', 'maxValue'],
  'data.flip': ['z', 'y', 'x'],
  'data.classAware': ['label', 'minVoxels', 'tries'],
  checkpoint: ['path', 'every'],
  loss: ['kind', 'targets', 'input', 'classWeights', 'weightsFrom', 'normalize'],
  'phases[]': ['name', 'size', 'outputSize', 'epochs', 'steps', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule', 'lr', 'filter'],
  'phases[].filter': ['containsClass', 'minVoxels', 'tries'],
  'stages[]': ['size', 'updates', 'epochs'],
};

/** The generic schema with every family's keys added. */
function schema(): Record<string, readonly string[]> {
  const merged: Record<string, string[]> = Object.fromEntries(Object.entries(genericSchema).map(([k, v]) => [k, [...v]]));
  for (const family of families) {
    for (const [where, keys] of Object.entries(family.training?.schema ?? {})) merged[where] = [...new Set([...(merged[where] ?? []), ...keys])];
  }
  return merged;
}

const trainable = () => families.filter((f) => f.training);
const trainablePresets = () => trainable().flatMap((f) => Object.keys(f.presets));

/** The family that trains a config's preset, checking the model's keys against it. */
function checkModel(model: unknown, where: string, source: string): ModelFamily {
  const preset = (model as { preset?: unknown } | undefined)?.preset;
  const family = typeof preset === 'string' ? familyOfPreset(preset) : undefined;
  if (!family?.training) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected ${where}.preset ${listOf(trainablePresets())}, received ${describe(preset)}` +
      (family ? ` (${preset} models train through the API: see the docs of ${family.title})` : ''));
  }
  rejectUnknown(model as object, ['preset', ...family.training.modelKeys], `config ${source}`, 'key', `${where}.`);
  return family;
}

/** Every object under a 'model' key below the top (a first stage's model), with its path. */
function nestedModels(value: unknown, at: string): Array<[string, unknown]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const where = at ? `${at}.${key}` : key;
    if (key === 'model' && at !== '' && child && typeof child === 'object' && 'preset' in child) return [[where, child] as [string, unknown]];
    return key === 'model' && at === '' ? [] : nestedModels(child, where);
  });
}

/** The family of a checked config's model. */
export function familyOfConfig(config: TrainConfig): ModelFamily {
  return familyOfPreset(config.model.preset)!;
}

export function parseTrainConfig(text: string, source: string): TrainConfig {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new SegvolError('ERR_FORMAT', `config ${source}: not valid JSON (${(error as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new SegvolError('ERR_FORMAT', `config ${source}: expected a JSON object`);
  const c = config as TrainConfig;
  checkSchema(c, schema(), 'config');
  if (c.phases !== undefined && c.stages !== undefined) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: give phases or stages, not both (stages are phases with a size and epochs)`);
  }
  for (const key of ['phases', 'stages'] as const) {
    if (c[key] !== undefined && !Array.isArray(c[key])) throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected ${key} as a list`);
  }
  (c.stages ?? []).forEach((stage, i) => {
    if ((stage.updates === undefined) === (stage.epochs === undefined)) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: stages[${i}] needs updates (the paper's "epochs": one sub-volume, one update each), ` +
        'and not also epochs (its old name)');
    }
  });
  (c.phases ?? []).forEach((phase, i) => {
    if (phase.filter && phase.filter.containsClass === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config: phases[${i}].filter needs containsClass (a class id or a list)`);
    }
  });
  const family = checkModel(c.model, 'model', source);
  for (const [where, model] of nestedModels(c, '')) checkModel(model, where, source);
  if (c.settings !== undefined && (c.settings !== 'paper' || !family.training!.paperSettings?.(c))) {
    const paper = trainable().flatMap((f) => f.training!.paperPresets ?? []);
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: settings 'paper' sets the paper's training of ${listOf(paper)}; ` +
      `received settings ${describe(c.settings)} for ${c.model.preset}`);
  }
  for (const f of trainable()) f.training!.check?.(c, source);
  // A family's own data form (its keys under data or validation) is the family's to check.
  const ownedKeys = (key: 'data' | 'validation') => families.flatMap((f) => f.training?.schema?.[key] ?? []);
  for (const [key, d] of [['data', c.data], ['validation', c.validation]] as const) {
    if (key === 'validation' && d === undefined) continue;
    if (d && ownedKeys(key).some((k) => d[k] !== undefined)) continue;
    const volumes = d ? (Array.isArray(d.volume) ? d.volume : [d.volume]) : [];
    if (!d || volumes.length === 0 || volumes.some((v) => typeof v !== 'string') || typeof d.labels !== 'string') {
      const other = ownedKeys(key).map((k) => `${key}.${k}`);
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected ${key}.volume (a path, or one per modality) and ${key}.labels (a path)` +
        (other.length ? `, or ${other.join(', or ')}` : ''));
    }
  }
  if (c.data.normalize !== undefined && !['slice', 'mr', 'nonzero', 'none'].includes(c.data.normalize)) {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected data.normalize 'slice', 'mr', 'nonzero' or 'none', received ${describe(c.data.normalize)}`);
  }
  return c;
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

/** The config's model, built from its preset (the paper's network options first, when its settings give them). */
export function buildModel(config: TrainConfig, settings?: PaperSettings): ModelBase {
  const { preset, ...options } = config.model;
  return familyOfConfig(config).presets[preset]!({ ...settings?.model, ...options } as never);
}

/** The paper's settings the config asks for (settings: 'paper'), or undefined. */
export function paperSettings(config: TrainConfig): PaperSettings | undefined {
  return config.settings === 'paper' ? familyOfConfig(config).training?.paperSettings?.(config) : undefined;
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
 * stacked as channels, and what the model file should record about them; or, for a
 * data form a family owns, the family's loader.
 */
export function loadTrainingData(config: TrainConfig, baseDir: string, cli?: CliContext, settings?: PaperSettings): LoadedTrainingData {
  const family = familyOfConfig(config);
  const own = cli ? family.training?.loadData?.(config, baseDir, cli) : undefined;
  if (own) return own;
  const paths = (Array.isArray(config.data.volume) ? config.data.volume : [config.data.volume!]);
  const normalize = config.data.normalize ?? settings?.normalize ?? 'slice';
  const volume = readModalities(paths, normalize, baseDir, 'data.volume');
  const flip = config.data.flip ?? settings?.flip;
  const rotate = config.data.rotate ?? settings?.rotate;
  const data = sampler(volume, config.data.labels!, config.data.mask, baseDir, 'data', {
    ...(flip ? { flip } : {}), ...(rotate ? { rotate: true } : {}),
    ...(config.data.classAware ? { classAware: config.data.classAware } : {}),
  });
  const v = config.validation;
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

/** The config's phases for Trainer.fit: the paper's (when its settings give them), stages as phases, or phases with JSON filters made functions. */
export function phasesOf(config: TrainConfig, settings?: PaperSettings): Phase[] | undefined {
  if (!config.phases && !config.stages && settings?.phases) return settings.phases;
  if (config.stages) return config.stages.map((s) => ({ size: s.size, steps: (s.updates ?? s.epochs)! }));
  return config.phases?.map(({ filter, ...rest }) => ({
    ...rest,
    ...(filter ? { filter: containsClass(filter.containsClass, filter.minVoxels ?? 1), ...(filter.tries ? { filterTries: filter.tries } : {}) } : {}),
  }) as Phase);
}
