// The one file that loads the native addon. It declares the binding's exact
// signatures; every other module goes through these types. Handles are opaque:
// JS never sees a pointer.
import * as path from 'node:path';
import * as fs from 'node:fs';

declare const handleBrand: unique symbol;
/** An opaque reference to native tensor memory. Only lib/tensor.ts holds these. */
export interface NativeTensorHandle {
  readonly [handleBrand]: true;
}

export type DeviceName = 'cpu' | 'cuda';
export type ImplementationName = 'optimized' | 'reference';
export type ActivationName = 'tanh' | 'sigmoid' | 'relu';
export type UpsampleModeName = 'nearest' | 'linear';

export interface NativeConvGeometry {
  stride: number[];
  padding: number[];
  dilation: number[];
  groups: number;
}

export interface NativePoolGeometry {
  kernel: number[];
  stride: number[];
  padding: number[];
  dilation: number[];
  countIncludePad: boolean;
}

export interface NativeConvGrads {
  dx: NativeTensorHandle | null;
  dw: NativeTensorHandle | null;
  db: NativeTensorHandle | null;
}

/** One form of the adapted Rand error with its precision and recall. */
export interface NativeAdaptedRand {
  adaptedRandError: number;
  precision: number;
  recall: number;
}

export interface NativeBackendStatus {
  name: string;
  available: boolean;
  reason: string;
  detail: string;
}

declare const savedBrand: unique symbol;
/** An opaque reference to what a forward pass saved for its backward pass. */
export interface NativeSavedHandle {
  readonly [savedBrand]: true;
}

export interface NativeClstmWeights {
  wx: NativeTensorHandle;
  bx: NativeTensorHandle;
  wh: NativeTensorHandle;
  bh: NativeTensorHandle;
  peep?: NativeTensorHandle;
}

export interface NativeClstmGrads {
  dwx: NativeTensorHandle;
  dbx: NativeTensorHandle;
  dwh: NativeTensorHandle;
  dbh: NativeTensorHandle;
  dpeep?: NativeTensorHandle;
}

export type NativeRnnCell = 'rnnTanh' | 'rnnRelu' | 'lstm' | 'gru';

export interface NativeRnnWeights {
  wih: NativeTensorHandle;
  whh: NativeTensorHandle;
  bih?: NativeTensorHandle;
  bhh?: NativeTensorHandle;
  whr?: NativeTensorHandle;
}

export interface NativeRnnForward {
  y: NativeTensorHandle;
  hN: NativeTensorHandle;
  cN: NativeTensorHandle | null;
  saved: NativeSavedHandle;
}

export interface NativeRnnBackward {
  dx: NativeTensorHandle;
  dwih: NativeTensorHandle;
  dwhh: NativeTensorHandle;
  dbih: NativeTensorHandle | null;
  dbhh: NativeTensorHandle | null;
  dwhr: NativeTensorHandle | null;
  dh0: NativeTensorHandle | null;
  dc0: NativeTensorHandle | null;
}

export interface NativeScanForward {
  h: NativeTensorHandle;
  hLast: NativeTensorHandle;
  cLast: NativeTensorHandle;
  saved: NativeSavedHandle;
}

export type NativeScanBackward = NativeClstmGrads & { dx: NativeTensorHandle; dh0: NativeTensorHandle | null; dc0: NativeTensorHandle | null };

export interface NativePyramidForward {
  y: NativeTensorHandle;
  saved: NativeSavedHandle;
}

export interface NativePyramidBackward {
  dx: NativeTensorHandle;
  grads: NativeClstmGrads[];
}

export interface NativeOptimizerHyper {
  lr: number;
  rho: number;
  rhoM: number;
  momentum: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

type H = NativeTensorHandle;
type Impl = ImplementationName;

export interface NativeBinding {
  backends(): NativeBackendStatus[];
  primitiveCacheStats(): { hits: number; misses: number; entries: number };
  profileStart(): void;
  setConvMath(mode: 'fp32' | 'tf32' | 'bf16' | 'fp16'): void;
  synchronize(device: DeviceName): void;
  getConvMath(): 'fp32' | 'tf32' | 'bf16' | 'fp16';
  /** Empty when the CPU backend computes bf16 convolutions, else why not. */
  cpuBf16Unsupported(): string;
  profileStop(): Array<{ op: string; backend: string; shapes: string; count: number; totalMs: number; flops: number }>;

