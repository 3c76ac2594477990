// Pre-processing of the source papers: per-slice standardisation (the default),
// and the PyraMiD-LSTM paper's MR pipeline, per slice: subtract a Gaussian-
// smoothed copy (31x31, sigma 5), then CLAHE (16x16 tiles, clip limit 2).
// The Gaussian and CLAHE follow OpenCV's definitions (GaussianBlur with
// BORDER_REFLECT_101; createCLAHE(clipLimit, tileGridSize)), and are checked
// against it.
import { SegvolError } from '../core/errors';
import type { Normalization } from '../core/normalization';

function sliceShape(shape: readonly number[], length: number, op: string): [number, number, number] {
  const dims = shape.length === 2 ? [1, ...shape] : [...shape];
  const [h, w] = dims.slice(-2) as [number, number];
  const slices = dims.slice(0, -2).reduce((a, b) => a * b, 1);
  if (dims.length < 3 || slices * h * w !== length) {
    throw new SegvolError('ERR_SHAPE', `${op}: expected a shape (..., H, W) holding ${length} values, received (${shape.join(', ')})`);
  }
  return [slices, h, w];
}

/**
 * The mean and standard deviation of values[start, end) over its finite values (NaN and
 * infinities are skipped: a prediction told to zero them keeps its slices' statistics).
 * normalizeSlices and the out-of-core statistics pass both use it, so they agree bit for bit.
 */
export function sliceStatistics(values: ArrayLike<number>, start = 0, end = values.length): [number, number] {
  let sum = 0, count = 0;
  for (let i = start; i < end; ++i) {
    const v = values[i]!;
    if (Number.isFinite(v)) {
      sum += v;
      ++count;
    }
  }
  const mean = count ? sum / count : 0;
  let sq = 0;
  for (let i = start; i < end; ++i) {
    const v = values[i]!;
    if (Number.isFinite(v)) sq += (v - mean) ** 2;
  }
  return [mean, count ? Math.sqrt(sq / count) : 0];
}

/** Each 2D slice (of each channel) to zero mean and unit variance; constant slices become 0. */
export function normalizeSlices(data: Float32Array, shape: readonly number[]): Float32Array {
  const [slices, h, w] = sliceShape(shape, data.length, 'normalizeSlices');
  const out = new Float32Array(data.length);
  const n = h * w;
  for (let s = 0; s < slices; ++s) {
    const [mean, std] = sliceStatistics(data, s * n, (s + 1) * n);
    for (let i = s * n; i < (s + 1) * n; ++i) out[i] = std > 0 ? (data[i]! - mean) / std : 0;
  }
  return out;
}

/** OpenCV's getGaussianKernel(ksize, sigma) (sigma > 0), normalised to sum 1. */
export function gaussianKernel(size: number, sigma: number): Float64Array {
  const k = Float64Array.from({ length: size }, (_, i) => Math.exp(-((i - (size - 1) / 2) ** 2) / (2 * sigma * sigma)));
  const total = k.reduce((a, b) => a + b, 0);
  return k.map((v) => v / total);
}

/** OpenCV's saturate_cast<uchar> of a float: round half to even, clamp to 0..255. */
function saturateByte(v: number): number {
  const floor = Math.floor(v);
  const diff = v - floor;
  const rounded = diff > 0.5 || (diff === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return Math.min(255, Math.max(0, rounded));
}

function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/** Separable Gaussian blur of one (H, W) image, borders reflected without repeating the edge (OpenCV's default). */
export function gaussianBlur2d(image: Float32Array, h: number, w: number, size = 31, sigma = 5): Float32Array {
  const k = gaussianKernel(size, sigma);
  const r = (size - 1) / 2;
  const rows = new Float32Array(h * w);
  for (let y = 0; y < h; ++y)
    for (let x = 0; x < w; ++x) {
      let acc = 0;
      for (let j = -r; j <= r; ++j) acc += k[j + r]! * image[y * w + reflect101(x + j, w)]!;
      rows[y * w + x] = acc;
    }
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; ++y)
    for (let x = 0; x < w; ++x) {
      let acc = 0;
      for (let j = -r; j <= r; ++j) acc += k[j + r]! * rows[reflect101(y + j, h) * w + x]!;
      out[y * w + x] = acc;
    }
  return out;
}

