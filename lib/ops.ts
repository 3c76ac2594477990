// Typed op functions, forward and backward. Options are validated and
// normalised here (per-axis values, defaults, 'same' padding) so the binding
// receives exact arrays; the native op layer re-checks shapes before compute.
import { describe, SegvolError } from './errors';
import {
  native,
  type ActivationName,
  type ImplementationName,
  type NativeConvGeometry,
  type NativeConvGrads,
  type NativePoolGeometry,
  type UpsampleModeName,
} from './native';
import { createRecurrentOps } from './recurrent';
import { handleOf, Tensor } from './tensor';

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

/** Which gradients to compute; all by default. */
export interface GradientRequest {
  input?: boolean;
  weight?: boolean;
  bias?: boolean;
}

export interface ConvGradients {
  /** Gradient of the input. */
  dx?: Tensor;
  /** Gradient of the weight. */
  dw?: Tensor;
  /** Gradient of the bias. */
  db?: Tensor;
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

export interface BatchNormOptions {
  gamma: Tensor;
  beta: Tensor;
  /** Updated in place in training mode. */
  runningMean: Tensor;
  runningVar: Tensor;
  training: boolean;
  /** Weight of the new batch statistic in the running average (PyTorch's convention). Default 0.1. */
  momentum?: number;
  eps?: number;
}

export interface BatchNormResult {
  y: Tensor;
  /** The statistics the output was normalised with (batch or running); backward needs them. */
  mean: Tensor;
  invStd: Tensor;
}

export interface BatchNormGradients {
  dx: Tensor;
  dgamma: Tensor;
  dbeta: Tensor;
}

export type Activation = ActivationName;
export type UpsampleMode = UpsampleModeName;

function spatialRank(x: Tensor, op: string): number {
  if (!(x instanceof Tensor) || (x.rank !== 4 && x.rank !== 5)) {
    const got = x instanceof Tensor ? `rank ${x.rank} (${x.shape.join(', ')})` : describe(x);
    throw new SegvolError('ERR_SHAPE', `${op}: expected input of rank 4 or 5 (N, C, [D,] H, W), received ${got}; ` +
      'reshape it (add a batch or channel axis of size 1 if needed)');
  }
  return x.rank - 2;
}

function perAxis(value: PerAxis | undefined, n: number, fallback: number, op: string, name: string,
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

function convGeometry(x: Tensor, w: Tensor, options: ConvOptions, op: string): NativeConvGeometry {
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

function poolGeometry(x: Tensor, options: PoolOptions & { countIncludePad?: boolean }, op: string): NativePoolGeometry {
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

function needs(request: GradientRequest | undefined): [boolean, boolean, boolean] {
  return [request?.input ?? true, request?.weight ?? true, request?.bias ?? true];
}

function wrapGrads(g: NativeConvGrads): ConvGradients {
  const out: ConvGradients = {};
  if (g.dx) out.dx = Tensor.fromHandle(g.dx);
  if (g.dw) out.dw = Tensor.fromHandle(g.dw);
  if (g.db) out.db = Tensor.fromHandle(g.db);
  return out;
}

function upsampleSize(x: Tensor, options: UpsampleOptions, op: string): number[] {
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

function upsampleMode(options: UpsampleOptions, op: string): UpsampleModeName {
  const mode = options.mode ?? 'nearest';
  if (mode !== 'nearest' && mode !== 'linear') {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected mode 'nearest' or 'linear', received ${describe(mode)}`);
  }
  if (mode === 'nearest' && options.alignCorners) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: alignCorners applies to mode 'linear' only`);
  }
  return mode;
}

/** The inverse of a permutation: permute(permute(x, p), inversePermutation(p)) is x. */
export function inversePermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, i) => {
    inverse[axis] = i;
  });
  return inverse;
}

/** Builds the op set of one implementation: 'optimized' (the backends) or 'reference' (the test oracle). */
export function createOps(impl: ImplementationName) {
  const h = handleOf;
  const t = Tensor.fromHandle;
  const optionalHandle = (v: Tensor | null | undefined, op: string, name: string) =>
    v === null || v === undefined ? null : h(v, op, name);

  return {
    ...createRecurrentOps(impl),
    /** Convolution (cross-correlation) of x: (N, C, [D,] H, W) with w: (O, C/groups, [kD,] kH, kW). */
    conv(x: Tensor, w: Tensor, options: ConvOptions = {}): Tensor {
      const g = convGeometry(x, w, options, 'conv');
      return t(native.conv(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'),
        optionalHandle(options.bias, 'conv', 'bias'), g));
    },
    /** Gradients of conv given dy, the gradient of its output. Pass the same options as to conv. */
    convBackward(x: Tensor, w: Tensor, dy: Tensor, options: ConvOptions = {}, request?: GradientRequest): ConvGradients {
      const g = convGeometry(x, w, options, 'convBackward');
      const [needInput, needWeight, needBias] = needs(request);
      return wrapGrads(native.convBackward(impl, h(x, 'convBackward', 'input'), h(w, 'convBackward', 'weight'),
        h(dy, 'convBackward', 'output gradient'), g, needInput, needWeight, needBias));
    },
    /** conv on the compute thread: the event loop stays free. */
    async convAsync(x: Tensor, w: Tensor, options: ConvOptions = {}): Promise<Tensor> {
      const g = convGeometry(x, w, options, 'conv');
      return t(await native.convAsync(impl, h(x, 'conv', 'input'), h(w, 'conv', 'weight'),
        optionalHandle(options.bias, 'conv', 'bias'), g));
    },
    /** convBackward on the compute thread. */
    async convBackwardAsync(x: Tensor, w: Tensor, dy: Tensor, options: ConvOptions = {}, request?: GradientRequest): Promise<ConvGradients> {
      const g = convGeometry(x, w, options, 'convBackward');
      const [needInput, needWeight, needBias] = needs(request);
      return wrapGrads(await native.convBackwardAsync(impl, h(x, 'convBackward', 'input'), h(w, 'convBackward', 'weight'),
        h(dy, 'convBackward', 'output gradient'), g, needInput, needWeight, needBias));
    },
    /** Transposed convolution; w: (C, O/groups, [kD,] kH, kW), as PyTorch's conv_transpose. */
    convTranspose(x: Tensor, w: Tensor, options: ConvTransposeOptions = {}): Tensor {
      const op = 'convTranspose';
      const g = convGeometry(x, w, options, op);
      const outputPadding = perAxis(options.outputPadding, g.stride.length, 0, op, 'outputPadding', 0);
      return t(native.convTranspose(impl, h(x, op, 'input'), h(w, op, 'weight'), optionalHandle(options.bias, op, 'bias'),
        g, outputPadding));
    },
    convTransposeBackward(x: Tensor, w: Tensor, dy: Tensor, options: ConvTransposeOptions = {},
      request?: GradientRequest): ConvGradients {
      const op = 'convTransposeBackward';
      const g = convGeometry(x, w, options, op);
      const outputPadding = perAxis(options.outputPadding, g.stride.length, 0, op, 'outputPadding', 0);
      const [needInput, needWeight, needBias] = needs(request);
      return wrapGrads(native.convTransposeBackward(impl, h(x, op, 'input'), h(w, op, 'weight'),
        h(dy, op, 'output gradient'), g, outputPadding, needInput, needWeight, needBias));
    },
    /** Pixel-wise fully connected layer: w: (F, C), bias: (F); the same matrix at every voxel. */
    pixelwise(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
      return t(native.pixelwise(impl, h(x, 'pixelwise', 'input'), h(w, 'pixelwise', 'weight'),
        optionalHandle(bias, 'pixelwise', 'bias')));
    },
    pixelwiseBackward(x: Tensor, w: Tensor, dy: Tensor, request?: GradientRequest): ConvGradients {
      const op = 'pixelwiseBackward';
      const [needInput, needWeight, needBias] = needs(request);
      return wrapGrads(native.pixelwiseBackward(impl, h(x, op, 'input'), h(w, op, 'weight'),
        h(dy, op, 'output gradient'), needInput, needWeight, needBias));
    },

    /** Max pooling; NaN propagates, padding never wins. */
    maxPool(x: Tensor, options: PoolOptions): Tensor {
      return t(native.maxPool(impl, h(x, 'maxPool', 'input'), poolGeometry(x, options, 'maxPool')));
    },
    maxPoolBackward(x: Tensor, dy: Tensor, options: PoolOptions): Tensor {
      const op = 'maxPoolBackward';
      return t(native.maxPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, options, op)));
    },
    /**
     * Max-filtering: a max-pooling window at stride 1 with an optionally dilated window, so
     * the output stays dense (sliding-window ConvNets in one pass). Output size: in - (k-1)*dilation.
     */
    maxFilter(x: Tensor, options: MaxFilterOptions): Tensor {
      const o = { kernel: options.kernel, stride: 1, dilation: options.dilation ?? 1 };
      return t(native.maxPool(impl, h(x, 'maxFilter', 'input'), poolGeometry(x, o, 'maxFilter')));
    },
    maxFilterBackward(x: Tensor, dy: Tensor, options: MaxFilterOptions): Tensor {
      const op = 'maxFilterBackward';
      const o = { kernel: options.kernel, stride: 1, dilation: options.dilation ?? 1 };
      return t(native.maxPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, o, op)));
    },
    avgPool(x: Tensor, options: AvgPoolOptions): Tensor {
      return t(native.avgPool(impl, h(x, 'avgPool', 'input'), poolGeometry(x, options, 'avgPool')));
    },
    avgPoolBackward(x: Tensor, dy: Tensor, options: AvgPoolOptions): Tensor {
      const op = 'avgPoolBackward';
      return t(native.avgPoolBackward(impl, h(x, op, 'input'), h(dy, op, 'output gradient'), poolGeometry(x, options, op)));
    },

    /** Nearest or bi/trilinear resize of the spatial axes (PyTorch's interpolate). */
    upsample(x: Tensor, options: UpsampleOptions): Tensor {
      const op = 'upsample';
      const size = upsampleSize(x, options, op);
      return t(native.upsample(impl, h(x, op, 'input'), size, upsampleMode(options, op), options.alignCorners ?? false));
    },
    /** inputShape: the shape of upsample's input. */
    upsampleBackward(dy: Tensor, inputShape: readonly number[], options: Omit<UpsampleOptions, 'size' | 'scale'> = {}): Tensor {
      const op = 'upsampleBackward';
      const n = spatialRank(dy, op);
      const inputSize = perAxis(inputShape.slice(2), n, 1, op, 'inputShape spatial sizes', 1);
      return t(native.upsampleBackward(impl, h(dy, op, 'output gradient'), inputSize, upsampleMode(options, op),
        options.alignCorners ?? false));
    },

    /** Batch normalization per channel of x: (N, C, ...). */
    batchNorm(x: Tensor, options: BatchNormOptions): BatchNormResult {
      const op = 'batchNorm';
      const momentum = options.momentum ?? 0.1;
      const eps = options.eps ?? 1e-5;
      const r = native.batchNorm(impl, h(x, op, 'input'), h(options.gamma, op, 'gamma'), h(options.beta, op, 'beta'),
        h(options.runningMean, op, 'runningMean'), h(options.runningVar, op, 'runningVar'), Boolean(options.training),
        momentum, eps);
      return { y: t(r.y), mean: t(r.mean), invStd: t(r.invStd) };
    },
    /** mean and invStd: from batchNorm's result; training: as in the forward call. */
    batchNormBackward(x: Tensor, dy: Tensor, saved: { gamma: Tensor; mean: Tensor; invStd: Tensor; training: boolean }): BatchNormGradients {
      const op = 'batchNormBackward';
      const r = native.batchNormBackward(impl, h(x, op, 'input'), h(saved.gamma, op, 'gamma'), h(saved.mean, op, 'mean'),
        h(saved.invStd, op, 'invStd'), Boolean(saved.training), h(dy, op, 'output gradient'));
      return { dx: t(r.dx), dgamma: t(r.dgamma), dbeta: t(r.dbeta) };
    },

    tanh(x: Tensor): Tensor {
      return t(native.activation(impl, 'tanh', h(x, 'tanh', 'input')));
    },
    sigmoid(x: Tensor): Tensor {
      return t(native.activation(impl, 'sigmoid', h(x, 'sigmoid', 'input')));
    },
    relu(x: Tensor): Tensor {
      return t(native.activation(impl, 'relu', h(x, 'relu', 'input')));
    },
    /** Gradient of an activation: x its input, y its output, dy the gradient of y. */
    activationBackward(kind: Activation, x: Tensor, y: Tensor, dy: Tensor): Tensor {
      const op = 'activationBackward';
      return t(native.activationBackward(impl, kind, h(x, op, 'input'), h(y, op, 'output'), h(dy, op, 'output gradient')));
    },
    add(a: Tensor, b: Tensor): Tensor {
      return t(native.add(impl, h(a, 'add', 'a'), h(b, 'add', 'b')));
    },
    mul(a: Tensor, b: Tensor): Tensor {
      return t(native.mul(impl, h(a, 'mul', 'a'), h(b, 'mul', 'b')));
    },
    /** Gradients of mul: da = dy * b, db = dy * a. */
    mulBackward(a: Tensor, b: Tensor, dy: Tensor): { da: Tensor; db: Tensor } {
      const op = 'mulBackward';
      return {
        da: t(native.mul(impl, h(dy, op, 'output gradient'), h(b, op, 'b'))),
        db: t(native.mul(impl, h(dy, op, 'output gradient'), h(a, op, 'a'))),
      };
    },
    scale(x: Tensor, factor: number): Tensor {
      if (typeof factor !== 'number') {
        throw new SegvolError('ERR_ARGUMENT', `scale: expected a number factor, received ${describe(factor)}`);
      }
      return t(native.scale(impl, h(x, 'scale', 'input'), factor));
    },
    /** Sum of same-shaped tensors (the six directions of a PyraMiD-LSTM layer, for example). */
    sum(xs: readonly Tensor[]): Tensor {
      if (!Array.isArray(xs) || xs.length === 0) {
        throw new SegvolError('ERR_ARGUMENT', `sum: expected a non-empty array of tensors, received ${describe(xs)}`);
      }
      return t(native.sum(impl, xs.map((x, i) => h(x, 'sum', `tensor ${i}`))));
    },

    /** Softmax over the channel axis of (N, C, ...). */
    softmax(x: Tensor): Tensor {
      return t(native.softmax(impl, h(x, 'softmax', 'input')));
    },
    /** y: softmax's output, dy: the gradient of y. */
    softmaxBackward(y: Tensor, dy: Tensor): Tensor {
      return t(native.softmaxBackward(impl, h(y, 'softmaxBackward', 'output'), h(dy, 'softmaxBackward', 'output gradient')));
    },

    /** Output axis i is input axis perm[i]. */
    permute(x: Tensor, perm: readonly number[]): Tensor {
      return t(native.permute(impl, h(x, 'permute', 'input'), checkAxes(perm, 'permute', 'perm')));
    },
    /** Gradient of permute(x, perm): dy permuted back. */
    permuteBackward(dy: Tensor, perm: readonly number[]): Tensor {
      return t(native.permute(impl, h(dy, 'permuteBackward', 'output gradient'),
        inversePermutation(checkAxes(perm, 'permuteBackward', 'perm'))));
    },
    /** Reverses the listed axes; its own gradient. */
    flip(x: Tensor, axes: readonly number[]): Tensor {
      return t(native.flip(impl, h(x, 'flip', 'input'), checkAxes(axes, 'flip', 'axes')));
    },
  };
}

function checkAxes(axes: readonly number[], op: string, name: string): number[] {
  if (!Array.isArray(axes) || axes.some((a) => !Number.isInteger(a))) {
    throw new SegvolError('ERR_ARGUMENT', `${op}: expected ${name} as an array of integer axes, received ${describe(axes)}`);
  }
  return [...axes];
}

export type Ops = ReturnType<typeof createOps>;

/** The ops on each tensor's own device (CPU: oneDNN + OpenMP; CUDA when built). */
export const ops: Ops = createOps('optimized');
