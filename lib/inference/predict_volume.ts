// Whole-volume inference by sliding windows blended with a Gaussian weight per
// window (the PyraMiD-LSTM paper's stitching): each window's class probabilities
// are weighted most at its centre, so borders, where a window sees the least
// context, count least. Model activations are bounded by the window.
import { describe, SegvolError } from '../core/errors';
import type { ModelBase } from '../nn/model';
import { Tensor } from '../core/tensor';
import { preprocessVolume } from '../data/preprocess';

export interface StitchOptions {
  /** Window (d, h, w); clipped to the volume. */
  window: readonly [number, number, number];
  /** Fraction of a window shared with the next one along each axis (default 0.5). */
  overlap?: number;
  /** Gaussian sigma as a fraction of the window size per axis (default 1/8). */
  sigma?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Apply the model's recorded pre-processing (model.info.normalize) to the whole volume first (default true). */
  preprocess?: boolean;
}

/** Window starts along one axis: evenly stepped, the last flush with the end. */
export function windowStarts(size: number, window: number, overlap: number): number[] {
  if (window >= size) return [0];
  const step = Math.max(1, Math.floor(window * (1 - overlap)));
  const starts: number[] = [];
  for (let s = 0; s + window < size; s += step) starts.push(s);
  starts.push(size - window);
  return starts;
}

/** The blending weight of a window: a separable Gaussian, 1 at the centre, floored at 1e-3 so every voxel counts. */
export function gaussianWeight(window: readonly [number, number, number], sigma: number): Float32Array {
  const axes = window.map((n) => {
    const s = Math.max(sigma * n, 1e-6);
    const c = (n - 1) / 2;
    return Float64Array.from({ length: n }, (_, i) => Math.exp(-((i - c) ** 2) / (2 * s * s)));
  });
  const [d, h, w] = window;
  const out = new Float32Array(d * h * w);
  for (let z = 0; z < d; ++z)
    for (let y = 0; y < h; ++y)
      for (let x = 0; x < w; ++x) out[(z * h + y) * w + x] = Math.max(axes[0]![z]! * axes[1]![y]! * axes[2]![x]!, 1e-3);
  return out;
}

/**
 * Class probabilities (1, K, D, H, W) for a volume x: (1, C, D, H, W) of any size, from
 * overlapping windows blended with Gaussian weights.
 */
export async function predictVolume(model: ModelBase, x: Tensor, options: StitchOptions): Promise<Tensor> {
  if (x.rank !== 5 || x.shape[0] !== 1) {
    throw new SegvolError('ERR_SHAPE', `predictVolume: expected a volume (1, C, D, H, W), received (${x.shape.join(', ')})`);
  }
  if (!Array.isArray(options.window) || options.window.length !== 3 || options.window.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `predictVolume: expected window as three positive integers (d, h, w), received ${describe(options.window)}`);
  }
  const overlap = options.overlap ?? 0.5;
  if (!(overlap >= 0 && overlap < 1)) throw new SegvolError('ERR_ARGUMENT', `predictVolume: expected 0 <= overlap < 1, received ${overlap}`);
  const [, c, D, H, W] = x.shape as [number, number, number, number, number];
  const window = [Math.min(options.window[0], D), Math.min(options.window[1], H), Math.min(options.window[2], W)] as const;
  const [wd, wh, ww] = window;
  const weight = gaussianWeight(window, options.sigma ?? 1 / 8);
  const zs = windowStarts(D, wd, overlap), ys = windowStarts(H, wh, overlap), xs = windowStarts(W, ww, overlap);
  const total = zs.length * ys.length * xs.length;
  // Pre-processing is per slice of the whole volume, never per window (a window's statistics differ).
  const normalize = options.preprocess === false ? 'none' : model.info.normalize ?? 'none';
  const input = preprocessVolume(x.toArray(), x.shape, normalize);
  const k = model.outChannels;
  const device = model.device;
  const sum = new Float32Array(k * D * H * W);
  const norm = new Float32Array(D * H * W);
  const crop = new Float32Array(c * wd * wh * ww);
  let done = 0;
  for (const z0 of zs)
    for (const y0 of ys)
      for (const x0 of xs) {
        if (options.signal?.aborted) throw new SegvolError('ERR_ARGUMENT', 'predictVolume: aborted');
        for (let ch = 0; ch < c; ++ch)
          for (let z = 0; z < wd; ++z)
            for (let y = 0; y < wh; ++y) {
              const src = ((ch * D + z0 + z) * H + y0 + y) * W + x0;
              crop.set(input.subarray(src, src + ww), ((ch * wd + z) * wh + y) * ww);
            }
        const window5 = Tensor.fromArray(crop, [1, c, wd, wh, ww], { device });
        const probs = await model.predict(window5, { preprocess: false });
        window5.dispose();
        const p = probs.toArray();
        probs.dispose();
        for (let z = 0; z < wd; ++z)
          for (let y = 0; y < wh; ++y)
            for (let xx = 0; xx < ww; ++xx) {
              const local = (z * wh + y) * ww + xx;
              const global = ((z0 + z) * H + y0 + y) * W + x0 + xx;
              const g = weight[local]!;
              norm[global]! += g;
              for (let cls = 0; cls < k; ++cls) sum[cls * D * H * W + global]! += g * p[cls * wd * wh * ww + local]!;
            }
        options.onProgress?.(++done, total);
      }
  for (let cls = 0; cls < k; ++cls)
    for (let i = 0; i < D * H * W; ++i) sum[cls * D * H * W + i]! /= norm[i]!;
  return Tensor.fromArray(sum, [1, k, D, H, W]);
}