/** Contrast-limited adaptive histogram equalisation of an 8-bit (H, W) image, as OpenCV's CLAHE. */
export function clahe(image: Uint8Array, h: number, w: number, options: { tiles?: readonly [number, number]; clipLimit?: number } = {}): Uint8Array {
  const [tilesY, tilesX] = options.tiles ?? [16, 16];
  const clipLimit = options.clipLimit ?? 2.0;
  // OpenCV pads (reflect-101) to a multiple of the tile grid.
  const H = h % tilesY === 0 ? h : h + tilesY - (h % tilesY);
  const W = w % tilesX === 0 ? w : w + tilesX - (w % tilesX);
  const at = (y: number, x: number) => image[reflect101(y, h) * w + reflect101(x, w)]!;
  const tileH = H / tilesY, tileW = W / tilesX, area = tileH * tileW;
  const lutScale = Math.fround(255 / area);
  const clip = clipLimit > 0 ? Math.max(1, Math.floor((clipLimit * area) / 256)) : 0;
  const luts = new Uint8Array(tilesY * tilesX * 256);
  const hist = new Int32Array(256);
  for (let ty = 0; ty < tilesY; ++ty)
    for (let tx = 0; tx < tilesX; ++tx) {
      hist.fill(0);
      for (let y = ty * tileH; y < (ty + 1) * tileH; ++y) for (let x = tx * tileW; x < (tx + 1) * tileW; ++x) ++hist[at(y, x)]!;
      if (clip > 0) {
        let clipped = 0;
        for (let i = 0; i < 256; ++i) {
          if (hist[i]! > clip) {
            clipped += hist[i]! - clip;
            hist[i] = clip;
          }
        }
        const batch = Math.floor(clipped / 256);
        let residual = clipped - batch * 256;
        for (let i = 0; i < 256; ++i) hist[i]! += batch;
        if (residual > 0) {
          const step = Math.max(Math.floor(256 / residual), 1);
          for (let i = 0; i < 256 && residual > 0; i += step, --residual) ++hist[i]!;
        }
      }
      let sum = 0;
      const base = (ty * tilesX + tx) * 256;
      for (let i = 0; i < 256; ++i) {
        sum += hist[i]!;
        luts[base + i] = saturateByte(Math.fround(sum * lutScale));
      }
    }
  const out = new Uint8Array(h * w);
  // The two tiles around a position and their bilinear weights, in float32 as OpenCV computes them.
  const neighbours = (position: number, inverseTile: number, tiles: number) => {
    const t = Math.fround(Math.fround(position * inverseTile) - 0.5);
    const first = Math.floor(t);
    const weight = Math.fround(t - first);
    return { lo: Math.max(first, 0), hi: Math.min(first + 1, tiles - 1), weight, rest: Math.fround(1 - weight) };
  };
  const invTh = Math.fround(1 / tileH), invTw = Math.fround(1 / tileW);
  for (let y = 0; y < h; ++y) {
    const { lo: ty1, hi: ty2, weight: ya, rest: ya1 } = neighbours(y, invTh, tilesY);
    for (let x = 0; x < w; ++x) {
      const { lo: tx1, hi: tx2, weight: xa, rest: xa1 } = neighbours(x, invTw, tilesX);
      const v = image[y * w + x]!;
      const lut = (ty: number, tx: number) => luts[(ty * tilesX + tx) * 256 + v]!;
      // float32 arithmetic, as OpenCV computes it.
      const f = Math.fround;
      const top = f(f(lut(ty1, tx1) * xa1) + f(lut(ty1, tx2) * xa));
      const bottom = f(f(lut(ty2, tx1) * xa1) + f(lut(ty2, tx2) * xa));
      out[y * w + x] = saturateByte(f(f(top * ya1) + f(bottom * ya)));
    }
  }
  return out;
}

/**
 * The PyraMiD-LSTM paper's MR pre-processing, per slice: subtract the Gaussian-smoothed
 * slice (31x31, sigma 5), rescale its range to 0..255, CLAHE (16x16 tiles, clip 2), back to [0, 1].
 */
