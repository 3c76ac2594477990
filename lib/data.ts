// What the trainer consumes: a data source that draws training sub-volumes.
// The full pipeline (formats, rotation, class-aware sampling, prefetch) builds on
// this interface; VolumeSampler serves in-memory volumes (the demo, tests).
import { SegvolError } from './errors';
import { classCounts } from './losses';
import type { Random } from './random';
import { Tensor } from './tensor';

export type Size3 = readonly [number, number, number];

export interface TrainingSample {
  /** (1, C, d, h, w) */
  input: Tensor;
  /** (1, d, h, w) class ids */
  labels: Tensor;
  /** (1, d, h, w), 0 = ignore; optional */
  mask?: Tensor;
}

export interface DataSource {
  readonly channels: number;
  /** Draws one sub-volume of size (d, h, w) using random (so a seed fixes the sequence). */
  sample(random: Random, size: Size3): TrainingSample;
  /** Voxel counts per class over all the data (for global class weights), if known. */
  classCounts?(classes: number): number[];
}

export interface VolumeSamplerOptions {
  /** (C, D, H, W) float voxels, C-order. */
  volume: Float32Array;
  shape: readonly [number, number, number, number];
  /** (D, H, W) class ids. */
  labels: Float32Array;
  mask?: Float32Array;
  /** Flip each axis with probability 0.5 (the paper: z, y and x for EM; x only for MR). */
  flip?: { z?: boolean; y?: boolean; x?: boolean };
  /** Rotate each sub-volume about z by a uniform random angle (the paper's EM setting): bilinear for the image, nearest for labels and mask. */
  rotate?: boolean;
  /** Only sub-volumes holding at least `minVoxels` voxels of class `label` (two-phase training), drawn by up to `tries` attempts. */
  classAware?: { label: number; minVoxels?: number; tries?: number };
}

export class VolumeSampler implements DataSource {
  readonly channels: number;
  private readonly dims: [number, number, number];

