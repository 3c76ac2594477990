// What a loss compares a network's output with: the window's class ids (the default),
// or values computed from the window's labels, such as the affinities of instance ids.
// They are computed on the whole input window and then cut to the output window, so a
// 'valid' network's first output voxel still has its predecessor.
import { affinities, affinityMask } from '../data/affinities';
import type { Size3 } from '../data/samplers';

/** 'classes': class ids, compared by LossKind losses; 'affinities': (3, d, h, w) affinities of instance ids (0 = boundary). */
export type TargetKind = 'classes' | 'affinities';
export const targetKinds: readonly TargetKind[] = ['classes', 'affinities'];

/** Channels of each kind of computed targets. */
export const targetChannels: Readonly<Record<Exclude<TargetKind, 'classes'>, number>> = { affinities: 3 };

/**
 * The targets of one label window (d, h, w), (C, d, h, w), and which of their entries are
 * defined (an affinity needs its predecessor inside the window, and both voxels unmasked).
 */
export function windowTargets(kind: Exclude<TargetKind, 'classes'>, labels: Float32Array, size: Size3, mask?: Float32Array): { values: Float32Array; mask: Float32Array } {
  switch (kind) {
    case 'affinities':
      return { values: affinities(labels, size), mask: affinityMask(size, mask) };
  }
}
