// The op cases every implementation is checked on. Shapes include odd sizes,
// C = 1, dilation > 1, strides, groups and 3D. Tolerances sit beside each case:
//   conv family: float32 sums of up to a few hundred products; oneDNN's
//     blocked kernels sum in another order than the double-accumulating
//     reference, so 1e-4 absolute + 1e-4 relative.
//   everything else: one or two float32 roundings, 1e-5 + 1e-5.
//   finite differences: float32 forward passes, step 1e-2 (smooth ops) or
//     1e-3 (max, where the step must stay inside the gap between values).
import { computeLoss, computeTargetLoss, matchedSoftIoU, Tensor, type ConvOptions, type ConvTransposeOptions, type Device, type TargetLossKind } from '../lib';
import { reference, type OpsWithBackward as Ops } from '../lib/testing';
import type { InputSpec, OpCase } from './harness';

/** Labels, a mask and class weights for the loss case: (2, 2, 3, 2) over 3 classes. */
function lossLabels(device: Device) {
  const labels = Float32Array.from({ length: 24 }, (_, i) => (i * 7) % 3);
  const mask = Float32Array.from({ length: 24 }, (_, i) => (i % 5 === 2 ? 0 : 1));
  return {
    labels: Tensor.fromArray(labels, [2, 2, 3, 2], { device }),
    mask: Tensor.fromArray(mask, [2, 2, 3, 2], { device }),
    weights: Tensor.fromArray([0.5, 2, 1], [3], { device }),
  };
}

function lossOf(o: Ops, x: Tensor): Tensor {
  const p = o.softmax(x);
  const l = lossLabels(x.device);
  const y = o.loss(p, l.labels, { kind: 'crossEntropy', mask: l.mask, classWeights: l.weights, normalize: 'voxels' });
  for (const t of [p, l.labels, l.mask, l.weights]) t.dispose();
  return y;
}

/** Float targets (0 or 1, as affinities), per-entry weights and a mask for the target-loss cases: (2, 3, 2, 2, 2). */
function targetData(device: Device) {
  const n = 48;
  const shape = [2, 3, 2, 2, 2];
  return {
    targets: Tensor.fromArray(Float32Array.from({ length: n }, (_, i) => ((i * 5) % 3 === 0 ? 1 : 0)), shape, { device }),
    weights: Tensor.fromArray(Float32Array.from({ length: n }, (_, i) => 0.5 + ((i * 3) % 4) * 0.5), shape, { device }),
    mask: Tensor.fromArray(Float32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? 0 : 1)), shape, { device }),
  };
}

/** A sigmoid, then a loss against float targets: what the affinity U-Net trains with. */
function targetLossCase(kind: TargetLossKind, normalize: 'weights' | 'voxels'): OpCase {
  const run = (o: Ops, x: Tensor) => {
    const p = o.sigmoid(x);
    const d = targetData(x.device);
    return { p, d, options: { kind, normalize, weights: d.weights, mask: d.mask } };
  };
  const free = (p: Tensor, d: ReturnType<typeof targetData>) => {
    for (const t of [p, d.targets, d.weights, d.mask]) t.dispose();
  };
  return {
    name: `sigmoid then the ${kind} against float targets (weighted, masked, normalized by ${normalize})`,
    inputs: { x: { shape: [2, 3, 2, 2, 2] } },
    forward: (o, v) => {
      const { p, d, options } = run(o, v.x!);
      const y = o.targetLoss(p, d.targets, options);
      free(p, d);
      return y;
    },
    backward: (o, v, _y, dy) => {
      const { p, d, options } = run(o, v.x!);
      const g = computeTargetLoss(p, d.targets, options);
      const scaled = o.scale(g.grad, dy.toArray()[0]!);
      const dx = o.activationBackward('sigmoid', v.x!, p, scaled);
      free(p, d);
      for (const t of [g.grad, scaled]) t.dispose();
      return { x: dx };
    },
    tolerance: { abs: 1e-6, rel: 1e-5 },
    finiteDifference: { step: 1e-2, tolerance: { abs: 1e-4, rel: 1e-2 } },
  };
}

const convTol = { abs: 1e-4, rel: 1e-4 };
const elemTol = { abs: 1e-5, rel: 1e-5 };
const smoothFd = { step: 1e-2, tolerance: { abs: 5e-3, rel: 1e-2 } };
const maxFd = { step: 1e-3, tolerance: { abs: 2e-2, rel: 1e-2 } };

function convCase(name: string, x: number[], w: number[], options: ConvOptions, fd = true): OpCase {
  return {
    name,
    inputs: { x: { shape: x }, w: { shape: w }, b: { shape: [w[0]!] } },
    forward: (o, v) => o.conv(v.x!, v.w!, { ...options, bias: v.b! }),
    backward: (o, v, _y, dy) => {
      const g = o.convBackward(v.x!, v.w!, dy, { ...options, bias: v.b! });
      return { x: g.dx!, w: g.dw!, b: g.db! };
    },
    tolerance: convTol,
    ...(fd ? { finiteDifference: smoothFd } : {}),
  };
}

