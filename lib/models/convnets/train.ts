// `segvol train` for the 2D-3D ConvNets: the paper's settings (settings: 'paper'),
// and recursive training from one config: a first network (trained here, or a
// model file) gives boundary maps of the training stacks (and of stacks added for
// this stage), the second network trains on the image and that map, starting from
// the first one's shared layers, while the first may train on between its steps;
// held-out stacks are then evaluated on the first network's final maps.
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { checkObject, oneOf, positiveInteger } from '../../core/validate';
import { MultiSampler, VolumeSampler, type DataSource } from '../../data/samplers';
import { checkStacks, type StackConfig } from '../../data/stacks';
import type { ModelBase } from '../../nn/model';
import { withoutExtension } from '../../training/log';
import type { ContinuedTraining, FamilyTraining, PaperSettings, TrainConfigObject, TrainingPreparation } from '../family';
import type { ZnnPreset } from './networks';
import { recursiveBoundaryMap, transferWeights, vd2dSharedLayers } from './recursive';
import { lee2015Schedule, znnTrainingSettings } from './settings';

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
  /** Stacks added for this stage (the paper's stack4): the second network trains on data's stacks and these. */
  stacks?: StackConfig[];
  /** The weights of this stage's stacks (data's, then recursive.stacks'); default in proportion to their voxels. */
  weights?: number[];
  /**
   * The first network trains on for `steps` updates while the second trains, spread evenly
   * between the second's steps; data 'first' (default) is its own training data, 'all' adds
   * recursive.stacks. With settings 'paper' and no count in recursive.first, the paper's
   * 60K + 30K (lee2015Schedule). `steps: 0` turns it off.
   */
  continueFirst?: { steps: number; data?: 'first' | 'all' };
}

const znnPresets: readonly string[] = ['n4', 'vd2d', 'vd2d3d'];
const firstKeys = ['model', 'phases', 'epochs', 'steps', 'size', 'outputSize', 'stepsPerEpoch', 'batchSize', 'loss', 'optimizer', 'schedule',
  'clipGradients', 'memoryBudget', 'seed', 'checkpoint', 'settings'];

function paperSettings(config: Pick<TrainConfigObject, 'settings' | 'model'>): PaperSettings | undefined {
  if (config.settings !== 'paper' || !znnPresets.includes(config.model.preset)) return undefined;
  const s = znnTrainingSettings(config.model.preset as ZnnPreset);
  // The paper's networks as ZNN's files for its experiments start them (a config's model.settings wins).
  return {
    model: { settings: 'znn-v1' }, trainer: { optimizer: s.optimizer, loss: s.loss }, outputSize: s.outputSize, normalize: s.normalize, flip: s.augmentation.flip,
    rotation: s.augmentation.rotation, steps: s.steps,
  };
}

/** Whether a (first stage's) config leaves its update count out. */
const countless = (c: Record<string, unknown>) => ['steps', 'epochs', 'phases'].every((k) => c[k] === undefined);

/** The first network's continued training: the config's, or the paper's 30K when its schedule fills the first stage's count. */
function continuationOf(config: TrainConfigObject, r: RecursiveConfig): { steps: number; data: 'first' | 'all' } | undefined {
  if (r.continueFirst) return r.continueFirst.steps > 0 ? { steps: r.continueFirst.steps, data: r.continueFirst.data ?? 'first' } : undefined;
  return config.settings === 'paper' && r.first && countless(r.first) ? { steps: lee2015Schedule.vd2dDuringRecursive, data: 'first' } : undefined;
}

/** Checks recursive's keys that the schema cannot (lists, counts, which go together). */
function checkRecursive(r: RecursiveConfig, config: TrainConfigObject, source: string): void {
  const where = `config ${source}: recursive`;
  if (r.stacks !== undefined) checkStacks(r.stacks, `${where}.stacks`);
  if (r.weights !== undefined) {
    const data = config.data as { stacks?: unknown[]; weights?: unknown };
    const count = (data.stacks?.length ?? 1) + (r.stacks?.length ?? 0);
    if (!Array.isArray(r.weights) || r.weights.length !== count || r.weights.some((w) => !(typeof w === 'number' && w > 0 && Number.isFinite(w)))) {
      throw new SegvolError('ERR_ARGUMENT', `${where}.weights: expected ${count} weights > 0 (data's ${data.stacks?.length ?? 1} stacks, then ` +
        `recursive.stacks' ${r.stacks?.length ?? 0}), received ${describe(r.weights)}`);
    }
  }
  if (r.continueFirst !== undefined) {
    const c = checkObject(r.continueFirst, `${where}.continueFirst`, '{ steps, data? }');
    positiveInteger(c.steps, `${where}.continueFirst.steps`, true);
    if (c.data !== undefined) oneOf(c.data, ['first', 'all'], `${where}.continueFirst.data`);
    if (r.continueFirst.steps > 0 && !r.first) {
      throw new SegvolError('ERR_ARGUMENT', `${where}.continueFirst trains the first network on with its own trainer: give its training (recursive.first), ` +
        'not a model file (recursive.model)');
    }
  }
}

