// The JSON configuration of `segvol train`: checked strictly, so a typo names
// its key instead of being ignored.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VolumeSampler } from './data';
import { describe, SegvolError } from './errors';
import type { LossConfig, Stage, TrainerOptions } from './trainer';
import type { Sequential } from './model';
import { readNpy } from './npy';
import { presets, type PyramidNetOptions } from './presets';

export interface ModelConfig extends PyramidNetOptions {
  preset: 'pyramidNet';
}

export interface TrainConfig {
  model: ModelConfig;
  data: { volume: string; labels: string; mask?: string; flip?: { z?: boolean; y?: boolean; x?: boolean } };
  stages?: Stage[];
  epochs?: number;
  size?: [number, number, number];
  stepsPerEpoch?: number;
  loss?: TrainerOptions['loss'];
  optimizer?: TrainerOptions['optimizer'];
  schedule?: TrainerOptions['schedule'];
  seed?: number;
  checkpoint?: { path: string; every?: number };
}

const schema: Record<string, readonly string[]> = {
  '': ['model', 'data', 'stages', 'epochs', 'size', 'stepsPerEpoch', 'loss', 'optimizer', 'schedule', 'seed', 'checkpoint'],
  model: ['preset', 'inChannels', 'classes', 'hidden', 'fc', 'kernel', 'seed'],
  data: ['volume', 'labels', 'mask', 'flip'],
  'data.flip': ['z', 'y', 'x'],
  checkpoint: ['path', 'every'],
  loss: ['kind', 'classWeights', 'weightsFrom'],
};

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
  if (!c.model || c.model.preset !== 'pyramidNet') {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected model.preset 'pyramidNet', received ${describe(c.model?.preset)}`);
  }
  if (!c.data || typeof c.data.volume !== 'string' || typeof c.data.labels !== 'string') {
    throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected data.volume and data.labels as .npy paths`);
  }
  return c;
}

export function buildModel(config: ModelConfig): Sequential {
  const { preset: _preset, ...options } = config;
  return presets.pyramidNet(options);
}

/** Loads the config's volumes (paths relative to the config file). (D, H, W) or (C, D, H, W). */
export function loadTrainingData(config: TrainConfig, baseDir: string): VolumeSampler {
  const resolve = (p: string) => path.resolve(baseDir, p);
  const volume = readNpy(resolve(config.data.volume));
  const labels = readNpy(resolve(config.data.labels));
  const shape = volume.shape.length === 3 ? [1, ...volume.shape] : volume.shape;
  if (shape.length !== 4) {
    throw new SegvolError('ERR_SHAPE', `data.volume ${config.data.volume}: expected (D, H, W) or (C, D, H, W), received (${volume.shape.join(', ')})`);
  }
  if (labels.shape.join() !== shape.slice(1).join()) {
    throw new SegvolError('ERR_SHAPE', `data.labels ${config.data.labels}: expected shape (${shape.slice(1).join(', ')}) like the volume, received (${labels.shape.join(', ')})`);
  }
  const mask = config.data.mask ? readNpy(resolve(config.data.mask)).data : undefined;
  return new VolumeSampler({
    volume: volume.data, shape: shape as [number, number, number, number], labels: labels.data,
    ...(mask ? { mask } : {}), ...(config.data.flip ? { flip: config.data.flip } : {}),
  });
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