function convTransposeCase(name: string, x: number[], w: number[], options: ConvTransposeOptions, groups = 1): OpCase {
  return {
    name,
    inputs: { x: { shape: x }, w: { shape: w }, b: { shape: [w[1]! * groups] } },
    forward: (o, v) => o.convTranspose(v.x!, v.w!, { ...options, groups, bias: v.b! }),
    backward: (o, v, _y, dy) => {
      const g = o.convTransposeBackward(v.x!, v.w!, dy, { ...options, groups, bias: v.b! });
      return { x: g.dx!, w: g.dw!, b: g.db! };
    },
    tolerance: convTol,
    finiteDifference: smoothFd,
  };
}

function poolCase(name: string, x: number[], kind: 'max' | 'avg' | 'filter',
  options: { kernel: number[]; stride?: number[]; padding?: number[]; dilation?: number[]; countIncludePad?: boolean }): OpCase {
  const forward = (o: Ops, v: Record<string, Tensor>) => kind === 'max' ? o.maxPool(v.x!, options)
    : kind === 'filter' ? o.maxFilter(v.x!, options) : o.avgPool(v.x!, options);
  return {
    name,
    inputs: { x: { shape: x, init: kind === 'avg' ? 'uniform' : 'distinct' } },
    forward,
    backward: (o, v, _y, dy) => ({
      x: kind === 'max' ? o.maxPoolBackward(v.x!, dy, options)
        : kind === 'filter' ? o.maxFilterBackward(v.x!, dy, options) : o.avgPoolBackward(v.x!, dy, options),
    }),
    tolerance: elemTol,
    finiteDifference: kind === 'avg' ? smoothFd : maxFd,
  };
}

function upsampleCase(name: string, x: number[], size: number[], mode: 'nearest' | 'linear', alignCorners = false): OpCase {
  const options = mode === 'linear' ? { size, mode, alignCorners } : { size, mode };
  return {
    name,
    inputs: { x: { shape: x } },
    forward: (o, v) => o.upsample(v.x!, options),
    backward: (o, v, _y, dy) => ({
      x: o.upsampleBackward(dy, v.x!.shape, mode === 'linear' ? { mode, alignCorners } : { mode }),
    }),
    tolerance: elemTol,
    finiteDifference: smoothFd,
  };
}

function batchNormCase(name: string, x: number[], training: boolean): OpCase {
  const c = x[1]!;
  return {
    name,
    inputs: {
      x: { shape: x },
      gamma: { shape: [c], init: 'positive' },
      beta: { shape: [c] },
      runningMean: { shape: [c] },
      runningVar: { shape: [c], init: 'positive' },
    },
    forward: (o, v) => {
      // Fresh running statistics per call: training mode updates them in place.
      const runningMean = o.scale(v.runningMean!, 1);
      const runningVar = o.scale(v.runningVar!, 1);
      const r = o.batchNorm(v.x!, { gamma: v.gamma!, beta: v.beta!, runningMean, runningVar, training });
      for (const t of [runningMean, runningVar, r.mean, r.invStd]) t.dispose();
      return r.y;
    },
    backward: (o, v, _y, dy) => {
      const runningMean = o.scale(v.runningMean!, 1);
      const runningVar = o.scale(v.runningVar!, 1);
      const r = o.batchNorm(v.x!, { gamma: v.gamma!, beta: v.beta!, runningMean, runningVar, training });
      const g = o.batchNormBackward(v.x!, dy, { gamma: v.gamma!, mean: r.mean, invStd: r.invStd, training });
      for (const t of [runningMean, runningVar, r.y, r.mean, r.invStd]) t.dispose();
      return { x: g.dx, gamma: g.dgamma, beta: g.dbeta };
    },
    tolerance: { abs: 5e-5, rel: 5e-5 },
    finiteDifference: smoothFd,
  };
}

function activationCase(kind: 'tanh' | 'sigmoid' | 'relu', shape: number[]): OpCase {
  return {
    name: `${kind} ${shape.join('x')}`,
    inputs: { x: { shape, init: kind === 'relu' ? 'awayFromZero' : 'uniform' } },
    forward: (o, v) => o[kind](v.x!),
    backward: (o, v, y, dy) => ({ x: o.activationBackward(kind, v.x!, y, dy) }),
    tolerance: { abs: 1e-6, rel: 1e-5 },
    finiteDifference: smoothFd,
  };
}

