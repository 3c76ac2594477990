// The 2D-3D ConvNet paper's training settings (Lee et al. 2015, as ZNN ran them).
import { describe, SegvolError } from '../../core/errors';
import type { ZnnPreset } from './networks';

/**
 * The paper's schedule in updates (one output patch, one update each): N4 90K; VD2D 60K,
 * then its boundary maps of the training stacks, then VD2D3D 90K on image and map while VD2D
 * trains on for 30K more (90K in all); VD2D3D is evaluated on the final VD2D's maps.
 */
export const lee2015Schedule = {
  n4: 90_000,
  /** VD2D on its own: the paper's total. */
  vd2d: 90_000,
  vd2d3d: 90_000,
  /** VD2D before its boundary maps are computed for the recursive stage. */
  vd2dBeforeRecursive: 60_000,
  /** VD2D's continued training while VD2D3D trains. */
  vd2dDuringRecursive: 30_000,
} as const;

/** The 2D-3D ConvNet paper's training settings for one of its networks. */
export interface ZnnTrainingSettings {
  /** SGD, lr 0.01, momentum 0.9. */
  optimizer: { kind: 'sgd'; lr: number; momentum: number };
  /**
   * Softmax cross-entropy with class rebalancing weights computed from each step's output
   * patch (ZNN rebalances per patch; one patch per update), the gradient divided by the
   * output voxel count.
   */
  loss: { kind: 'crossEntropy'; classWeights: 'inverseFrequency'; weightsFrom: 'patch'; normalize: 'voxels' };
  /** Output patches: 200x200x1 (N4), 150x150x1 (VD2D), 100x100x1 (VD2D3D). */
  outputSize: [number, number, number];
  /** ZNN's augmentation: flips of z, y and x and the xy transpose (the square's 8 symmetries; no interpolation). */
  augmentation: { rotation: 'rightAngles'; flip: { z: true; y: true; x: true } };
  /** Inputs z-scored per slice. */
  normalize: 'slice';
  /** Updates on its own (lee2015Schedule; recursive training splits VD2D's). */
  steps: number;
}

/** The paper's settings: `new Trainer(model, { optimizer, loss })`, `fit({ outputSize, steps })`, the sampler's augmentation. */
export function znnTrainingSettings(preset: ZnnPreset): ZnnTrainingSettings {
  const outputs: Record<ZnnPreset, [number, number, number]> = { n4: [1, 200, 200], vd2d: [1, 150, 150], vd2d3d: [1, 100, 100] };
  if (!(preset in outputs)) throw new SegvolError('ERR_ARGUMENT', `znnTrainingSettings: expected 'n4', 'vd2d' or 'vd2d3d', received ${describe(preset)}`);
  return {
    optimizer: { kind: 'sgd', lr: 0.01, momentum: 0.9 },
    loss: { kind: 'crossEntropy', classWeights: 'inverseFrequency', weightsFrom: 'patch', normalize: 'voxels' },
    outputSize: outputs[preset],
    augmentation: { rotation: 'rightAngles', flip: { z: true, y: true, x: true } },
    normalize: 'slice',
    steps: lee2015Schedule[preset],
  };
}
