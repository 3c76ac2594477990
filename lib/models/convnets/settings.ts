// The 2D-3D ConvNet paper's training settings (Lee et al. 2015, as ZNN ran them).
import { describe, SegvolError } from '../../core/errors';
import type { ZnnPreset } from './networks';

/** The 2D-3D ConvNet paper's training settings for one of its networks. */
export interface ZnnTrainingSettings {
  /** SGD, lr 0.01, momentum 0.9. */
  optimizer: { kind: 'sgd'; lr: number; momentum: number };
  /** Softmax cross-entropy with class rebalancing weights, the gradient divided by the output voxel count. */
  loss: { kind: 'crossEntropy'; classWeights: 'inverseFrequency'; normalize: 'voxels' };
  /** Output patches: 200x200x1 (N4), 150x150x1 (VD2D), 100x100x1 (VD2D3D). */
  outputSize: [number, number, number];
  /** Random 2D rotations and flips. */
  augmentation: { rotate: true; flip: { z: boolean; y: true; x: true } };
  /** Inputs z-scored per slice. */
  normalize: 'slice';
}

/** The paper's settings: `new Trainer(model, { optimizer, loss })`, `fit({ outputSize })`, the sampler's augmentation. */
export function znnTrainingSettings(preset: ZnnPreset): ZnnTrainingSettings {
  const outputs: Record<ZnnPreset, [number, number, number]> = { n4: [1, 200, 200], vd2d: [1, 150, 150], vd2d3d: [1, 100, 100] };
  if (!(preset in outputs)) throw new SegvolError('ERR_ARGUMENT', `znnTrainingSettings: expected 'n4', 'vd2d' or 'vd2d3d', received ${describe(preset)}`);
  return {
    optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
    loss: { kind: 'crossEntropy', classWeights: 'inverseFrequency', normalize: 'voxels' },
    outputSize: outputs[preset],
    augmentation: { rotate: true, flip: { z: preset === 'vd2d3d', y: true, x: true } },
    normalize: 'slice',
  };
}