export const opCases: OpCase[] = [
  convCase('conv2d 3x3 pad 1, N=2', [2, 3, 7, 6], [4, 3, 3, 3], { padding: 1 }),
  convCase('conv2d stride 2, dilation 2, uneven padding, odd sizes', [1, 2, 9, 10], [3, 2, 3, 3],
    { stride: 2, dilation: 2, padding: [2, 1] }),
  convCase('conv2d C=1 5x5 same', [2, 1, 8, 7], [1, 1, 5, 5], { padding: 'same' }),
  convCase('conv2d groups 2, anisotropic stride', [1, 4, 6, 7], [6, 2, 3, 3], { groups: 2, stride: [1, 2] }),
  convCase('conv2d 7x7 same, C=5 O=8 on 20x20', [1, 5, 20, 20], [8, 5, 7, 7], { padding: 'same' }, false),
  // Few taps on planes of 64+ voxels: the CPU's im2col + GEMM path (valid, asymmetric kernel and padding).
  convCase('conv2d 3x5 kernel, padding (0, 2), N=2 C=3 on 9x11', [2, 3, 9, 11], [4, 3, 3, 5], { padding: [0, 2] }),
  convCase('conv2d 1x3 kernel valid, N=3 C=2 on 8x10', [3, 2, 8, 10], [5, 2, 1, 3], { padding: 0 }),
  // 1x1(x1) kernels on planes of 64+ voxels: the CPU's per-image (O, C) x (C, S) product.
  convCase('conv3d 1x1x1, N=3 C=6 O=5 on 2x6x7 (a classifier)', [3, 6, 2, 6, 7], [5, 6, 1, 1, 1], {}),
  convCase('conv2d 1x1, N=2 C=4 O=3 on 9x8', [2, 4, 9, 8], [3, 4, 1, 1], {}),
  // Kernel equal to stride on 64+ output voxels: the CPU's patch path (a rearrangement and one product per image).
  convCase('conv2d 2x2 stride 2 (patches), N=2 C=3 O=4 on 16x18', [2, 3, 16, 18], [4, 3, 2, 2], { stride: 2 }),
  convCase('conv3d (1,2,2) stride (1,2,2) (patches) on 2x16x16', [1, 2, 2, 16, 16], [3, 2, 1, 2, 2], { stride: [1, 2, 2] }),
  convTransposeCase('convTranspose2d 2x2 stride 2 (the patch path backwards), N=2 on 8x9', [2, 3, 8, 9], [3, 4, 2, 2], { stride: 2 }),
  convTransposeCase('convTranspose3d 2x2x2 stride 2 on 2x8x8', [1, 3, 2, 8, 8], [3, 2, 2, 2, 2], { stride: 2 }),
  convCase('conv3d 3x3x3 pad 1', [1, 2, 4, 5, 6], [3, 2, 3, 3, 3], { padding: 1 }),
  convCase('conv3d (2,3,3) dilation (1,2,2), stride (1,1,2)', [1, 2, 5, 8, 7], [2, 2, 2, 3, 3],
    { dilation: [1, 2, 2], stride: [1, 1, 2] }),
  convCase('conv3d dilated 3x3x3 on 6x12x12, C=4 O=6', [2, 4, 6, 12, 12], [6, 4, 3, 3, 3],
    { dilation: [1, 2, 2], padding: [1, 2, 2] }, false),
  convTransposeCase('convTranspose2d stride 2, outputPadding 1', [1, 3, 4, 5], [3, 2, 3, 3],
    { stride: 2, padding: 1, outputPadding: 1 }),
  convTransposeCase('convTranspose3d groups 2, stride (1,2,2)', [1, 4, 3, 3, 4], [4, 1, 2, 2, 3],
    { stride: [1, 2, 2], padding: [0, 0, 1] }, 2),
  {
    name: 'pixelwise 3D (F=4, C=3)',
    inputs: { x: { shape: [2, 3, 3, 4, 5] }, w: { shape: [4, 3] }, b: { shape: [4] } },
    forward: (o, v) => o.pixelwise(v.x!, v.w!, v.b!),
    backward: (o, v, _y, dy) => {
      const g = o.pixelwiseBackward(v.x!, v.w!, dy);
      return { x: g.dx!, w: g.dw!, b: g.db! };
    },
    tolerance: convTol,
    finiteDifference: smoothFd,
  },
  poolCase('maxPool2d 2x2 stride 2, odd size', [1, 2, 7, 9], 'max', { kernel: [2, 2] }),
  poolCase('maxPool2d 3x3 stride 2 pad 1', [2, 2, 9, 8], 'max', { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }),
  poolCase('maxPool3d 2x2x2', [1, 2, 4, 6, 5], 'max', { kernel: [2, 2, 2] }),
  // The CPU's tiled 2x2 path (SegNet's pooling, per slice): odd planes leave a row and a column out.
  poolCase('maxPool3d (1,2,2) stride (1,2,2), N=2, 3 slices of 7x10', [2, 3, 3, 7, 10], 'max', { kernel: [1, 2, 2], stride: [1, 2, 2] }),
  poolCase('maxFilter2d 2x2 dilation 2', [1, 2, 9, 10], 'filter', { kernel: [2, 2], dilation: [2, 2] }),
  poolCase('maxFilter3d (2,2,2) dilation (1,4,4)', [1, 1, 3, 11, 10], 'filter', { kernel: [2, 2, 2], dilation: [1, 4, 4] }),
  poolCase('maxFilter2d C=1 3x3 dilation 1', [3, 1, 6, 5], 'filter', { kernel: [3, 3] }),
  poolCase('avgPool2d 3x3 stride 2 pad 1 (count pad)', [1, 2, 9, 8], 'avg',
    { kernel: [3, 3], stride: [2, 2], padding: [1, 1], countIncludePad: true }),
  poolCase('avgPool3d (3,2,3) pad 1, exclude pad', [1, 2, 5, 7, 6], 'avg',
    { kernel: [3, 2, 3], stride: [2, 2, 1], padding: [1, 1, 1], countIncludePad: false }),
  upsampleCase('upsample2d nearest to 11x9', [1, 2, 5, 4], [11, 9], 'nearest'),
  upsampleCase('upsample2d bilinear x2', [2, 2, 4, 5], [8, 10], 'linear'),
  upsampleCase('upsample2d bilinear alignCorners to 7x9', [1, 2, 4, 5], [7, 9], 'linear', true),
  upsampleCase('upsample3d trilinear to 5x7x6', [1, 2, 3, 4, 3], [5, 7, 6], 'linear'),
  upsampleCase('upsample3d nearest to 4x9x7', [1, 1, 2, 4, 3], [4, 9, 7], 'nearest'),
  batchNormCase('batchNorm2d training', [2, 3, 4, 5], true),
  batchNormCase('batchNorm3d training, C=1', [3, 1, 2, 3, 4], true),
  batchNormCase('batchNorm3d inference', [2, 3, 2, 3, 4], false),
  activationCase('tanh', [2, 3, 4, 5]),
  activationCase('sigmoid', [2, 3, 4, 5]),
  activationCase('relu', [1, 2, 3, 4, 5]),
  {
    name: 'add and mul',
    inputs: { a: { shape: [2, 3, 4, 5] }, b: { shape: [2, 3, 4, 5] } },
    forward: (o, v) => {
      const p = o.mul(v.a!, v.b!);
      const s = o.add(p, v.a!);
      p.dispose();
      return s;
    },
    backward: (o, v, _y, dy) => {
      // y = a*b + a: da = dy*b + dy, db = dy*a
      const m = o.mulBackward(v.a!, v.b!, dy);
      const da = o.add(m.da, dy);
      m.da.dispose();
      return { a: da, b: m.db };
    },
    tolerance: elemTol,
    finiteDifference: smoothFd,
  },
  {
    name: 'scale and sum of three',
    inputs: { a: { shape: [1, 2, 3, 4, 5] }, b: { shape: [1, 2, 3, 4, 5] }, c: { shape: [1, 2, 3, 4, 5] } },
    forward: (o, v) => {
      const s = o.scale(v.c!, -2.5);
      const y = o.sum([v.a!, v.b!, s]);
      s.dispose();
      return y;
    },
    backward: (o, _v, _y, dy) => ({ a: o.scale(dy, 1), b: o.scale(dy, 1), c: o.scale(dy, -2.5) }),
    tolerance: elemTol,
    finiteDifference: smoothFd,
  },
  {
    // distinct values are k/60 - 1: none within a finite-difference step of a bound
    name: 'clamp to [-0.41, 0.505]',
    inputs: { x: { shape: [2, 3, 4, 5], init: 'distinct' } },
    forward: (o, v) => o.clamp(v.x!, -0.41, 0.505),
    backward: (o, v, _y, dy) => ({ x: o.clampBackward(v.x!, -0.41, 0.505, dy) }),
    tolerance: { abs: 0, rel: 0 },
    finiteDifference: { step: 1e-3, tolerance: { abs: 5e-3, rel: 1e-2 } },
  },
  // Straight-through: the gradient passes unchanged (no finite-difference check: rounding is a step function).
  {
    name: 'roundToPrecision bf16 (straight-through gradient)',
    inputs: { x: { shape: [2, 3, 4, 5], init: 'distinct' } },
    forward: (o, v) => o.roundToPrecision(v.x!, 'bf16'),
    backward: (o, _v, _y, dy) => ({ x: o.scale(dy, 1) }),
    tolerance: { abs: 0, rel: 0 },
  },
  {
    name: 'roundToPrecision fp16 (straight-through gradient)',
    inputs: { x: { shape: [3, 7] } },
    forward: (o, v) => o.roundToPrecision(v.x!, 'fp16'),
    backward: (o, _v, _y, dy) => ({ x: o.scale(dy, 1) }),
    tolerance: { abs: 0, rel: 0 },
  },
  {
    name: 'softmax over channels 3D',
    inputs: { x: { shape: [2, 4, 3, 4, 5] } },
    forward: (o, v) => o.softmax(v.x!),
    backward: (o, _v, y, dy) => ({ x: o.softmaxBackward(y, dy) }),
    tolerance: { abs: 1e-6, rel: 1e-5 },
    finiteDifference: smoothFd,
  },
  {
    name: 'softmax over channels 2D, C=1 and large spatial',
    inputs: { x: { shape: [1, 1, 30, 31] } },
    forward: (o, v) => o.softmax(v.x!),
    backward: (o, _v, y, dy) => ({ x: o.softmaxBackward(y, dy) }),
    tolerance: { abs: 1e-6, rel: 1e-5 },
  },
  {
    name: 'permute (0,1,3,4,2) of a 5D volume',
    inputs: { x: { shape: [2, 3, 4, 5, 6] } },
    forward: (o, v) => o.permute(v.x!, [0, 1, 3, 4, 2]),
    backward: (o, _v, _y, dy) => ({ x: o.permuteBackward(dy, [0, 1, 3, 4, 2]) }),
    tolerance: { abs: 0, rel: 0 },
    finiteDifference: smoothFd,
  },
  {
    name: 'concat over channels, then narrow a window that spans both parts',
    inputs: { a: { shape: [2, 2, 3, 4, 3] }, b: { shape: [2, 3, 3, 4, 3] } },
    forward: (o, v) => {
      const c = o.concat([v.a!, v.b!], 1);
      const y = o.narrow(c, 1, 1, 3);
      c.dispose();
      return y;
    },
    backward: (o, _v, _y, dy) => {
      // channels 1..3 of [a | b] are a[1] and b[0..1]
      const dc = o.narrowBackward(dy, [2, 5, 3, 4, 3], 1, 1);
      const g = { a: o.narrow(dc, 1, 0, 2), b: o.narrow(dc, 1, 2, 3) };
      dc.dispose();
      return g;
    },
    tolerance: { abs: 0, rel: 0 },
    finiteDifference: smoothFd,
  },
  {
    name: 'concat along D and narrow along W (crops of a volume)',
    inputs: { a: { shape: [1, 2, 2, 3, 5] }, b: { shape: [1, 2, 3, 3, 5] } },
    forward: (o, v) => {
      const c = o.concat([v.a!, v.b!], 2);
      const y = o.narrow(c, 4, 1, 3);
      c.dispose();
      return y;
    },
    backward: (o, _v, _y, dy) => {
      const dc = o.narrowBackward(dy, [1, 2, 5, 3, 5], 4, 1);
      const g = { a: o.narrow(dc, 2, 0, 2), b: o.narrow(dc, 2, 2, 3) };
      dc.dispose();
      return g;
    },
    tolerance: { abs: 0, rel: 0 },
    finiteDifference: smoothFd,
  },
  {
    name: 'reshape and a same-device copy (Tensor.reshape, Tensor.to) inside a forward pass',
    inputs: { x: { shape: [1, 2, 3, 4] } },
    forward: (o, v) => {
      const r = v.x!.reshape([1, 4, 3, 2]);
      const c = r.to(r.device);
      const y = o.tanh(c);
      r.dispose();
      c.dispose();
      return y;
    },
    backward: (o, v, y, dy) => {
      const pre = v.x!.reshape([1, 4, 3, 2]);
      const d = o.activationBackward('tanh', pre, y, dy);
      const dx = d.reshape(v.x!.shape);
      for (const t of [pre, d]) t.dispose();
      return { x: dx };
    },
    tolerance: { abs: 1e-6, rel: 1e-5 },
    finiteDifference: smoothFd,
  },
  {
    name: 'softmax then the cross-entropy loss (weighted, masked, normalized by voxels)',
    inputs: { x: { shape: [2, 3, 2, 3, 2] } },
    forward: (o, v) => lossOf(o, v.x!),
    backward: (o, v, _y, dy) => {
      const p = o.softmax(v.x!);
      const labels = lossLabels(v.x!.device);
      const g = computeLoss(o === reference ? 'reference' : 'optimized', p, labels.labels, { kind: 'crossEntropy', mask: labels.mask,
        classWeights: labels.weights, normalize: 'voxels' });
      const scaled = o.scale(g.grad, dy.toArray()[0]!);
      const dx = o.softmaxBackward(p, scaled);
      for (const t of [p, labels.labels, labels.mask, labels.weights, g.grad, scaled]) t.dispose();
      return { x: dx };
    },
    tolerance: { abs: 1e-6, rel: 1e-5 },
    finiteDifference: { step: 1e-2, tolerance: { abs: 1e-4, rel: 1e-2 } },
  },
  targetLossCase('squaredError', 'voxels'),
  targetLossCase('binaryCrossEntropy', 'weights'),
  {
    name: 'flip axes 2 and 4 of a 5D volume',
    inputs: { x: { shape: [1, 2, 3, 4, 5] } },
    forward: (o, v) => o.flip(v.x!, [2, 4]),
    backward: (o, _v, _y, dy) => ({ x: o.flip(dy, [2, 4]) }),
    tolerance: { abs: 0, rel: 0 },
    finiteDifference: smoothFd,
  },
];

