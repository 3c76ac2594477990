// `segvol train` for the 2D-3D ConvNets: the paper's settings (settings: 'paper'),
// and recursive training from one config: a first network (trained here, or a
// model file) gives boundary maps of the training stacks, and the second network
// trains on the image and that map, starting from the first one's shared layers.
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { VolumeSampler, type DataSource } from '../../data/samplers';
import type { ModelBase } from '../../nn/model';
import type { FamilyTraining, PaperSettings, TrainConfigObject } from '../family';
import type { ZnnPreset } from './networks';
import { recursiveBoundaryMap, transferWeights, vd2dSharedLayers } from './recursive';
import { znnTrainingSettings } from './settings';

/**
 * Recursive training (the 2D-3D ConvNet paper): the first network's boundary map of the
 * training stacks becomes the second input ('boundary') of this config's model.
 */
export interface RecursiveConfig {
  /** A model file of the first network (trained earlier)... */
  model?: string;
  /** ...or its training, in this run: model, settings and the training keys of a config (its data is this config's). */
  first?: Omit<TrainConfigObject, 'data' | 'validation'>;
  /** The output window of the first network's stitched inference (default: the whole volume). */
  window?: [number, number, number];
  overlap?: number;
  /** The class whose probability is the boundary (default 1). */
  boundaryClass?: number;
  /** Layers to start from the first network's weights (default for VD2D3D: conv1a .. conv3b). */
  transfer?: string[];
}

const znnPresets: readonly string[] = ['n4', 'vd2d', 'vd2d3d'];
const firstKeys = ['model', 'phases', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule',
  'clipGradients', 'memoryBudget', 'seed', 'checkpoint', 'settings'];

function paperSettings(config: Pick<TrainConfigObject, 'settings' | 'model'>): PaperSettings | undefined {
  if (config.settings !== 'paper' || !znnPresets.includes(config.model.preset)) return undefined;
  const s = znnTrainingSettings(config.model.preset as ZnnPreset);
  // The paper's networks as ZNN's files for its experiments start them (a config's model.settings wins).
  return { model: { settings: 'znn-v1' }, trainer: { optimizer: s.optimizer, loss: s.loss }, outputSize: s.outputSize, normalize: s.normalize, flip: s.augmentation.flip, rotate: s.augmentation.rotate };
}

export const convnetsTraining: FamilyTraining = {
  modelKeys: ['classes', 'seed', 'settings', 'init', 'activation', 'recursive'],
  schema: {
    '': ['recursive'],
    recursive: ['model', 'first', 'window', 'overlap', 'boundaryClass', 'transfer'],
    'recursive.first': firstKeys,
    'recursive.first.checkpoint': ['path', 'every'],
  },
  check(config, source) {
    const r = config.recursive as RecursiveConfig | undefined;
    if (!r) return;
    if ((r.model === undefined) === (r.first === undefined)) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: recursive needs the first network: a model file (recursive.model) or its training (recursive.first), one of the two`);
    }
    if (config.model.preset !== 'vd2d3d' || !config.model.recursive) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: recursive training feeds a boundary map to a model with a second input: model { "preset": "vd2d3d", "recursive": true }`);
    }
    const first = r.first as { model?: { preset?: unknown } } | undefined;
    if (first && (!first.model || typeof first.model.preset !== 'string')) {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: expected recursive.first.model.preset, received ${describe(first.model?.preset)}`);
    }
  },
  paperPresets: znnPresets,
  paperSettings,
  async prepare({ config, baseDir, model, loaded, device, train, load }, cli) {
    const r = config.recursive as RecursiveConfig | undefined;
    if (!r) return undefined;
    let first: ModelBase;
    if (r.first) {
      // The first stage shares this config's data and validation.
      const firstConfig = { ...r.first, data: config.data, ...(config.validation ? { validation: config.validation } : {}) } as TrainConfigObject;
      cli.print(`recursive training: stage 1 of 2, ${firstConfig.model.preset}`);
      first = await train(firstConfig, '(stage 1) ');
      cli.print(`recursive training: stage 2 of 2, ${config.model.preset} on the image and stage 1's boundary map`);
    } else {
      first = load(path.resolve(baseDir, r.model!)).to(device);
    }
    const boundaryOf = async (source: DataSource, what: string) => {
      if (!(source instanceof VolumeSampler)) throw new SegvolError('ERR_ARGUMENT', 'recursive training needs volume data (data.volume and data.labels)');
      const image = source.volumeOf();
      const bar = cli.progress(`boundary map of the ${what}`);
      const map = await recursiveBoundaryMap(first, image.data, image.dims, {
        ...(r.window ? { window: r.window } : {}), ...(r.overlap !== undefined ? { overlap: r.overlap } : {}),
        ...(r.boundaryClass !== undefined ? { boundaryClass: r.boundaryClass } : {}),
        onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`),
      });
      bar.done();
      return source.withInput('boundary', map);
    };
    const data = await boundaryOf(loaded.data, 'training data');
    const validation = loaded.validation ? await boundaryOf(loaded.validation, 'validation data') : undefined;
    const report = transferWeights(first, model, { layers: r.transfer ?? (config.model.preset === 'vd2d3d' ? vd2dSharedLayers : undefined) });
    const layersOf = (names: string[]) => [...new Set(names.map((n) => n.split('.').slice(-2, -1)[0]))].join(', ');
    cli.print(`started from the first network's ${layersOf(report.transferred)} (${report.transferred.length} tensors); fresh: ${layersOf(report.fresh)}`);
    const info = { ...loaded.info, normalize: { image: typeof loaded.info.normalize === 'string' ? loaded.info.normalize : 'slice', boundary: 'none' } as const };
    return { data, ...(validation ? { validation } : {}), info };
  },
};
