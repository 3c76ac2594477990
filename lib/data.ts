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
    const z0 = random.int(D - d + 1), y0 = random.int(H - h + 1), x0 = random.int(W - w + 1);
    const flip = this.options.flip ?? { z: true, y: true, x: true };
    const fz = flip.z ? random.next() < 0.5 : false;
    const fy = flip.y ? random.next() < 0.5 : false;
    const fx = flip.x ? random.next() < 0.5 : false;
    const c = this.channels;
    const input = new Float32Array(c * d * h * w);
    const labels = new Float32Array(d * h * w);
    const mask = this.options.mask ? new Float32Array(d * h * w) : undefined;
    for (let z = 0; z < d; ++z)
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) {
          const sz = z0 + (fz ? d - 1 - z : z), sy = y0 + (fy ? h - 1 - y : y), sx = x0 + (fx ? w - 1 - x : x);
          const src = (sz * H + sy) * W + sx;
          const dst = (z * h + y) * w + x;
          labels[dst] = this.options.labels[src]!;
          if (mask) mask[dst] = this.options.mask![src]!;
          for (let ch = 0; ch < c; ++ch) input[ch * d * h * w + dst] = this.options.volume[ch * D * H * W + src]!;
        }
    const sample: TrainingSample = {
      input: Tensor.fromArray(input, [1, c, d, h, w]),
      labels: Tensor.fromArray(labels, [1, d, h, w]),
    };
    if (mask) sample.mask = Tensor.fromArray(mask, [1, d, h, w]);
    return sample;
  }

  classCounts(classes: number): number[] {
    return classCounts(this.options.labels, classes, this.options.mask);
  }
}
