// The JSON configuration of `segvol train`: checked strictly (a typo names its key
// instead of being ignored) against the generic schema merged with the keys of the
// model's family, which also supplies its paper settings and any data form of its own.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { checkSchema, listOf, oneOf, rejectUnknown, size3 } from '../core/validate';
import type { Normalization } from '../data/preprocess';
import { rotations, type Rotation, type Size3, type VolumeSamplerOptions } from '../data/samplers';
import { checkStacks, loadStack, stackKeys, stacksSampler, type LoadedStack, type StackConfig } from '../data/stacks';
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
    /** Or several stacks, each window drawn from one of them (by weights, default in proportion to their voxels). */
    stacks?: StackConfig[];
    weights?: number[];
    flip?: { z?: boolean; y?: boolean; x?: boolean };
    /** rotate: true is rotation 'any'. */
    rotate?: boolean;
    rotation?: Rotation;
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
    stacks?: StackConfig[];
    weights?: number[];
    windows?: number;
    size?: Size3;
    every?: number;
    metric?: 'loss' | 'dice' | 'meanIU' | 'accuracy';
    patience?: number;
  } & Record<string, unknown>;
  /**
   * Held-out stacks predicted after training (normalised like data), each scored by its
   * pixel error (argmax against the labels); with out, the predictions and the model's other
   * inputs (a recursive model's boundary map) are written there as .npy.
   */
  evaluation?: { stacks: StackConfig[]; window?: Size3; out?: string };
  clipGradients?: { maxNorm?: number; maxValue?: number };
  /** The paper's settings for the model (see the family's docs); keys given here override them. */
  settings?: 'paper';
  /** The most memory a step may take ("12G"): the cheapest schedule that fits is chosen, or the config is refused. */
  memoryBudget?: number | string;
  /** Convolution math while training: 'fp32' (default), 'bf16' (mixed precision, cpu or cuda), 'fp16' (cuda, loss-scaled), 'tf32' (cuda); see Trainer's precision. */
  precision?: 'fp32' | 'bf16' | 'tf32' | 'fp16';
  /**
   * Data-parallel training over MPI ranks (see docs/cluster.md): 'mpi', or { kind: 'mpi', timeoutSeconds,
   * startupTimeoutSeconds }; 'none' trains in one process. Unset: 'mpi' when an MPI launcher started more than one rank.
   */
  distributed?: 'mpi' | 'none' | { kind: 'mpi'; timeoutSeconds?: number; startupTimeoutSeconds?: number };
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
  '': ['model', 'data', 'validation', 'evaluation', 'phases', 'stages', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer',
    'schedule', 'clipGradients', 'memoryBudget', 'precision', 'seed', 'checkpoint', 'settings', 'distributed'],
  data: ['volume', 'labels', 'mask', 'stacks', 'weights', 'flip', 'rotate', 'rotation', 'classAware', 'normalize', 'classNames'],
  'data.stacks[]': stackKeys,
  validation: ['volume', 'labels', 'mask', 'stacks', 'weights', 'windows', 'size', 'every', 'metric', 'patience'],
  'validation.stacks[]': stackKeys,
  evaluation: ['stacks', 'window', 'out'],
  'evaluation.stacks[]': stackKeys,
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
    if (d && d.stacks !== undefined) {
      const single = (['volume', 'labels', 'mask'] as const).filter((k) => d[k] !== undefined);
      if (single.length) {
        throw new SegvolError('ERR_ARGUMENT', `config ${source}: give ${key}.stacks or ${key}.volume and ${key}.labels (one stack), not both ` +
          `(received ${single.map((k) => `${key}.${k}`).join(', ')} beside ${key}.stacks)`);
      }
      checkStacks(d.stacks, `config ${source}: ${key}.stacks`, d.weights);
      continue;
    }
    if (d && d.weights !== undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${key}.weights weigh the stacks of ${key}.stacks; with one volume there is nothing to weigh`);
    }
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
  if (c.data.rotation !== undefined) {
    oneOf(c.data.rotation, rotations, `config ${source}: data.rotation`);
    if (c.data.rotate !== undefined) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: give data.rotation ('any' is the old rotate: true), not also data.rotate`);
    }
  }
  if (c.evaluation !== undefined) {
    const e = c.evaluation;
    if (e === null || typeof e !== 'object') throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected evaluation { stacks, window?, out? }, received ${describe(e)}`);
    checkStacks(e.stacks, `config ${source}: evaluation.stacks`);
    if (family.training!.fit) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: evaluation is not run for ${c.model.preset}, which trains with its own loop; ` +
        'predict and score the held-out volumes with segvol predict and segvol evaluate');
    }
    if (e.window !== undefined) size3(e.window, `config ${source}: evaluation.window`);
    if (e.out !== undefined && typeof e.out !== 'string') throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected evaluation.out as a folder path, received ${describe(e.out)}`);
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

/** The stacks of data, validation or evaluation: its list, or its one volume as a list of one. */
export function stacksOf(d: { volume?: string | string[]; labels?: string; mask?: string; stacks?: StackConfig[] }): StackConfig[] {
  return d.stacks ?? [{ volume: d.volume!, labels: d.labels!, ...(d.mask ? { mask: d.mask } : {}) }];
}

/** "data.stacks[1]" in messages; the single-stack form is just "data". */
const stackKey = (where: string, i: number) => (where.endsWith('stacks') ? `${where}[${i}]` : where);

/** How the config's training windows are augmented: its keys, then the paper's settings. */
function augmentationOf(config: TrainConfig, settings?: PaperSettings): Partial<VolumeSamplerOptions> {
  const flip = config.data.flip ?? settings?.flip;
  const rotation: Rotation | undefined = config.data.rotation ?? (config.data.rotate !== undefined ? (config.data.rotate ? 'any' : 'none') : undefined)
    ?? settings?.rotation ?? (settings?.rotate ? 'any' : undefined);
  return {
    ...(flip ? { flip } : {}), ...(rotation && rotation !== 'none' ? { rotation } : {}),
    ...(config.data.classAware ? { classAware: config.data.classAware } : {}),
  };
}

/** The normalisation of the config's volumes (a stack's own normalize wins for that stack). */
export function normalizationOf(config: TrainConfig, settings?: PaperSettings): Normalization {
  return config.data.normalize ?? settings?.normalize ?? 'slice';
}

/**
 * Reads more training stacks (recursive training's added ones) as the config's data is read:
 * the same normalisation and augmentation.
 */
export function loadTrainingStacks(config: TrainConfig, baseDir: string, stacks: readonly StackConfig[], where: string, settings?: PaperSettings): LoadedStack[] {
  const normalize = normalizationOf(config, settings);
  const augmentation = augmentationOf(config, settings);
  return stacks.map((s, i) => loadStack(s, baseDir, stackKey(where, i), normalize, augmentation));
}

/** Reads held-out stacks (validation, evaluation): normalised like the data, not augmented. */
export function loadHeldOutStacks(config: TrainConfig, baseDir: string, stacks: readonly StackConfig[], where: string, settings?: PaperSettings): LoadedStack[] {
  const normalize = normalizationOf(config, settings);
  return stacks.map((s, i) => loadStack(s, baseDir, stackKey(where, i), normalize, { flip: {} }));
}

/**
 * Loads the config's stacks (paths relative to the config file), normalised, modalities
 * stacked as channels, and what the model file should record about them; or, for a
 * data form a family owns, the family's loader.
 */
export function loadTrainingData(config: TrainConfig, baseDir: string, cli?: CliContext, settings?: PaperSettings): LoadedTrainingData {
  const family = familyOfConfig(config);
  const own = cli ? family.training?.loadData?.(config, baseDir, cli) : undefined;
  if (own) return own;
  const stacks = loadTrainingStacks(config, baseDir, stacksOf(config.data), config.data.stacks ? 'data.stacks' : 'data', settings);
  const data = stacksSampler(stacks, config.data.weights);
  const v = config.validation;
  const validation = v ? stacksSampler(loadHeldOutStacks(config, baseDir, stacksOf(v), v.stacks ? 'validation.stacks' : 'validation', settings), v.weights) : undefined;
  const first = stacksOf(config.data)[0]!;
  const paths = Array.isArray(first.volume) ? first.volume : [first.volume];
  const spacing = stacks[0]!.volume.spacing;
  const info: ModelInfo = {
    normalize: normalizationOf(config, settings),
    channels: { input: paths.map((p) => path.basename(p).replace(/\.(nii\.gz|nii|tiff?|npy|png)$/i, '')) },
    ...(spacing ? { spacing } : {}),
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