export function mrPreprocess(data: Float32Array, shape: readonly number[], options: { size?: number; sigma?: number; tiles?: readonly [number, number]; clipLimit?: number } = {}): Float32Array {
  const [slices, h, w] = sliceShape(shape, data.length, 'mrPreprocess');
  const out = new Float32Array(data.length);
  const n = h * w;
  for (let s = 0; s < slices; ++s) {
    const slice = data.subarray(s * n, (s + 1) * n);
    const blurred = gaussianBlur2d(slice, h, w, options.size ?? 31, options.sigma ?? 5);
    const detail = slice.map((v, i) => v - blurred[i]!);
    let lo = Infinity, hi = -Infinity;
    for (const v of detail) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const bytes = Uint8Array.from(detail, (v) => (hi > lo ? Math.round(((v - lo) / (hi - lo)) * 255) : 0));
    const equalised = clahe(bytes, h, w, { ...(options.tiles ? { tiles: options.tiles } : {}), clipLimit: options.clipLimit ?? 2 });
    for (let i = 0; i < n; ++i) out[s * n + i] = equalised[i]! / 255;
  }
  return out;
}

/**
 * Each (D, H, W) volume of a (..., D, H, W) array (each modality of each case) to zero
 * mean and unit variance over its non-zero voxels; zero voxels (the background outside
 * a skull-stripped brain) stay 0. The usual MR normalisation for BRATS: statistics of the
 * brain only, per modality, per case. A 2D (H, W) array is one image.
 */
/** A voxel 'nonzero' statistics count: non-zero and finite. */
export function countsAsNonzero(v: number): boolean {
  return v !== 0 && Number.isFinite(v);
}

export function normalizeNonzero(data: Float32Array, shape: readonly number[]): Float32Array {
  const total = shape.reduce((a, b) => a * b, 1);
  if (shape.length < 2 || total !== data.length) {
    throw new SegvolError('ERR_SHAPE', `normalizeNonzero: expected a shape (..., D, H, W) holding ${data.length} values, received (${shape.join(', ')})`);
  }
  const n = shape.slice(-Math.min(3, shape.length)).reduce((a, b) => a * b, 1);
  const out = new Float32Array(data.length);
  for (let s = 0; s < data.length; s += n) {
    let count = 0, sum = 0;
    for (let i = s; i < s + n; ++i) if (countsAsNonzero(data[i]!)) { ++count; sum += data[i]!; }
    if (count === 0) continue;
    const mean = sum / count;
    let sq = 0;
    for (let i = s; i < s + n; ++i) if (countsAsNonzero(data[i]!)) sq += (data[i]! - mean) ** 2;
    const std = Math.sqrt(sq / count);
    for (let i = s; i < s + n; ++i) out[i] = data[i] !== 0 && std > 0 ? (data[i]! - mean) / std : 0;
  }
  return out;
}

/**
 * The pre-processing a model may record: per-slice z-scores, the MR pipeline (PyraMiD-LSTM),
 * per-volume z-scores over non-zero voxels (each modality on its own: BRATS), or none.
 */
export { normalizations, type Normalization } from '../core/normalization';

/** Applies one pre-processing to volumes of any (..., H, W) shape: slice by slice, or per (D, H, W) volume for 'nonzero'. */
export function preprocessVolume(data: Float32Array, shape: readonly number[], mode: Normalization): Float32Array {
  if (mode === 'slice') return normalizeSlices(data, shape);
  if (mode === 'mr') return mrPreprocess(data, shape);
  if (mode === 'nonzero') return normalizeNonzero(data, shape);
  if (mode === 'none') return data;
  throw new SegvolError('ERR_ARGUMENT', `pre-processing: expected 'slice', 'mr', 'nonzero' or 'none', received '${String(mode)}'`);
}

/**
 * preprocessVolume for a volume that may hold NaN or infinities, each set to 0 in the result:
 * the statistics ('slice', 'nonzero') skip them; the MR pipeline, which filters whole slices,
 * sees them as their slice's mean of finite values. A volume without any is preprocessVolume's.
 */
export function preprocessZeroingNonFinite(data: Float32Array, shape: readonly number[], mode: Normalization): Float32Array {
  const bad: number[] = [];
  for (let i = 0; i < data.length; ++i) if (!Number.isFinite(data[i]!)) bad.push(i);
  if (bad.length === 0) return preprocessVolume(data, shape, mode);
  let input = data;
  if (mode === 'mr' || mode === 'none') {
    input = Float32Array.from(data);
    if (mode === 'mr') {
      const n = shape[shape.length - 1]! * shape[shape.length - 2]!;
      const means = new Map<number, number>();
      for (const i of bad) {
        const s = Math.floor(i / n);
        if (!means.has(s)) means.set(s, sliceStatistics(data, s * n, (s + 1) * n)[0]);
        input[i] = means.get(s)!;
      }
    }
  }
  const out = mode === 'none' ? input : preprocessVolume(input, shape, mode);
  for (const i of bad) out[i] = 0;
  return out;
}