  tensorFromArray(data: Float32Array, shape: number[], device: DeviceName): H;
  tensorFull(shape: number[], value: number, device: DeviceName): H;
  cachedBytes(device: DeviceName): number;
  distributedStatus(): { available: boolean; reason: string; plugin: string; cudaCollective: string; ncclReductions: number; reductions: number };
  distributedInit(timeoutSeconds: number): Promise<{ rank: number; size: number; implementation: string }>;
  distributedAllreduceMean(tensors: H[], timeoutSeconds: number, what: string): Promise<H[]>;
  distributedBroadcast(bytes: Uint8Array, root: number, timeoutSeconds: number, what: string): Promise<Uint8Array>;
  distributedAllgather(bytes: Uint8Array, timeoutSeconds: number, what: string): Promise<Uint8Array[]>;
  distributedFinalize(): Promise<void>;
  memoryStats(): Record<DeviceName, { tensors: number; storages: number; bytes: number; peakBytes: number; cachedBytes: number }>;
  resetPeakMemory(device: DeviceName): void;
  releaseCachedMemory(device: DeviceName): number;
  deviceMemory(device: DeviceName): { free: number; total: number };
  tensorShape(t: H): number[];
  tensorDevice(t: H): DeviceName;
  tensorToArray(t: H, into?: Float32Array): Float32Array;
  tensorTo(t: H, device: DeviceName): H;
  tensorReshape(t: H, shape: number[]): H;
  tensorDispose(t: H): void;
  tensorIsDisposed(t: H): boolean;

  conv(impl: Impl, x: H, w: H, bias: H | null, g: NativeConvGeometry): H;
  convBackward(impl: Impl, x: H, w: H, dy: H, g: NativeConvGeometry, needInput: boolean, needWeight: boolean,
    needBias: boolean): NativeConvGrads;
  convAsync(impl: Impl, x: H, w: H, bias: H | null, g: NativeConvGeometry): Promise<H>;
  convBackwardAsync(impl: Impl, x: H, w: H, dy: H, g: NativeConvGeometry, needInput: boolean, needWeight: boolean,
    needBias: boolean): Promise<NativeConvGrads>;
  convTranspose(impl: Impl, x: H, w: H, bias: H | null, g: NativeConvGeometry, outputPadding: number[]): H;
  convTransposeBackward(impl: Impl, x: H, w: H, dy: H, g: NativeConvGeometry, outputPadding: number[],
    needInput: boolean, needWeight: boolean, needBias: boolean): NativeConvGrads;
  pixelwise(impl: Impl, x: H, w: H, bias: H | null): H;
  pixelwiseBackward(impl: Impl, x: H, w: H, dy: H, needInput: boolean, needWeight: boolean,
    needBias: boolean): NativeConvGrads;

  maxPool(impl: Impl, x: H, g: NativePoolGeometry): H;
  maxPoolBackward(impl: Impl, x: H, dy: H, g: NativePoolGeometry): H;
  avgPool(impl: Impl, x: H, g: NativePoolGeometry): H;
  avgPoolBackward(impl: Impl, x: H, dy: H, g: NativePoolGeometry): H;

  upsample(impl: Impl, x: H, size: number[], mode: UpsampleModeName, alignCorners: boolean): H;
  upsampleBackward(impl: Impl, dy: H, inputSize: number[], mode: UpsampleModeName, alignCorners: boolean): H;

  batchNorm(impl: Impl, x: H, gamma: H, beta: H, runningMean: H, runningVar: H, training: boolean, momentum: number,
    eps: number): { y: H; mean: H; invStd: H };
  batchNormBackward(impl: Impl, x: H, gamma: H, mean: H, invStd: H, training: boolean,
    dy: H): { dx: H; dgamma: H; dbeta: H };

  activation(impl: Impl, kind: ActivationName, x: H): H;
  activationBackward(impl: Impl, kind: ActivationName, x: H, y: H, dy: H): H;
  add(impl: Impl, a: H, b: H): H;
  mul(impl: Impl, a: H, b: H): H;
  scale(impl: Impl, x: H, factor: number): H;
  sum(impl: Impl, xs: H[]): H;

  softmax(impl: Impl, x: H): H;
  softmaxBackward(impl: Impl, y: H, dy: H): H;

  permute(impl: Impl, x: H, perm: number[]): H;
  flip(impl: Impl, x: H, axes: number[]): H;
  concat(impl: Impl, xs: H[], axis: number): H;
  clamp(impl: Impl, x: H, lo: number, hi: number): H;
  clampBackward(impl: Impl, x: H, lo: number, hi: number, dy: H): H;
  roundToPrecision(impl: Impl, x: H, format: 'bf16' | 'fp16'): H;
  sumOfSquares(impl: Impl, xs: H[]): number;
  narrow(impl: Impl, x: H, axis: number, start: number, length: number): H;
  narrowBackward(impl: Impl, dy: H, inputShape: number[], axis: number, start: number): H;
  /** Index of the first tensor holding a NaN or Inf, or -1 (one device read-back per device). */
  firstNonFinite(xs: H[]): number;

