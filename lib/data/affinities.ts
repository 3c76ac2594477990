// Affinity targets from instance labels: for each voxel and axis, whether the voxel
// and its predecessor along that axis belong to the same object. The layout is the
// one segvol's watershed reads (metrics.affinityWatershed): (3, D, H, W), channel a
// in (z, y, x) the edge between voxel v and v - e_a.
import { describe, SegvolError } from '../core/errors';
import type { Size3 } from './samplers';

function checkVolume(values: ArrayLike<number> | undefined, dims: Size3, what: string, where: string): void {
  if (!Array.isArray(dims) || dims.length !== 3 || dims.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected dims as three positive integers (D, H, W), received ${describe(dims)}`);
  }
  if (values === undefined) return;
  const n = dims[0] * dims[1] * dims[2];
  if (values === null || typeof values !== 'object' || typeof values.length !== 'number') {
    throw new SegvolError('ERR_ARGUMENT', `${where}: expected ${what} as an array of (${dims.join(', ')}) values, received ${describe(values)}`);
  }
  if (values.length !== n) {
    throw new SegvolError('ERR_SHAPE', `${where}: ${what} has ${values.length} values; (D, H, W) = (${dims.join(', ')}) needs ${n}`);
  }
}

/**
 * The affinities of an instance label volume (D, H, W), as (3, D, H, W) floats: channel
 * a in (z, y, x) is 1 where voxel v and its predecessor v - e_a carry the same nonzero
 * label, else 0. Label 0 is background or boundary: every edge touching it is 0. The
 * first slice (z), row (y) or column (x) has no predecessor: its edge along that axis is
 * 0, and affinityMask marks it as undefined.
 */
export function affinities(labels: ArrayLike<number>, dims: Size3): Float32Array {
  checkVolume(labels, dims, 'labels', 'affinities');
  // aff: (3, D, H, W)
  return edgeMap(dims, (i, j) => labels[i] !== 0 && labels[j] === labels[i]);
}

/**
 * A (3, D, H, W) map of the edges from each voxel i to its predecessor j along z, y and x:
 * 1 where keep(i, j), 0 there otherwise and where the voxel has no predecessor.
 */
function edgeMap(dims: Size3, keep: (i: number, j: number) => boolean): Float32Array {
  const [D, H, W] = dims;
  const n = D * H * W;
  const out = new Float32Array(3 * n);
  const steps = [H * W, W, 1];
  for (let z = 0; z < D; ++z)
    for (let y = 0; y < H; ++y)
      for (let x = 0; x < W; ++x) {
        const i = (z * H + y) * W + x;
        const has = [z > 0, y > 0, x > 0];
        for (let a = 0; a < 3; ++a) if (has[a] && keep(i, i - steps[a]!)) out[a * n + i] = 1;
      }
  return out;
}

/**
 * Which affinity edges are defined, (3, D, H, W): 0 where the voxel has no predecessor
 * along the axis (the first slice, row or column), and, with a mask (D, H, W; 0 =
 * ignore), where either of the edge's two voxels is masked out; 1 elsewhere.
 */
export function affinityMask(dims: Size3, mask?: ArrayLike<number>): Float32Array {
  checkVolume(mask, dims, 'mask', 'affinityMask');
  // mask: (3, D, H, W)
  return edgeMap(dims, (i, j) => !mask || (mask[i] !== 0 && mask[j] !== 0));
}