// One LSTM step from gate pre-activations (ops.lstmCell); the case's output is h + c, so
// both outputs' gradients enter. The explicit backward takes the activations, which the
// op keeps to itself: rebuilt here from element-wise ops.
function lstmCellCase(name: string, pre: number[], withRecurrent: boolean, withCell: boolean): OpCase {
  const o4 = pre[1]! / 4;
  const cell = [pre[0]!, o4, ...pre.slice(2)];
  const options = (v: Record<string, Tensor>) => ({ ...(withRecurrent ? { recurrent: v.recurrent! } : {}), ...(withCell ? { cPrev: v.cPrev! } : {}) });
  return {
    name,
    inputs: { pre: { shape: pre }, ...(withRecurrent ? { recurrent: { shape: pre } } : {}), ...(withCell ? { cPrev: { shape: cell } } : {}) },
    forward: (op, v) => {
      const r = op.lstmCell(v.pre!, options(v));
      const y = op.add(r.h, r.c);
      r.h.dispose();
      r.c.dispose();
      return y;
    },
    backward: (op, v, _y, dy) => {
      const sum = withRecurrent ? op.add(v.pre!, v.recurrent!) : v.pre!;
      const gate = (k: number, act: 'sigmoid' | 'tanh') => op[act](op.narrow(sum, 1, k * o4, o4));
      const acts = op.concat([gate(0, 'sigmoid'), gate(1, 'sigmoid'), gate(2, 'tanh'), gate(3, 'sigmoid')], 1);
      const r = op.lstmCell(v.pre!, options(v));
      const g = op.lstmCellBackward(acts, r.c, { dh: dy, dc: dy, cPrev: withCell ? v.cPrev! : null });
      for (const t of [acts, r.h, r.c]) t.dispose();
      return { pre: g.dgates, ...(withRecurrent ? { recurrent: op.scale(g.dgates, 1) } : {}), ...(withCell ? { cPrev: g.dcPrev! } : {}) };
    },
    tolerance: { abs: 2e-5, rel: 2e-5 },
    finiteDifference: { step: 1e-2, tolerance: { abs: 5e-3, rel: 1e-2 } },
  };
}