  clstmScan(impl: Impl, x: H, weights: NativeClstmWeights, direction: number, h0: H | null,
    c0: H | null, recompute: boolean, async: false, zeroState: boolean): NativeScanForward;
  clstmScan(impl: Impl, x: H, weights: NativeClstmWeights, direction: number, h0: H | null,
    c0: H | null, recompute: boolean, async: true, zeroState: boolean): Promise<NativeScanForward>;
  clstmScanBackward(impl: Impl, saved: NativeSavedHandle, dh: H | null, dhLast: H | null, dcLast: H | null, async: false): NativeScanBackward;
  clstmScanBackward(impl: Impl, saved: NativeSavedHandle, dh: H | null, dhLast: H | null, dcLast: H | null,
    async: true): Promise<NativeScanBackward>;
  rnn(impl: Impl, cell: NativeRnnCell, x: H, weights: NativeRnnWeights, reverse: boolean, batchFirst: boolean, lengths: number[] | null,
    h0: H | null, c0: H | null, async: false): NativeRnnForward;
  rnn(impl: Impl, cell: NativeRnnCell, x: H, weights: NativeRnnWeights, reverse: boolean, batchFirst: boolean, lengths: number[] | null,
    h0: H | null, c0: H | null, async: true): Promise<NativeRnnForward>;
  rnnBackward(impl: Impl, saved: NativeSavedHandle, dy: H | null, dhN: H | null, dcN: H | null, async: false): NativeRnnBackward;
  lstmCell(impl: Impl, pre: H, recurrent: H | null, cPrev: H | null): { acts: H; c: H; h: H };
  lstmCellBackward(impl: Impl, acts: H, cPrev: H | null, c: H, dh: H | null, dc: H | null): { dgates: H; dcPrev: H | null };
  rnnBackward(impl: Impl, saved: NativeSavedHandle, dy: H | null, dhN: H | null, dcN: H | null, async: true): Promise<NativeRnnBackward>;
  pyramidLstm(impl: Impl, x: H, weights: NativeClstmWeights[], async: false, keepForBackward: boolean, recompute: boolean,
    groupLimit: number): NativePyramidForward;
  pyramidLstm(impl: Impl, x: H, weights: NativeClstmWeights[], async: true, keepForBackward: boolean, recompute: boolean,
    groupLimit: number): Promise<NativePyramidForward>;
  pyramidLstmBackward(impl: Impl, saved: NativeSavedHandle, dy: H, async: false): NativePyramidBackward;
  pyramidLstmBackward(impl: Impl, saved: NativeSavedHandle, dy: H, async: true): Promise<NativePyramidBackward>;
  savedDispose(saved: NativeSavedHandle): void;
  savedBytes(saved: NativeSavedHandle): number;
  savedShare(saved: NativeSavedHandle): NativeSavedHandle;

  metricsConnectedComponents(foreground: ArrayLike<number>, shape: number[], connectivity: number): { labels: Int32Array; count: number };
  metricsThresholdSegmentation(boundary: Float32Array, shape: number[], threshold: number, connectivity: number): Int32Array;
  metricsPriorityFlood(boundary: Float32Array, shape: number[], seedThreshold: number, maskThreshold: number, minSize: number,
    connectivity: number): Int32Array;
  metricsWatershed(affinities: Float32Array, shape: number[], threeD: boolean, low: number, high: number,
    sizeThresholds: Array<[number, number]>, minSize: number): {
    segments: Int32Array; basins: number; count: number; treeA: Int32Array; treeB: Int32Array; treeWeight: Float32Array;
  };
  metricsBoundaryAffinities(boundary: Float32Array, shape: number[], threeD: boolean): Float32Array;
  metricsCutTree(segments: Int32Array, treeA: Int32Array, treeB: Int32Array, treeWeight: Float32Array, threshold: number): Int32Array;
  metricsRand(pred: ArrayLike<number>, truth: ArrayLike<number>, ignoreTruthZero: boolean): {
    vMerge: number; vSplit: number; fScore: number; randIndex: number; viSplit: number; viMerge: number;
    skimage: NativeAdaptedRand; snemi3d: NativeAdaptedRand; singletons: NativeAdaptedRand;
  };
  metricsConfusion(pred: ArrayLike<number>, truth: ArrayLike<number>, classes: number): Float64Array;
  metricsPixelError(probability: Float32Array, truth: Float32Array, thresholdOrSteps: number, search: boolean): { error: number; threshold: number };
  metricsSurfaceDistances(a: ArrayLike<number>, b: ArrayLike<number>, shape: number[], spacing: number[]): Float64Array;
  metricsWarpingError(pred: ArrayLike<number>, truth: ArrayLike<number>, shape: number[]): { warpingError: number; pixelError: number };
  metricsRelabelSlices(ids: ArrayLike<number>, shape: number[], connectivity: number): Int32Array;
  metricsGrowSegments(labels: ArrayLike<number>, boundary: Float32Array, shape: number[], connectivity: number): Int32Array;
  metricsSliceRandCounts(pred: ArrayLike<number>, truth: ArrayLike<number>, shape: number[], predictedZero: 'exclude' | 'singletons' | 'oneSegment'): Float64Array;
  metricsRand2dSweep(boundary: Float32Array, truth: ArrayLike<number>, shape: number[], thresholds: number[], method: {
    watershed: boolean; low: number; high: number; sizeThreshold: number; connectivity: number; grow: boolean;
    predictedZero: 'exclude' | 'singletons' | 'oneSegment';
  }): Promise<{ counts: Float64Array; segments: Int32Array }>;

