// Whole-volume inference by sliding windows blended with a Gaussian weight per
// window (the PyraMiD-LSTM paper's stitching): each window's class probabilities
// are weighted most at its centre, so borders, where a window sees the least
// context, count least. Model activations are bounded by the window.
import { describe, SegvolError } from '../core/errors';
import { NonFiniteScan, nonFinitePolicy } from '../core/non_finite';
import { normalizationOf, type ModelBase } from '../nn/model';
import { Tensor } from '../core/tensor';
import { preprocessVolume, preprocessZeroingNonFinite } from '../data/preprocess';
import { flipSets, predictWindowBatch, resolveOverlap, resolveTta, resolveWindowBatch, type WindowingOptions } from './windows';

export interface StitchOptions extends WindowingOptions {
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

/** Index i of an axis of length n, mirrored at the borders (reflection without repeating the edge). */
export function mirror(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n - 2;
  const m = ((i % period) + period) % period;
  return m < n ? m : period - m;
}

/** A (C, D, H, W) volume padded by lo/hi voxels per axis with mirrored borders. */
function mirrorPad(data: Float32Array, c: number, dims: readonly number[], lo: readonly number[], hi: readonly number[]): Float32Array {
  const [D, H, W] = dims as [number, number, number];
  const pd = D + lo[0]! + hi[0]!, ph = H + lo[1]! + hi[1]!, pw = W + lo[2]! + hi[2]!;
  const out = new Float32Array(c * pd * ph * pw);
  const xs = Int32Array.from({ length: pw }, (_, x) => mirror(x - lo[2]!, W));
  for (let ch = 0; ch < c; ++ch)
    for (let z = 0; z < pd; ++z)
      for (let y = 0; y < ph; ++y) {
        const src = ((ch * D + mirror(z - lo[0]!, D)) * H + mirror(y - lo[1]!, H)) * W;
        const dst = ((ch * pd + z) * ph + y) * pw;
        for (let x = 0; x < pw; ++x) out[dst + x] = data[src + xs[x]!]!;
      }
  return out;
}

/**
 * Class probabilities (1, K, D, H, W) for a volume of any size, from overlapping windows
 * blended with Gaussian weights. x: (1, C, D, H, W), or one such tensor per input name for
 * a model with several inputs (an image and a boundary map). `window` is the output window;
 * a 'valid' network (N4, VD2D, VD2D3D) reads its field of view around it, the volume's
 * borders mirrored, so every voxel gets a prediction.
 */
export async function predictVolume(model: ModelBase, x: Tensor | Record<string, Tensor>, options: StitchOptions): Promise<Tensor> {
  const names = Object.keys(model.inputs);
  const given: Record<string, Tensor> = x instanceof Tensor ? { [names[0]!]: x } : { ...x };
  // Images (1, C, H, W) are one-slice volumes: predicted as (1, C, 1, H, W), returned as (1, K, H, W).
  const images = Object.values(given);
  if (images.length > 0 && images.every((t) => t instanceof Tensor && t.rank === 4)) {
    for (const [name, t] of Object.entries(given)) {
      if (t.shape[0] !== 1 || t.shape[1] !== model.inputs[name]) {
        throw new SegvolError('ERR_SHAPE', `predictVolume: expected a volume (1, C, D, H, W) or an image (1, C, H, W) with C = ${model.inputs[name]}` +
          `${names.length > 1 ? ` for '${name}'` : ''}, received (${t.shape.join(', ')})`);
      }
    }
    const lifted = Object.fromEntries(Object.entries(given).map(([name, t]) => [name, t.reshape([t.shape[0]!, t.shape[1]!, 1, ...t.shape.slice(2)])]));
    const w = options.window as readonly number[];
    const window = (Array.isArray(w) && w.length === 2 ? [1, w[0]!, w[1]!] : w) as [number, number, number];
    try {
      const volume = await predictVolume(model, x instanceof Tensor ? lifted[names[0]!]! : lifted, { ...options, window });
      const out = volume.reshape([volume.shape[0]!, volume.shape[1]!, ...volume.shape.slice(3)]);
      volume.dispose();
      return out;
    } finally {
      for (const t of Object.values(lifted)) t.dispose();
    }
  }
  if (x instanceof Tensor && names.length !== 1) {
    throw new SegvolError('ERR_ARGUMENT', `predictVolume: the model has inputs ${names.join(', ')}; give one volume per name`);
  }
  for (const name of names) {
    const t = given[name];
    if (!(t instanceof Tensor)) throw new SegvolError('ERR_ARGUMENT', `predictVolume: missing input '${name}'; the model's inputs: ${names.join(', ')}`);
    if (t.rank !== 5 || t.shape[0] !== 1) {
      throw new SegvolError('ERR_SHAPE', `predictVolume: expected a volume (1, C, D, H, W)${names.length > 1 ? ` for '${name}'` : ''}, received (${t.shape.join(', ')})`);
    }
  }
  const first = given[names[0]!]!;
  const dims = first.shape.slice(2) as [number, number, number];
  for (const name of names) {
    if (given[name]!.shape.slice(2).join() !== dims.join()) {
      throw new SegvolError('ERR_SHAPE', `predictVolume: input '${name}' is (${given[name]!.shape.slice(2).join(', ')}) but '${names[0]}' is (${dims.join(', ')}); they must align`);
    }
  }
  if (!Array.isArray(options.window) || options.window.length !== 3 || options.window.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new SegvolError('ERR_ARGUMENT', `predictVolume: expected window as three positive integers (d, h, w), received ${describe(options.window)}`);
  }
  const overlap = resolveOverlap(options.overlap, 'predictVolume');
  const tta = resolveTta(options.tta, 'predictVolume');
  const batch = resolveWindowBatch(options.windowBatch, 'predictVolume');
  const policy = nonFinitePolicy(options.nonFinite, 'predictVolume');
  const [D, H, W] = dims;
  const window = [Math.min(options.window[0], D), Math.min(options.window[1], H), Math.min(options.window[2], W)] as const;
  const [wd, wh, ww] = window;
  // A dense 'valid' network reads fov - 1 more voxels than it outputs (a 'same' one: fov 1).
  let fov = model.fieldOfView();
  if (!fov || fov.length !== 3) {
    // Not dense (strided pooling, resampling): stitchable when a window's output is that window.
    const shapes = Object.fromEntries(names.map((n) => [n, [1, model.inputs[n]!, ...window]]));
    let out: number[] = [];
    try {
      out = model.outputShape(names.length === 1 ? shapes[names[0]!]! : shapes).slice(2);
    } catch (error) {
      if ((error as SegvolError).code !== 'ERR_SHAPE') throw error;
    }
    if (out.join() !== window.join()) {
      throw new SegvolError('ERR_ARGUMENT', `predictVolume: a (${window.join(', ')}) window gives an output of (${out.join(', ') || 'no shape'}); stitching needs ` +
        'outputs the size of their window, or a dense network (stride 1 throughout) whose output is the window less its field of view');
    }
    fov = [1, 1, 1];
  }
  const lo = fov.map((f) => Math.floor((f - 1) / 2)), hi = fov.map((f, a) => f - 1 - lo[a]!);
  const inWindow = window.map((v, a) => v + fov[a]! - 1) as [number, number, number];
  const padded = dims.map((v, a) => v + fov[a]! - 1);
  const weight = gaussianWeight(window, options.sigma ?? 1 / 8);
  const zs = windowStarts(D, wd, overlap[0]), ys = windowStarts(H, wh, overlap[1]), xs = windowStarts(W, ww, overlap[2]);
  const starts = zs.flatMap((z0) => ys.flatMap((y0) => xs.map((x0) => [z0, y0, x0] as const)));
  const total = starts.length;
  // Non-finite voxels are found before any window is computed.
  const raw = names.map((name) => given[name]!.toArray());
  if (policy === 'error') {
    names.forEach((name, i) => {
      const scan = new NonFiniteScan(['c', 'z', 'y', 'x']);
      scan.volume(raw[i]!, given[name]!.shape.slice(1), 1);
      if (scan.count) throw scan.error('predictVolume', names.length > 1 ? `input '${name}'` : 'the input');
    });
  }
  // Pre-processing is per slice of the whole volume, never per window (a window's statistics differ).
  const prepared = names.map((name, i) => {
    const t = given[name]!;
    const mode = options.preprocess === false ? 'none' : normalizationOf(model.info, name);
    const data = (policy === 'zero' ? preprocessZeroingNonFinite : preprocessVolume)(raw[i]!, t.shape, mode);
    const c = t.shape[1]!;
    return { name, c, data: fov.every((f) => f === 1) ? data : mirrorPad(data, c, dims, lo, hi) };
  });
  const [pd, ph, pw] = padded as [number, number, number];
  const [id, ih, iw] = inWindow;
  const k = model.outChannels;
  const flips = flipSets(tta, inWindow);
  const passSize = Math.min(batch, total);
  const sum = new Float32Array(k * D * H * W);
  const norm = new Float32Array(D * H * W);
  let done = 0;
  for (let b = 0; b < total; b += batch) {
    if (options.signal?.aborted) throw new SegvolError('ERR_ARGUMENT', 'predictVolume: aborted');
    const group = starts.slice(b, b + batch);
    const crops = group.map(([z0, y0, x0]) => Object.fromEntries(prepared.map((p) => {
      const crop = new Float32Array(p.c * id * ih * iw);
      for (let ch = 0; ch < p.c; ++ch)
        for (let z = 0; z < id; ++z)
          for (let y = 0; y < ih; ++y) {
            const src = ((ch * pd + z0 + z) * ph + y0 + y) * pw + x0;
            crop.set(p.data.subarray(src, src + iw), ((ch * id + z) * ih + y) * iw);
          }
      return [p.name, crop];
    })));
    const results = await predictWindowBatch(model, crops, inWindow, passSize, flips);
    group.forEach(([z0, y0, x0], j) => {
      const p = results[j]!;
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
    });
  }
  for (let cls = 0; cls < k; ++cls)
    for (let i = 0; i < D * H * W; ++i) sum[cls * D * H * W + i]! /= norm[i]!;
  return Tensor.fromArray(sum, [1, k, D, H, W]);
}
