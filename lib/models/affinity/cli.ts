// The affinity U-Net's pieces of the command line: its part of `segvol train` (a loss on
// the affinities of instance labels by default, the MALA paper's settings) and
// `segvol synth --affinities` (EM-like stacks with instance labels and a train.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, SegvolError } from '../../core/errors';
import { syntheticEm } from '../../data/synthetic';
import { writeNpy } from '../../io/npy';
import type { LossConfig } from '../../training/options';
import type { FamilyPredict, FamilySynth, FamilyTraining, PaperSettings, TrainConfigObject } from '../family';
import { affinityUNetKeys } from './network';
import { affinitySettings } from './settings';

const preset = 'affinityUNet';

/** The loss configs of a config's loss key (a kind, one config, or a list). */
function lossList(loss: unknown): unknown[] {
  return loss === undefined ? [] : Array.isArray(loss) ? loss : [loss];
}

export const affinityTraining: FamilyTraining = {
  modelKeys: affinityUNetKeys,
  check(config, source) {
    if (config.model.preset !== preset) return;
    for (const loss of lossList(config.loss)) {
      const targets = loss !== null && typeof loss === 'object' ? (loss as LossConfig).targets : undefined;
      if (targets !== 'affinities') {
        throw new SegvolError('ERR_ARGUMENT', `config ${source}: ${preset} predicts affinities; its loss compares with them: ` +
          `loss { "kind": "squaredError" or "binaryCrossEntropy", "targets": "affinities" }, received ${describe(loss)} (or leave loss out)`);
      }
    }
    const metric = (config.validation as { metric?: unknown } | undefined)?.metric;
    if (metric !== undefined && metric !== 'loss') {
      throw new SegvolError('ERR_ARGUMENT', `config ${source}: validation.metric ${typeof metric === 'string' ? `'${metric}'` : describe(metric)} scores class labels; ` +
        `${preset} is validated by its loss (metric 'loss')`);
    }
  },
  paperPresets: [preset],
  paperSettings(config: TrainConfigObject): PaperSettings | undefined {
    if (config.settings !== 'paper' || config.model.preset !== preset) return undefined;
    const s = affinitySettings();
    return {
      model: { ...s.network }, trainer: { optimizer: s.optimizer, loss: s.loss }, size: s.size,
      flip: s.augmentation.flip, rotate: s.augmentation.rotate, normalize: 'slice',
    };
  },
  defaults(config) {
    if (config.model.preset !== preset) return undefined;
    // The Euclidean loss on the affinities, and MALA's Adam.
    const s = affinitySettings();
    return { loss: { kind: 'squaredError', targets: 'affinities' }, optimizer: s.optimizer };
  },
};

/** A stack's instance labels as the smallest integer type that holds them. */
function writeSegments(file: string, shape: [number, number, number], segments: Int32Array): void {
  let max = 0;
  for (const v of segments) max = Math.max(max, v);
  writeNpy(file, { shape, data: Float32Array.from(segments) }, max < 65536 ? 'uint16' : 'float32');
}

export const affinitySynth: FamilySynth = {
  flag: {
    flags: '--affinities',
    description: 'EM-like stacks with instance labels (a training and a validation stack, 0 = membrane) and a train.json for the affinity U-Net',
  },
  defaultSize: [24, 96, 96],
  run(o, cli) {
    const [depth, height, width] = o.size;
    fs.mkdirSync(o.out, { recursive: true });
    const write = (prefix: string, seed: number) => {
      const em = syntheticEm({ depth, height, width, seed });
      writeNpy(path.join(o.out, `${prefix}volume.npy`), { shape: em.shape, data: em.image });
      writeSegments(path.join(o.out, `${prefix}segments.npy`), em.shape, em.segments);
    };
    write('', o.seed);
    write('validation_', o.seed + 1000);
    // A window the default U-Net takes: (20, 52, 52) in, (8, 36, 36) out; smaller stacks get (16, 48, 48) in, (4, 32, 32) out.
    const size = [depth >= 20 ? 20 : 16, height >= 52 ? 52 : 48, width >= 52 ? 52 : 48];
    const config = {
      model: { preset, fmaps: 6, seed: o.seed },
      data: { volume: 'volume.npy', labels: 'segments.npy', flip: { z: true, y: true, x: true } },
      validation: { volume: 'validation_volume.npy', labels: 'validation_segments.npy', windows: 4, every: 50 },
      loss: { kind: 'squaredError', targets: 'affinities' },
      optimizer: { kind: 'adam', lr: 0.001, beta1: 0.95, beta2: 0.999 },
      size, steps: 200, seed: o.seed,
      checkpoint: { path: 'model.safetensors', every: 50 },
    };
    fs.writeFileSync(path.join(o.out, 'train.json'), `${JSON.stringify(config, null, 2)}\n`);
    cli.print(`wrote ${path.join(o.out, 'volume.npy')} and segments.npy (instance ids, 0 = membrane), validation_volume.npy and ` +
      `validation_segments.npy (${depth}x${height}x${width}), and train.json`);
  },
};

export const affinityPredict: FamilyPredict = {
  /** The U-Net's channels are affinities, not class probabilities: refused before any window when labels (an argmax) are asked for. */
  async run(_model, options) {
    if (!options.probabilities && options.class === undefined) {
      throw new SegvolError('ERR_ARGUMENT', `${preset} predicts affinities (z, y, x), not classes: add --probabilities to write them as (3, D, H, W), ` +
        'or --class a for the affinities along one axis (0: z, 1: y, 2: x)');
    }
    return false;
  },
};