  agglomerationFragments(affinities: Float32Array, shape: number[], low: number, high: number): Promise<{ fragments: Int32Array; count: number }>;
  agglomerationRegionGraph(fragments: Int32Array, affinities: Float32Array, shape: number[],
    faces: [Int32Array | null, Int32Array | null, Int32Array | null], withLevels: boolean): Promise<Uint8Array>;
  agglomerationAgglomerateGraphs(graphs: Uint8Array[], fragmentCount: number, scoring: 'mean' | 'quantile', quantile: number,
    thresholds: number[]): Promise<Int32Array[]>;
  agglomerationAgglomerateVolume(fragments: Int32Array, affinities: Float32Array, shape: number[], scoring: 'mean' | 'quantile',
    quantile: number, thresholds: number[]): Promise<Int32Array[]>;
  agglomerationRelabel(ids: Int32Array, table: Int32Array): Int32Array;

  loss(impl: Impl, kind: string, probs: H, labels: H, mask: H | null, classWeights: H | null): { loss: number; grad: H };
  optimizerUpdate(impl: Impl, kind: string, hyper: NativeOptimizerHyper, param: H, grad: H, state1: H, state2: H): void;
}

function candidatePaths(): string[] {
  // SEGVOL_ADDON names one addon file to load instead, e.g. the emulated-CUDA
  // test build (build-emulated/Release/segvol.node, see `npm run test:emulated`).
  const override = process.env.SEGVOL_ADDON;
  if (override) return [path.resolve(override)];
  const root = path.resolve(__dirname, '..', '..', '..');  // dist/lib/core -> package root
  const fromSource = path.resolve(__dirname, '..', '..');  // lib/core -> package root when run from sources (ts-node)
  const out: string[] = [];
  for (const base of [root, fromSource]) {
    out.push(path.join(base, 'build', 'Release', 'segvol.node'), path.join(base, 'build', 'Debug', 'segvol.node'));
  }
  return out;
}

/**
 * Loads the addon with OpenMP's waiting threads passive unless the user chose a policy.
 * Promise work runs on the compute thread and synchronous work on the main thread, so a
 * process soon holds two OpenMP teams; libgomp then counts more threads than cores and cuts
 * its spin-waits short, and whichever path ran second measured 15-40% slower than the first
 * (docs/benchmarks.md). With passive waiting both paths wait alike, and an idle team never
 * spins against a working one on a shared machine. libgomp reads the variable once, as the
 * addon loads it; the variable is removed again so that child processes see the user's
 * environment unchanged.
 */
function requireWithWaitPolicy(file: string): NativeBinding {
  const chosen = process.env.OMP_WAIT_POLICY !== undefined || process.env.GOMP_SPINCOUNT !== undefined;
  if (!chosen) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  try {
    return require(file) as NativeBinding;
  } finally {
    if (!chosen) delete process.env.OMP_WAIT_POLICY;
  }
}

function load(): NativeBinding {
  const tried = candidatePaths();
  for (const file of tried) {
    if (fs.existsSync(file)) {
      return requireWithWaitPolicy(file);
    }
  }
  // Where segvol is installed: the build script sits beside lib/ (sources) or dist/ (the package).
  const packageRoot = [path.resolve(__dirname, '..', '..', '..'), path.resolve(__dirname, '..', '..')]
    .find((p) => fs.existsSync(path.join(p, 'scripts', 'build-native.js'))) ?? path.resolve(__dirname, '..', '..', '..');
  const script = path.join(packageRoot, 'scripts', 'build-native.js');
  const error = new Error(
    `segvol: the native addon is not built (looked for ${tried.join(', ')}).\n` +
      'This happens when npm skipped install scripts (npm install --ignore-scripts, or npm 11\'s allowScripts policy).\n' +
      'Possible solutions:\n' +
      `  - build it now: node ${script}\n` +
      '  - or let npm run segvol\'s install script: npm install-scripts approve segvol && npm rebuild segvol\n' +
      '  - the build needs cmake, g++ and oneDNN: sudo apt-get install -y cmake g++ libdnnl-dev',
  ) as Error & { code: string };
  error.code = 'ERR_NOT_BUILT';
  throw error;
}

export const native: NativeBinding = load();
