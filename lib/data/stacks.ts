// Several training volumes ("stacks", the EM papers' word) named in a config: each
// a volume (or one per modality), its labels and an optional mask, read from files,
// checked against each other, normalised and turned into samplers. The CLI's data,
// validation and evaluation lists and recursive training's added stacks use it.
import * as path from 'node:path';
import { describe, SegvolError } from '../core/errors';
import { normalizations, type Normalization } from '../core/normalization';
import { checkObject, listOf, rejectUnknown } from '../core/validate';
import { readVolume, stackModalities, type Volume } from '../io/volume_io';
import { preprocessVolume } from './preprocess';
import { MultiSampler, VolumeSampler, type VolumeSamplerOptions } from './samplers';

/** One stack of a config: paths relative to the config file. */
export interface StackConfig {
  /** One volume, or one per modality (stacked as channels). */
  volume: string | string[];
  /** (D, H, W) class ids, the volume's shape. */
  labels: string;
  /** (D, H, W), 0 = ignore. */
  mask?: string;
  /** This stack's pre-processing, when it differs from the list's. */
  normalize?: Normalization;
}

export const stackKeys = ['volume', 'labels', 'mask', 'normalize'] as const;

/** Checks a config's list of stacks (and the weights they are drawn with) before any file is read. */
export function checkStacks(value: unknown, where: string, weights?: unknown): StackConfig[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected a non-empty list of stacks { volume, labels, mask?, normalize? }, received ${describe(value)}`);
  }
  value.forEach((entry, i) => {
    const at = `${where}[${i}]`;
    const stack = checkObject(entry, at, 'a stack { volume, labels, mask?, normalize? }');
    rejectUnknown(stack, stackKeys, at, 'key');
    const volumes = Array.isArray(stack.volume) ? stack.volume : [stack.volume];
    if (volumes.length === 0 || volumes.some((v) => typeof v !== 'string')) {
      throw new SegvolError('ERR_ARGUMENT', `${at}.volume: expected a path, or one per modality, received ${describe(stack.volume)}`);
    }
    if (typeof stack.labels !== 'string') throw new SegvolError('ERR_ARGUMENT', `${at}.labels: expected a path, received ${describe(stack.labels)}`);
    if (stack.mask !== undefined && typeof stack.mask !== 'string') throw new SegvolError('ERR_ARGUMENT', `${at}.mask: expected a path, received ${describe(stack.mask)}`);
    if (stack.normalize !== undefined && !normalizations.includes(stack.normalize as Normalization)) {
      throw new SegvolError('ERR_ARGUMENT', `${at}.normalize: expected ${listOf(normalizations)}, received ${describe(stack.normalize)}`);
    }
  });
  const shown = where.replace(/\.stacks$/, '.weights');
  if (weights !== undefined) {
    if (!Array.isArray(weights) || weights.length !== value.length) {
      throw new SegvolError('ERR_ARGUMENT', `${shown}: expected ${value.length} weights, one per stack, received ${describe(weights)}; ` +
        'leave weights out to draw each stack in proportion to its voxels');
    }
    const bad = weights.findIndex((w) => !(typeof w === 'number' && Number.isFinite(w) && w > 0));
    if (bad >= 0) throw new SegvolError('ERR_ARGUMENT', `${shown}[${bad}]: expected a weight > 0, received ${describe(weights[bad])}`);
  }
  return value as StackConfig[];
}

/** Reads one volume per modality (paths relative to baseDir), checks it, normalises it, and stacks the modalities as channels. */
export function readModalities(paths: readonly string[], normalize: Normalization, baseDir: string, key: string): Volume {
  const modalities = paths.map((p) => {
    const v = readVolume(path.resolve(baseDir, p));
    let nan = 0;
    for (const value of v.data) if (!Number.isFinite(value)) ++nan;
    if (nan) {
      throw new SegvolError('ERR_NON_FINITE', `${key} ${p}: ${nan} voxels are NaN or infinite; training needs finite values ` +
        '(fill them, or mask them out with a mask and set them to 0)');
    }
    if (v.shape.length !== 3) {
      throw new SegvolError('ERR_SHAPE', `${key} ${p}: expected one (D, H, W) volume per modality, received (${v.shape.join(', ')})`);
    }
    return { ...v, data: preprocessVolume(v.data, v.shape, normalize) };
  });
  return stackModalities(modalities, [...paths]);
}

/** A loaded stack: the normalised volume (C, D, H, W), its labels and mask, and a sampler over them. */
export interface LoadedStack {
  volume: Volume;
  labels: Float32Array;
  mask?: Float32Array;
  sampler: VolumeSampler;
  /** Where it came from in the config ("data.stacks[1]"), for messages. */
  where: string;
}

/** Reads a stack's files, checks that labels and mask have the volume's shape, and builds its sampler. */
export function loadStack(stack: StackConfig, baseDir: string, where: string, normalize: Normalization,
  augmentation: Omit<VolumeSamplerOptions, 'volume' | 'shape' | 'inputs' | 'dims' | 'labels' | 'mask'> = {}): LoadedStack {
  const volume = readModalities(Array.isArray(stack.volume) ? stack.volume : [stack.volume], stack.normalize ?? normalize, baseDir, `${where}.volume`);
  const dims = volume.shape.slice(1);
  const read = (file: string, key: string) => {
    const v = readVolume(path.resolve(baseDir, file));
    if (v.shape.join() !== dims.join()) {
      throw new SegvolError('ERR_SHAPE', `${where}.${key} ${file}: expected shape (${dims.join(', ')}) like the volume, received (${v.shape.join(', ')})`);
    }
    return v.data;
  };
  const labels = read(stack.labels, 'labels');
  const mask = stack.mask ? read(stack.mask, 'mask') : undefined;
  const sampler = new VolumeSampler({
    volume: volume.data, shape: volume.shape as [number, number, number, number], labels, ...(mask ? { mask } : {}), ...augmentation,
  });
  return { volume, labels, ...(mask ? { mask } : {}), sampler, where };
}

/** Several loaded stacks as one data source: one sampler, or stacks drawn by weight (default: by voxels). */
export function stacksSampler(stacks: readonly LoadedStack[], weights?: readonly number[]): VolumeSampler | MultiSampler {
  const channels = stacks[0]!.volume.shape[0];
  const other = stacks.find((s) => s.volume.shape[0] !== channels);
  if (other) {
    throw new SegvolError('ERR_SHAPE', `${other.where}: ${other.volume.shape[0]} channels (modalities), ${stacks[0]!.where} ${channels}; ` +
      'every stack needs the same modalities in the same order');
  }
  return stacks.length === 1 && !weights ? stacks[0]!.sampler : new MultiSampler(stacks.map((s) => s.sampler), weights);
}
