// The MALA paper's training of its U-Net for the CREMI data (Funke et al. 2018), as far
// as the paper and the authors' released training scripts state it; docs/affinity.md
// gives each setting's source and what segvol does differently.
import type { LossConfig } from '../../training/options';
import type { OptimizerConfig } from '../../training/optimizers';
import type { AffinityUNetOptions } from './network';

export interface AffinityTrainingSettings {
  /** 12 feature maps, times 5 per level; max-pooling (1, 3, 3), (1, 3, 3), (3, 3, 3); two valid 3x3x3 convolutions per level and side; ReLU. */
  network: AffinityUNetOptions;
  /** Adam, learning rate 0.5e-4, beta1 0.95, beta2 0.999, epsilon 1e-8. */
  optimizer: OptimizerConfig;
  /**
   * The Euclidean loss on the sigmoid outputs against the affinities, each affinity weighted
   * by the inverse frequency of its value (0 or 1) in the batch. The paper's own loss is
   * constrained MALIS, which segvol does not have (docs/affinity.md).
   */
  loss: LossConfig;
  /** The input window (84, 268, 268); the network's output is (48, 56, 56). */
  size: [number, number, number];
  /** One window per step. */
  batchSize: number;
  /** Mirrors of every axis and rotations about z (segvol's stand-ins for the elastic and simple augmentations). */
  augmentation: { flip: { z: true; y: true; x: true }; rotate: true };
}

/** The MALA paper's settings for its CREMI U-Net: the network's options, the optimizer, loss, window and augmentation. */
export function affinitySettings(): AffinityTrainingSettings {
  return {
    network: {
      fmaps: 12, fmapIncFactor: 5, downsample: [[1, 3, 3], [1, 3, 3], [3, 3, 3]], kernel: 3, convsPerLevel: 2, padding: 'valid',
      activation: 'relu', upsample: 'transposedConv',
    },
    optimizer: { kind: 'adam', lr: 0.5e-4, beta1: 0.95, beta2: 0.999, eps: 1e-8 },
    loss: { kind: 'squaredError', targets: 'affinities', classWeights: 'inverseFrequency', weightsFrom: 'patch' },
    size: [84, 268, 268],
    batchSize: 1,
    augmentation: { flip: { z: true, y: true, x: true }, rotate: true },
  };
}