// The C-LSTM scan on tiny volumes: T = 1 (no recurrence at all), a minus
// direction, and an initial state (whose gradients are checked too).
function clstmCase(name: string, x: number[], o: number, k: number, direction: 0 | 1 | 2 | 3 | 4 | 5,
  initialState: boolean, peepholes = false, zeroState = false): OpCase {
  const c = x[1]!;
  const axis = 2 + Math.floor(direction / 2);
  const plane = x.slice(2).filter((_, a) => a + 2 !== axis);
  const state: Record<string, InputSpec> = {
    ...(initialState ? { h0: { shape: [x[0]!, o, ...plane] }, c0: { shape: [x[0]!, o, ...plane] } } : {}),
    ...(peepholes ? { peep: { shape: [3, o, ...plane] } } : {}),
  };
  const scan = (op: Ops, v: Record<string, Tensor>) => op.clstmScan(v.x!, { wx: v.wx!, bx: v.bx!, wh: v.wh!, bh: v.bh!, ...(peepholes ? { peep: v.peep! } : {}) },
    { direction, ...(initialState ? { h0: v.h0!, c0: v.c0! } : {}), ...(zeroState ? { zeroState: true } : {}) });
  return {
    name,
    inputs: {
      x: { shape: x }, wx: { shape: [4 * o, c, k, k] }, bx: { shape: [4 * o] }, wh: { shape: [4 * o, o, k, k] },
      bh: { shape: [4 * o] }, ...state,
    },
    forward: (op, v) => {
      const r = scan(op, v);
      for (const t of [r.hLast, r.cLast]) t.dispose();
      r.saved.dispose();
      return r.h;
    },
    backward: (op, v, _y, dy) => {
      const r = scan(op, v);
      const g = op.clstmScanBackward(r.saved, { dh: dy });
      for (const t of [r.h, r.hLast, r.cLast]) t.dispose();
      r.saved.dispose();
      return { x: g.dx, wx: g.grads.dwx, bx: g.grads.dbx, wh: g.grads.dwh, bh: g.grads.dbh,
        ...(initialState ? { h0: g.dh0!, c0: g.dc0! } : {}), ...(peepholes ? { peep: g.grads.dpeep! } : {}) };
    },
    tolerance: { abs: 2e-5, rel: 2e-5 },
    finiteDifference: { step: 1e-2, tolerance: { abs: 5e-3, rel: 1e-2 } },
  };
}