export const convnetsTraining: FamilyTraining = {
  modelKeys: ['classes', 'seed', 'settings', 'init', 'activation', 'recursive'],
  schema: {
    '': ['recursive'],
    recursive: ['model', 'first', 'window', 'overlap', 'boundaryClass', 'transfer', 'stacks', 'weights', 'continueFirst'],
    'recursive.stacks[]': ['volume', 'labels', 'mask', 'normalize'],
    'recursive.continueFirst': ['steps', 'data'],
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
    checkRecursive(r, config, source);
  },
  paperPresets: znnPresets,
  paperSettings,
  async prepare({ config, baseDir, model, loaded, device, train, load, loadStacks, continueTraining }, cli) {
    const r = config.recursive as RecursiveConfig | undefined;
    if (!r) return undefined;
    // Every file is read before the first stage trains, so a bad path fails in seconds, not after it.
    const added = r.stacks ? loadStacks(r.stacks, 'recursive.stacks') : [];
    const volumeSources = (source: DataSource): readonly VolumeSampler[] => {
      const parts = source instanceof MultiSampler ? source.sources : [source];
      if (!parts.every((p): p is VolumeSampler => p instanceof VolumeSampler)) {
        throw new SegvolError('ERR_ARGUMENT', 'recursive training needs volume data (data.volume and data.labels, or data.stacks)');
      }
      return parts;
    };
    const trainingStacks = volumeSources(loaded.data);
    let first: ModelBase;
    if (r.first) {
      // The first stage shares this config's data and validation; the paper's schedule gives its count when it has none.
      const firstConfig = {
        ...(config.settings === 'paper' && countless(r.first) ? { steps: lee2015Schedule.vd2dBeforeRecursive } : {}),
        ...r.first, data: config.data, ...(config.validation ? { validation: config.validation } : {}),
      } as TrainConfigObject;
      cli.print(`recursive training: stage 1 of 2, ${firstConfig.model.preset}`);
      first = await train(firstConfig, '(stage 1) ');
      cli.print(`recursive training: stage 2 of 2, ${config.model.preset} on the image and stage 1's boundary map`);
    } else {
      first = load(path.resolve(baseDir, r.model!)).to(device);
    }
    const mapOptions = {
      ...(r.window ? { window: r.window } : {}), ...(r.overlap !== undefined ? { overlap: r.overlap } : {}),
      ...(r.boundaryClass !== undefined ? { boundaryClass: r.boundaryClass } : {}),
    };
    const boundaryMap = async (image: Float32Array, dims: readonly [number, number, number], what: string) => {
      const bar = cli.progress(`boundary map of the ${what}`);
      const map = await recursiveBoundaryMap(first, image, dims, { ...mapOptions, onProgress: (done, total) => bar.update(done / total, `window ${done}/${total}`) });
      bar.done();
      return map;
    };
    const withMaps = async (stacks: readonly VolumeSampler[], what: string) => {
      const out: VolumeSampler[] = [];
      for (const [i, s] of stacks.entries()) {
        const image = s.volumeOf();
        out.push(s.withInput('boundary', await boundaryMap(image.data, image.dims, stacks.length > 1 ? `${what} (stack ${i + 1} of ${stacks.length})` : what)));
      }
      return out;
    };
    const continuation = continuationOf(config, r);
    let continued: ContinuedTraining | undefined;
    if (continuation) {
      continued = continueTraining(first, continuation.data === 'all' && added.length ? new MultiSampler([...trainingStacks, ...added]) : loaded.data);
      // The network that made the training maps, kept: its continued training replaces its checkpoint.
      if (continued.checkpoint) first.save(`${withoutExtension(continued.checkpoint)}.stage1.safetensors`);
    }
    const stageStacks = await withMaps([...trainingStacks, ...added], 'training data');
    const data = stageStacks.length === 1 && !r.weights ? stageStacks[0]! : new MultiSampler(stageStacks, r.weights);
    const validation = loaded.validation ? await withMaps(volumeSources(loaded.validation), 'validation data') : undefined;
    const report = transferWeights(first, model, { layers: r.transfer ?? (config.model.preset === 'vd2d3d' ? vd2dSharedLayers : undefined) });
    const layersOf = (names: string[]) => [...new Set(names.map((n) => n.split('.').slice(-2, -1)[0]))].join(', ');
    cli.print(`started from the first network's ${layersOf(report.transferred)} (${report.transferred.length} tensors); fresh: ${layersOf(report.fresh)}`);
    const info = { ...loaded.info, normalize: { image: typeof loaded.info.normalize === 'string' ? loaded.info.normalize : 'slice', boundary: 'none' } as const };
    const prepared: TrainingPreparation = {
      data, ...(validation ? { validation: validation.length === 1 ? validation[0]! : new MultiSampler(validation) } : {}), info,
      // Held-out stacks are evaluated on the first network as it is at the end: after its continued training.
      inputsFor: async (image, dims, what) => ({ boundary: await boundaryMap(image, dims, what) }),
    };
    if (!continued || !continuation) return prepared;
    const c = continued, total = continuation.steps, start = c.steps;
    cli.print(`the first network trains on for ${total} updates while ${config.model.preset} trains (spread evenly between its steps)`);
    let done = 0;
    // After the second network's step s of T, the first has had floor(s * total / T) more (a resumed run replays them: same draws).
    const upTo = async (target: number) => {
      if (target > done) await c.run(target - done);
      done = Math.max(done, target);
    };
    return {
      ...prepared,
      afterStep: (step, totalSteps) => upTo(Math.floor((step * total) / Math.max(1, totalSteps))),
      finish: async (aborted) => {
        if (!aborted) await upTo(total);
        c.save();
        cli.print(`the first network: ${c.steps - start} more updates (${c.steps} in all)${c.checkpoint ? `; checkpoint ${c.checkpoint}` : ''}`);
      },
    };
  },
};