  constructor(private readonly options: VolumeSamplerOptions) {
    const [c, d, h, w] = options.shape;
    this.channels = c;
    this.dims = [d, h, w];
    if (options.volume.length !== c * d * h * w) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: volume has ${options.volume.length} values, shape (${options.shape.join(', ')}) needs ${c * d * h * w}`);
    }
    if (options.labels.length !== d * h * w) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: labels have ${options.labels.length} values, expected ${d * h * w} (D, H, W) = (${d}, ${h}, ${w})`);
    }
    if (options.mask && options.mask.length !== d * h * w) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: mask has ${options.mask.length} values, expected ${d * h * w}`);
    }
  }

  sample(random: Random, size: Size3): TrainingSample {
    const [D, H, W] = this.dims;
    const [d, h, w] = size;
    if (d > D || h > H || w > W || d < 1 || h < 1 || w < 1) {
      throw new SegvolError('ERR_SHAPE', `VolumeSampler: sub-volume (${size.join(', ')}) does not fit the volume (${D}, ${H}, ${W})`);
    }
    const aware = this.options.classAware;
    const tries = aware ? aware.tries ?? 50 : 1;
    let sample = this.draw(random, size);
    for (let attempt = 1; attempt < tries; ++attempt) {
      const hits = sample.labelsData.reduce((n, v) => n + (v === aware!.label ? 1 : 0), 0);
      if (hits >= (aware!.minVoxels ?? 1)) break;
      sample = this.draw(random, size);
    }
    const out: TrainingSample = {
      input: Tensor.fromArray(sample.input, [1, this.channels, d, h, w]),
      labels: Tensor.fromArray(sample.labelsData, [1, d, h, w]),
    };
    if (sample.mask) out.mask = Tensor.fromArray(sample.mask, [1, d, h, w]);
    return out;
  }

  /** One random sub-volume: crop (rotated about its z axis if enabled), then flips. */
  private draw(random: Random, size: Size3): { input: Float32Array; labelsData: Float32Array; mask?: Float32Array } {
    const [D, H, W] = this.dims;
    const [d, h, w] = size;
    // A rotated h x w window needs room for its diagonal; smaller volumes are not rotated.
    const radius = Math.sqrt(((h - 1) / 2) ** 2 + ((w - 1) / 2) ** 2);
    const rotate = this.options.rotate === true && 2 * radius + 1 <= Math.min(H, W);
    const angle = rotate ? random.next() * 2 * Math.PI : 0;
    const z0 = random.int(D - d + 1);
    const margin = rotate ? radius : 0;
    const cy = rotate ? margin + random.next() * (H - 1 - 2 * margin) : random.int(H - h + 1) + (h - 1) / 2;
    const cx = rotate ? margin + random.next() * (W - 1 - 2 * margin) : random.int(W - w + 1) + (w - 1) / 2;
    const flip = this.options.flip ?? { z: true, y: true, x: true };
    const fz = flip.z ? random.next() < 0.5 : false;
    const fy = flip.y ? random.next() < 0.5 : false;
    const fx = flip.x ? random.next() < 0.5 : false;
    const c = this.channels;
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const input = new Float32Array(c * d * h * w);
    const labelsData = new Float32Array(d * h * w);
    const mask = this.options.mask ? new Float32Array(d * h * w) : undefined;
    const volume = this.options.volume, labels = this.options.labels;
    for (let z = 0; z < d; ++z) {
      const sz = z0 + (fz ? d - 1 - z : z);
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) {
          const oy = (fy ? h - 1 - y : y) - (h - 1) / 2, ox = (fx ? w - 1 - x : x) - (w - 1) / 2;
          const py = cy + cos * oy - sin * ox, px = cx + sin * oy + cos * ox;
          const dst = (z * h + y) * w + x;
          // Labels and mask: nearest voxel (class ids must not be blended).
          const ny = Math.min(H - 1, Math.max(0, Math.round(py))), nx = Math.min(W - 1, Math.max(0, Math.round(px)));
          const nearest = (sz * H + ny) * W + nx;
          labelsData[dst] = labels[nearest]!;
          if (mask) mask[dst] = this.options.mask![nearest]!;
          if (!rotate) {
            for (let ch = 0; ch < c; ++ch) input[ch * d * h * w + dst] = volume[ch * D * H * W + nearest]!;
            continue;
          }
          const y0 = Math.min(H - 2, Math.max(0, Math.floor(py))), x0 = Math.min(W - 2, Math.max(0, Math.floor(px)));
          const ly = Math.min(1, Math.max(0, py - y0)), lx = Math.min(1, Math.max(0, px - x0));
          for (let ch = 0; ch < c; ++ch) {
            const base = (ch * D + sz) * H * W;
            const a = volume[base + y0 * W + x0]!, b = volume[base + y0 * W + x0 + 1]!;
            const e = volume[base + (y0 + 1) * W + x0]!, f = volume[base + (y0 + 1) * W + x0 + 1]!;
            input[ch * d * h * w + dst] = (a * (1 - lx) + b * lx) * (1 - ly) + (e * (1 - lx) + f * lx) * ly;
          }
        }
    }
    return mask ? { input, labelsData, mask } : { input, labelsData };
  }

  classCounts(classes: number): number[] {
    return classCounts(this.options.labels, classes, this.options.mask);
  }
}

/** Samples from several volumes (e.g. training subjects), each drawn with probability proportional to its voxel count. */
export class MultiSampler implements DataSource {
  readonly channels: number;
  private readonly weights: number[];

  constructor(private readonly sources: readonly VolumeSampler[], sizes: readonly number[]) {
    if (sources.length === 0) throw new SegvolError('ERR_ARGUMENT', 'MultiSampler: expected at least one volume');
    this.channels = sources[0]!.channels;
    sources.forEach((s, i) => {
      if (s.channels !== this.channels) {
        throw new SegvolError('ERR_SHAPE', `MultiSampler: volume ${i} has ${s.channels} channels, volume 0 ${this.channels}`);
      }
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    this.weights = sizes.map((n) => n / total);
  }

  sample(random: Random, size: Size3): TrainingSample {
    let u = random.next();
    let i = 0;
    while (i < this.sources.length - 1 && u >= this.weights[i]!) u -= this.weights[i++]!;
    return this.sources[i]!.sample(random, size);
  }

  classCounts(classes: number): number[] {
    const out = new Array<number>(classes).fill(0);
    for (const s of this.sources) s.classCounts(classes).forEach((n, c) => (out[c]! += n));
    return out;
  }
}