opCases.push(
  clstmCase('clstmScan +D, T=1 (no recurrence)', [1, 2, 1, 4, 3], 2, 3, 0, false),
  lstmCellCase('lstmCell planes (2, 4*2, 3, 4) with recurrent and cPrev', [2, 8, 3, 4], true, true),
  lstmCellCase('lstmCell dense (3, 4*3), no cPrev', [3, 12], false, false),
  clstmCase('clstmScan -H, T=4', [1, 2, 3, 4, 3], 2, 3, 3, false),
  clstmCase('clstmScan +W with initial state', [2, 1, 3, 3, 3], 2, 3, 4, true),
  clstmCase('clstmScan -D, T=1 with initial state', [1, 2, 1, 3, 4], 1, 3, 1, true),
  clstmCase('clstmScan +D with peepholes (ConvLSTM, Shi et al.)', [2, 2, 3, 3, 4], 2, 3, 0, false, true),
  clstmCase('clstmScan -D with peepholes and initial state', [1, 1, 4, 3, 3], 2, 3, 1, true, true),
  clstmCase('clstmScan -D from a zero state (bh in the first plane), peepholes', [2, 2, 3, 3, 4], 2, 3, 1, false, true, true),
);

// The dense recurrent op (one layer, one direction of torch.nn.RNN / LSTM / GRU).
// The case's output stacks y with the final state(s), so their gradients are checked too.
function rnnCase(name: string, cell: 'lstm' | 'gru' | 'rnnTanh' | 'rnnRelu', options: {
  T: number; N: number; I: number; H: number; P?: number; batchFirst?: boolean; reverse?: boolean; lengths?: number[]; initialState?: boolean;
}, fd = true): OpCase {
  const { T, N, I, H } = options;
  const P = options.P ?? H;
  const gates = cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1;
  const lstm = cell === 'lstm';
  const inputs: Record<string, InputSpec> = {
    x: { shape: options.batchFirst ? [N, T, I] : [T, N, I] }, wih: { shape: [gates * H, I] }, whh: { shape: [gates * H, P] },
    bih: { shape: [gates * H] }, bhh: { shape: [gates * H] },
    ...(P !== H ? { whr: { shape: [P, H] } } : {}),
    ...(options.initialState ? { h0: { shape: [N, P] }, ...(lstm ? { c0: { shape: [N, H] } } : {}) } : {}),
  };
  const run = (op: Ops, v: Record<string, Tensor>) => op.rnn(v.x!, { wih: v.wih!, whh: v.whh!, bih: v.bih!, bhh: v.bhh!, ...(v.whr ? { whr: v.whr } : {}) }, {
    cell, ...(options.batchFirst ? { batchFirst: true } : {}), ...(options.reverse ? { reverse: true } : {}),
    ...(options.lengths ? { lengths: options.lengths } : {}), ...(v.h0 ? { h0: v.h0 } : {}), ...(v.c0 ? { c0: v.c0 } : {}),
  });
  // (T, N, P) or (N, T, P) y as rows of P, then hN (N, P), then cN (N, H) when P = H.
  const stackOutputs = (op: Ops, r: { y: Tensor; hN: Tensor; cN?: Tensor }) => {
    const parts = [r.y.reshape([T * N, P]), r.hN, ...(r.cN && P === H ? [r.cN] : [])];
    return op.concat(parts, 0);
  };
  const split = (op: Ops, dy: Tensor) => ({
    dy: op.narrow(dy, 0, 0, T * N).reshape(options.batchFirst ? [N, T, P] : [T, N, P]),
    dhN: op.narrow(dy, 0, T * N, N),
    ...(lstm && P === H ? { dcN: op.narrow(dy, 0, T * N + N, N) } : {}),
  });
  return {
    name,
    inputs,
    forward: (op, v) => {
      const r = run(op, v);
      r.saved.dispose();
      return stackOutputs(op, r);
    },
    backward: (op, v, _y, dy) => {
      const r = run(op, v);
      const g = op.rnnBackward(r.saved, split(op, dy));
      r.saved.dispose();
      return {
        x: g.dx, wih: g.dwih, whh: g.dwhh, bih: g.dbih!, bhh: g.dbhh!, ...(g.dwhr ? { whr: g.dwhr } : {}),
        ...(g.dh0 ? { h0: g.dh0 } : {}), ...(g.dc0 ? { c0: g.dc0 } : {}),
      };
    },
    tolerance: { abs: 2e-5, rel: 2e-5 },
    ...(fd ? { finiteDifference: { step: 1e-2, tolerance: { abs: 5e-3, rel: 1e-2 } } } : {}),
  };
}

