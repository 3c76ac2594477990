// Option checks shared by the op families: per-axis values, convolution and
// pooling geometry, resampling sizes. The binding receives exact arrays; the
// native op layer re-checks shapes before any compute.
import { describe, SegvolError } from '../core/errors';
import type { NativeConvGeometry, NativePoolGeometry, UpsampleModeName } from '../core/native';
import { Tensor } from '../core/tensor';

/** One value for every spatial axis, or one per axis in (D,) H, W order. */
export type PerAxis = number | readonly number[];

export interface ConvOptions {
  bias?: Tensor | null;
  stride?: PerAxis;
  /** Zero padding per side, or 'same' (odd dilated kernels, stride 1 keeps the size). */
  padding?: PerAxis | 'same';
  dilation?: PerAxis;
  groups?: number;
}

export interface ConvTransposeOptions {
  bias?: Tensor | null;
  stride?: PerAxis;
  padding?: PerAxis;
  dilation?: PerAxis;
  groups?: number;
  /** Extra size on one side of the output, to pick among the sizes a strided convolution maps to the input's. */
  outputPadding?: PerAxis;
}

export interface PoolOptions {
  kernel: PerAxis;
  /** Defaults to the kernel (non-overlapping windows). */
  stride?: PerAxis;
  padding?: PerAxis;
  dilation?: PerAxis;
}

export interface AvgPoolOptions {
  kernel: PerAxis;
  stride?: PerAxis;
  padding?: PerAxis;
  /** Count zero padding in the divisor (PyTorch's default: true). */
  countIncludePad?: boolean;
}

export interface MaxFilterOptions {
  kernel: PerAxis;
  /** The window's dilation ("sparsity" in dense-output ConvNets). */
  dilation?: PerAxis;
}

export interface UpsampleOptions {
  /** Output size per spatial axis; or give scale. */
  size?: readonly number[];
  /** Integer or fractional factor per spatial axis; output size = floor(input * scale). */
  scale?: PerAxis;
  mode?: UpsampleModeName;
  /** linear mode only: align the corner voxels' centres (PyTorch's align_corners). */
  alignCorners?: boolean;
}

export function spatialRank(x: Tensor, op: string): number {
  if (!(x instanceof Tensor) || (x.rank !== 4 && x.rank !== 5)) {
    const got = x instanceof Tensor ? `rank ${x.rank} (${x.shape.join(', ')})` : describe(x);
    throw new SegvolError('ERR_SHAPE', `${op}: expected input of rank 4 or 5 (N, C, [D,] H, W), received ${got}; ` +
      'reshape it (add a batch or channel axis of size 1 if needed)');
  }
  return x.rank - 2;
}

export function perAxis(value: PerAxis | undefined, n: number, fallback: number, op: string, name: string,
  min: number): number[] {
  const values = value === undefined ? new Array<number>(n).fill(fallback)
    : typeof value === 'number' ? new Array<number>(n).fill(value) : [...value];
  if (values.length !== n || values.some((v) => !Number.isInteger(v) || v < min)) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${name} as an integer >= ${min} or ${n} of them ` +
      `(one per spatial axis), received ${describe(value)}`);
  }
  return values;
}

function groupsOf(groups: number | undefined, op: string): number {
  const g = groups ?? 1;
  if (!Number.isInteger(g) || g < 1) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected groups as an integer >= 1, received ${describe(groups)}`);
  }
  return g;
}

export function convGeometry(x: Tensor, w: Tensor, options: ConvOptions, op: string): NativeConvGeometry {
  const n = spatialRank(x, op);
  const dilation = perAxis(options.dilation, n, 1, op, 'dilation', 1);
  let padding: number[];
  if (options.padding === 'same') {
    if (!(w instanceof Tensor) || w.rank !== n + 2) {
      throw new SegvolError('ERR_SHAPE', `${op}: padding 'same' needs a weight of rank ${n + 2}, received ` +
        `${w instanceof Tensor ? `(${w.shape.join(', ')})` : describe(w)}`);
    }
    padding = w.shape.slice(2).map((k, a) => {
      const span = (k - 1) * dilation[a]!;
      if (span % 2 !== 0) {
        throw new SegvolError('ERR_ARGUMENT', `${op}: padding 'same' needs an odd dilated kernel extent, received ` +
          `kernel ${k} with dilation ${dilation[a]}; give explicit padding instead`);
      }
      return span / 2;
    });
  } else {
    padding = perAxis(options.padding, n, 0, op, 'padding', 0);
  }
  return { stride: perAxis(options.stride, n, 1, op, 'stride', 1), padding, dilation, groups: groupsOf(options.groups, op) };
}

export function poolGeometry(x: Tensor, options: PoolOptions & { countIncludePad?: boolean }, op: string): NativePoolGeometry {
  if (options === null || typeof options !== 'object') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected an options object with a kernel, received ${describe(options)}`);
  }
  const n = spatialRank(x, op);
  const kernel = perAxis(options.kernel, n, 1, op, 'kernel', 1);
  return {
    kernel,
    stride: options.stride === undefined ? kernel : perAxis(options.stride, n, 1, op, 'stride', 1),
    padding: perAxis(options.padding, n, 0, op, 'padding', 0),
    dilation: perAxis(options.dilation, n, 1, op, 'dilation', 1),
    countIncludePad: options.countIncludePad ?? true,
  };
}

export function upsampleSize(x: Tensor, options: UpsampleOptions, op: string): number[] {
  const n = spatialRank(x, op);
  if ((options.size === undefined) === (options.scale === undefined)) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected exactly one of size or scale, received ` +
      `${options.size === undefined ? 'neither' : 'both'}`);
  }
  if (options.size !== undefined) return perAxis(options.size, n, 1, op, 'size', 1);
  const scale = typeof options.scale === 'number' ? new Array<number>(n).fill(options.scale) : [...options.scale!];
  if (scale.length !== n || scale.some((s) => !(s > 0) || !Number.isFinite(s))) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected scale > 0, one value or ${n}, received ${describe(options.scale)}`);
  }
  return scale.map((s, a) => Math.max(1, Math.floor(x.shape[2 + a]! * s)));
}

export function upsampleMode(options: { mode?: UpsampleModeName; alignCorners?: boolean }, op: string): UpsampleModeName {
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'linear') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected mode 'nearest' or 'linear', received ${describe(mode)}`);
  }
  if (mode === 'nearest' && options.alignCorners) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: alignCorners applies to mode 'linear' only`);
  }
  return mode;
}

export function checkAxes(axes: readonly number[], op: string, name: string): number[] {
  if (!Array.isArray(axes) || axes.some((a) => !Number.isInteger(a))) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${name} as an array of integer axes, received ${describe(axes)}`);
  }
  return [...axes];
}

/** The inverse of a permutation: permute(permute(x, p), inversePermutation(p)) is x. */
export function inversePermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, i) => {
    inverse[axis] = i;
  });
  return inverse;
}