opCases.push(
  rnnCase('rnn lstm T=4 with initial state', 'lstm', { T: 4, N: 2, I: 3, H: 2, initialState: true }),
  rnnCase('rnn lstm reverse, batch first, ragged lengths [1, 4, 3]', 'lstm', { T: 4, N: 3, I: 2, H: 2, batchFirst: true, reverse: true, lengths: [1, 4, 3], initialState: true }),
  rnnCase('rnn lstm projected (P=2 of H=3), ragged', 'lstm', { T: 3, N: 2, I: 2, H: 3, P: 2, lengths: [3, 2], initialState: true }),
  rnnCase('rnn gru T=4 with initial state, ragged [2, 4]', 'gru', { T: 4, N: 2, I: 3, H: 2, lengths: [2, 4], initialState: true }),
  rnnCase('rnn gru reverse, batch first', 'gru', { T: 3, N: 2, I: 2, H: 3, batchFirst: true, reverse: true }),
  rnnCase('rnn tanh T=5, reverse, ragged [5, 3]', 'rnnTanh', { T: 5, N: 2, I: 2, H: 3, reverse: true, lengths: [5, 3], initialState: true }),
  rnnCase('rnn relu T=4 with initial state', 'rnnRelu', { T: 4, N: 2, I: 3, H: 3, initialState: true }, false),
);

// The whole PyraMiD-LSTM layer (six directions, one fused op on a tape) on a tiny volume.
function pyramidCase(name: string, x: number[], o: number, k: number): OpCase {
  const c = x[1]!;
  const weightInputs: Record<string, InputSpec> = {};
  for (let d = 0; d < 6; ++d) {
    weightInputs[`wx${d}`] = { shape: [4 * o, c, k, k] };
    weightInputs[`bx${d}`] = { shape: [4 * o] };
    weightInputs[`wh${d}`] = { shape: [4 * o, o, k, k] };
    weightInputs[`bh${d}`] = { shape: [4 * o] };
  }
  const weights = (v: Record<string, Tensor>) => [0, 1, 2, 3, 4, 5].map((d) => ({ wx: v[`wx${d}`]!, bx: v[`bx${d}`]!, wh: v[`wh${d}`]!, bh: v[`bh${d}`]! }));
  return {
    name,
    inputs: { x: { shape: x }, ...weightInputs },
    forward: (op, v) => {
      const r = op.pyramidLstm(v.x!, weights(v));
      r.saved.dispose();
      return r.y;
    },
    backward: (op, v, _y, dy) => {
      const r = op.pyramidLstm(v.x!, weights(v));
      const g = op.pyramidLstmBackward(r.saved, dy);
      r.y.dispose();
      r.saved.dispose();
      const out: Record<string, Tensor> = { x: g.dx };
      g.grads.forEach((w, d) => Object.assign(out, { [`wx${d}`]: w.dwx, [`bx${d}`]: w.dbx, [`wh${d}`]: w.dwh, [`bh${d}`]: w.dbh }));
      return out;
    },
    tolerance: { abs: 2e-5, rel: 2e-5 },
    finiteDifference: { step: 1e-2, tolerance: { abs: 5e-3, rel: 1e-2 } },
  };
}

opCases.push(pyramidCase('pyramidLstm C=2 O=1 k=3 on 3x3x4', [1, 2, 3, 3, 4], 1, 3));

// The consistent ConvLSTM's loss: soft IoU of sigmoid masks against two true masks,
// matched by the Hungarian method. A host-side op; its explicit gradient is derived
// here again from the paper's formula, for the matching the loss chose.
const softIoUTruth = (() => {
  const t = new Float32Array(2 * 2 * 3 * 3);
  for (let k = 0; k < 18; ++k) t[k] = (k * 7) % 5 < 2 ? 1 : 0;
  for (let k = 0; k < 18; ++k) t[18 + k] = (k * 3) % 4 === 0 ? 1 : 0;
  return { data: t, count: 2 };
})();
opCases.push({
  name: 'matchedSoftIoU: three sigmoid masks against two objects (Hungarian matching)',
  inputs: { x: { shape: [3, 1, 2, 3, 3] } },
  forward: (o, v) => {
    const masks = o.sigmoid(v.x!);
    const loss = matchedSoftIoU(masks, softIoUTruth).loss;
    masks.dispose();
    return loss;
  },
  backward: (o, v, _y, dy) => {
    const masks = o.sigmoid(v.x!);
    const p = masks.toArray();
    const n = 18, m = 3, g = 2;
    const { assignment } = matchedSoftIoU(masks, softIoUTruth);
    const matched = new Int32Array(m).fill(-1);
    assignment.rows.forEach((r, k) => (matched[r] = assignment.cols[k]!));
    const scale = dy.toArray()[0]! / Math.max(m, g);
    const dm = new Float32Array(m * n);
    for (let i = 0; i < m; ++i) {
      const j = matched[i]!;
      if (j < 0) {
        dm.fill(scale / n, i * n, (i + 1) * n);
        continue;
      }
      let inter = 0, sumP = 0, sumT = 0;
      for (let k = 0; k < n; ++k) {
        inter += p[i * n + k]! * softIoUTruth.data[j * n + k]!;
        sumP += p[i * n + k]!;
        sumT += softIoUTruth.data[j * n + k]!;
      }
      const union = sumP + sumT - inter;
      // loss term 1 - I/U: d/dp_k = -(t_k U - I (1 - t_k)) / U^2
      for (let k = 0; k < n; ++k) {
        const tk = softIoUTruth.data[j * n + k]!;
        dm[i * n + k] = (scale * -(tk * union - inter * (1 - tk))) / (union * union);
      }
    }
    const dmasks = Tensor.fromArray(dm, masks.shape, { device: masks.device });
    const dx = o.activationBackward('sigmoid', v.x!, masks, dmasks);
    for (const t of [masks, dmasks]) t.dispose();
    return { x: dx };
  },
  tolerance: { abs: 1e-6, rel: 1e-5 },
  finiteDifference: { step: 1e-3, tolerance: { abs: 1e-4, rel: 1e-3 } },
});
